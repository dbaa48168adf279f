"""The peer pipeline: SimCLR as lightly's documentation writes it.

lightly's SimCLR example: a dataset of PIL images whose transform is ``SimCLRTransform``
(per-sample torchvision ``RandomResizedCrop``, flip, ``ColorJitter``, grey, blur, ``ToTensor``,
``Normalize``; two views per image), a ``DataLoader`` with ``shuffle=True, drop_last=True`` and
worker processes, a model of backbone + ``SimCLRProjectionHead(512, 512, 128)``, one forward
pass per view, ``NTXentLoss()`` and ``SGD(lr=0.06)``, ``backward``, ``step``, ``zero_grad``.

Here it gets the same images, backbone, batch and size as the suite's own SimCLR step: the
images are the hand crops of the same synthetic wild JPEGs, held in memory as PIL images (so
the peer pays for its transforms, not for decoding), the backbone is the same timm model
(features already pooled, so the example's ``flatten`` is a no-op), and
``SimCLRTransform(input_size=res)`` keeps lightly's other defaults. On a GPU it also gets the
suite's bf16 autocast, channels_last, pinned host memory and, with ``--compile``, a compiled
model, so that a difference measures the input pipeline, not the numerics. A timed span
starts with the workers' prefetch queue full (warm-up steps come first), which can only favour
the peer. Its optimiser, SGD, is cheaper than the suite's Adam, which favours it too.
"""
from __future__ import annotations

import time

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from lightly.transforms import SimCLRTransform
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, RandomSampler

from benchmarks.backbone import create_backbone
from perf.timing import Variant, sync


class PILImages(Dataset):
    """uint8 images (N, 3, H, W) as PIL images, each item ``transform(image)``."""

    def __init__(self, images: Tensor, transform):
        self.images = [Image.fromarray(im.permute(1, 2, 0).numpy()) for im in images]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i])


class PeerSimCLR(nn.Module):
    """The documentation's model: backbone, then ``SimCLRProjectionHead(feat, 512, 128)``."""

    def __init__(self, backbone: nn.Module, feat_dim: int):
        super().__init__()
        self.backbone = backbone
        self.projection_head = SimCLRProjectionHead(feat_dim, 512, 128)

    def forward(self, x: Tensor) -> Tensor:
        return self.projection_head(self.backbone(x).flatten(start_dim=1))


def peer_variant(images: Tensor, backbone: str, res: int, batch: int, device: torch.device,
                 workers: int, bf16: bool, channels_last: bool, compile: bool, warmup: int,
                 steps: int) -> Variant:
    """Backbone images per second (two per sample) of the documented SimCLR loop.

    Each call starts a fresh ``DataLoader`` iterator (its workers start during the warm-up)
    over exactly ``warmup + steps`` shuffled batches and shuts the workers down at the end.
    """
    dataset = PILImages(images, SimCLRTransform(input_size=res))
    net = create_backbone(backbone).net
    model = PeerSimCLR(net, int(net.num_features)).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compile else model
    criterion = NTXentLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06)

    def run() -> float:
        loader = DataLoader(dataset, batch_size=batch, drop_last=True, num_workers=workers,
                            sampler=RandomSampler(dataset, num_samples=batch * (warmup + steps)),
                            pin_memory=device.type == "cuda")
        batches = iter(loader)
        t0 = 0.0
        for k in range(warmup + steps):
            if k == warmup:
                sync(device)
                t0 = time.perf_counter()
            x0, x1 = next(batches)
            x0, x1 = x0.to(device, non_blocking=True), x1.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = criterion(forward(x0).float(), forward(x1).float())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        sync(device)
        elapsed = time.perf_counter() - t0
        del batches                                  # shuts the workers down
        return steps * 2 * batch / elapsed

    return run
