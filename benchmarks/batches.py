"""Deterministic batch order: the batch of step k is a function of (seed, k) alone.

That is what makes a resumed run repeat the uninterrupted one exactly: restarting at step k
draws the same samples in the same order, whatever happened before. Each pass over the data
is a seeded permutation; batches run across pass boundaries without dropping samples.

A source that declares ``epoch_keyed = True`` (the pre-training ``Mixture``) is handed keys
``epoch * n + index`` instead of indices, so that what epoch e holds can itself depend on e.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, default_collate


class StepIndices:
    def __init__(self, n: int, batch_size: int, seed: int):
        if n <= 0:
            raise ValueError("empty data set")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self._cache: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._cache:
            if len(self._cache) > 4:
                self._cache.clear()
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._cache[epoch] = torch.randperm(self.n, generator=g)
        return self._cache[epoch]

    def __call__(self, step: int) -> torch.Tensor:
        pos = torch.arange(step * self.batch_size, (step + 1) * self.batch_size)
        epochs, offsets = pos // self.n, pos % self.n
        return torch.stack([self._perm(int(e))[int(o)] for e, o in zip(epochs, offsets)])

    def keys(self, step: int) -> torch.Tensor:
        """Step ``step``'s items as keys ``epoch * n + index`` (for epoch-keyed sources)."""
        epochs = torch.arange(step * self.batch_size, (step + 1) * self.batch_size) // self.n
        return epochs * self.n + self(step)

    def for_source(self, source, step: int) -> torch.Tensor:
        """What ``source`` is indexed with at ``step``: keys if it is epoch-keyed, else indices."""
        return self.keys(step) if getattr(source, "epoch_keyed", False) else self(step)


class TensorSource:
    """A data set held in memory as a dict of equally long tensors (the synthetic sets)."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        lengths = {len(t) for t in tensors.values()}
        if len(lengths) != 1:
            raise ValueError(f"tensors differ in length: {lengths}")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def take(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v[idx] for k, v in self.tensors.items()}


def take(source: TensorSource | Dataset, idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """The items ``idx`` of either kind of source, as one batch."""
    if isinstance(source, TensorSource):
        return source.take(idx)
    return default_collate([source[int(i)] for i in idx])


def in_order(source: TensorSource | Dataset, batch_size: int, num_workers: int = 0
             ) -> Iterator[dict[str, torch.Tensor]]:
    """Every item once, in index order (evaluation)."""
    if isinstance(source, TensorSource):
        n = len(source)
        for i in range(0, n, batch_size):
            yield source.take(torch.arange(i, min(n, i + batch_size)))
        return
    yield from DataLoader(source, batch_size=batch_size, shuffle=False, num_workers=num_workers)


class _Steps(torch.utils.data.Sampler):
    def __init__(self, order: StepIndices, start: int, stop: int, source):
        self.order, self.start, self.stop, self.source = order, start, stop, source

    def __iter__(self):
        for k in range(self.start, self.stop):
            yield self.order.for_source(self.source, k).tolist()

    def __len__(self) -> int:
        return self.stop - self.start


def iterate(source: TensorSource | Dataset, order: StepIndices, start: int, stop: int,
            num_workers: int = 0) -> Iterator[dict[str, torch.Tensor]]:
    """Batches for steps ``start .. stop-1`` (CPU tensors)."""
    if isinstance(source, TensorSource):
        for k in range(start, stop):
            yield source.take(order.for_source(source, k))
        return
    loader = DataLoader(source, batch_sampler=_Steps(order, start, stop, source), num_workers=num_workers,
                        persistent_workers=False, pin_memory=torch.cuda.is_available())
    yield from loader
