"""The embedded synthetic hand world: an articulated hand, a camera, a batched renderer and
writers of three products in the real data sets' layouts (see ``products.py``).

``generate(kind, out, n, res, seed, eval_n=None)`` writes a product; ``preview(path, ...)``
writes a contact sheet of samples with their keypoints.
"""
from benchmarks.synth.hand import GESTURES
from benchmarks.synth.preview import preview
from benchmarks.synth.products import KINDS, VERSION, generate

__all__ = ["GESTURES", "KINDS", "VERSION", "generate", "preview"]
