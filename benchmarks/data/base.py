"""The shared shape of the file-backed data sets: decode on access, or preload once.

A subclass says how to produce item ``i``'s image at the output size together with the
3x3 affine from frame pixels to output pixels (``_render``), and how to turn that into the
item dict (``_item``). With ``preload=True`` every image is rendered once at construction
into one uint8 tensor, so that an epoch over a small (synthetic) set costs no decoding.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
from torch.utils.data import Dataset


class FrameSet(Dataset, ABC):
    """Base class; subclasses call ``self._load(preload)`` at the end of ``__init__``."""

    _images: torch.Tensor | None = None
    _affines: np.ndarray | None = None

    @abstractmethod
    def __len__(self) -> int:
        """Number of items."""

    @abstractmethod
    def _render(self, i: int) -> tuple[torch.Tensor, np.ndarray]:
        """Item ``i``'s uint8 image(s) at the output size and its frame-to-output affine."""

    @abstractmethod
    def _item(self, i: int, image: torch.Tensor, affine: np.ndarray) -> dict[str, torch.Tensor]:
        """Item ``i``'s dict of tensors, given what ``_render`` returned for it."""

    def _load(self, preload: bool) -> None:
        if preload and len(self) > 0:
            rendered = [self._render(i) for i in range(len(self))]
            self._images = torch.stack([image for image, _ in rendered])
            self._affines = np.stack([affine for _, affine in rendered])

    def image_paths(self) -> list:
        """Every image file the set reads (for the verification pass before training)."""
        raise NotImplementedError

    def verify(self, sample: int = 32) -> None:
        """Read every image's header and decode a sample (``files.verify_images``); a set that
        is preloaded was decoded whole already."""
        if not self.preloaded:
            from benchmarks.data.files import verify_images

            verify_images(sorted(set(self.image_paths())), sample)

    @property
    def preloaded(self) -> bool:
        return self._images is not None

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        i = range(len(self))[i]
        if self._images is not None:
            return self._item(i, self._images[i], self._affines[i])
        return self._item(i, *self._render(i))
