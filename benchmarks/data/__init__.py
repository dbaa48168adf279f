"""Data sets: FreiHAND, YouTube3DHands and the synthetic products, read from their files.

Every set is a torch ``Dataset`` whose items are dicts of tensors (the default collate
stacks them); images are uint8 (3, res, res). Pixel convention everywhere: x right, y
down, pixel (row i, col j) covers [j, j+1) x [i, i+1). Pre-training sources share one
hand-crop rule (``crops``) and are mixed by weight (``sources``).
"""
from benchmarks.data.crops import Box, apply_affine, crop, hand_box, hand_crop
from benchmarks.data.freihand import FreiHAND, project, split_ids
from benchmarks.data.sources import SOURCES, Mixture, mixture_indices, open_source
from benchmarks.data.triplets import Triplets
from benchmarks.data.wild import Wild
from benchmarks.data.youtube import YouTube3D

__all__ = ["Box", "FreiHAND", "Mixture", "SOURCES", "Triplets", "Wild", "YouTube3D",
           "apply_affine", "crop", "hand_box", "hand_crop", "mixture_indices", "open_source",
           "project", "split_ids"]
