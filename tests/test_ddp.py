"""DDP: contrastive losses gather across ranks, so a split global batch trains like the whole.

Two CPU processes (gloo: this one and a spawned one) each hold half of a global batch. With
gathering, every rank's negatives are the whole batch: the mean of the ranks' losses equals
the single-process loss on the whole batch, and each rank's gradient (lightly's
``GatherLayer`` sums the gradients of all ranks' losses) is world_size times the
single-process gradient of its rows, which DDP's gradient averaging turns into exactly the
single-process update.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from lightly.loss import NTXentLoss

from methods.jointcon import supcon_loss

WORLD = 2
BATCH, DIM = 8, 16
KINDS = ("ntxent", "supcon")            # lightly's NT-Xent (SimCLR, PeCLR); JointCon's SupCon


def _inputs(kind: str) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    if kind == "ntxent":
        return torch.randn(BATCH, DIM, generator=g), torch.randn(BATCH, DIM, generator=g)
    z = torch.nn.functional.normalize(torch.randn(BATCH, DIM, generator=g), dim=1)
    labels = torch.arange(BATCH) % (BATCH // 4)             # each label on both ranks
    return z, labels


def _loss(kind: str, parts: tuple[torch.Tensor, ...], gather: bool) -> torch.Tensor:
    if kind == "ntxent":
        return NTXentLoss(temperature=0.5, gather_distributed=gather)(*parts)
    return supcon_loss(parts[0], parts[1], temperature=0.1, gather_distributed=gather)


def _rank(rank: int, init: str, folder: str) -> None:
    torch_dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD,
                                  timeout=timedelta(seconds=120))
    try:
        rows = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
        out = {}
        for kind in KINDS:
            parts = [t[rows].clone() for t in _inputs(kind)]
            leaf = parts[0].requires_grad_()
            if kind == "ntxent":
                parts[1].requires_grad_()
            loss = _loss(kind, tuple(parts), gather=True)
            loss.backward()
            local = _loss(kind, tuple(p.detach() for p in parts), gather=False)
            out[kind] = (loss.item(), leaf.grad.clone(), local.item())
        torch.save(out, f"{folder}/rank{rank}.pt")
    finally:
        torch_dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> dict:
    """Per kind: {rank: (gathered loss, gradient of its rows, loss without gathering)}."""
    folder = tmp_path_factory.mktemp("ddp")
    args = (f"file://{folder}/store", str(folder))
    other = mp.get_context("spawn").Process(target=_rank, args=(1, *args))
    other.start()                       # rank 1 in a fresh process, rank 0 here
    try:
        _rank(0, *args)
    finally:
        other.join(120)
    assert other.exitcode == 0
    per_rank = [torch.load(folder / f"rank{r}.pt") for r in range(WORLD)]
    return {kind: {r: per_rank[r][kind] for r in range(WORLD)} for kind in KINDS}


def _single(kind: str) -> tuple[float, torch.Tensor]:
    parts = [t.clone() for t in _inputs(kind)]
    leaf = parts[0].requires_grad_()
    if kind == "ntxent":
        parts[1].requires_grad_()
    loss = _loss(kind, tuple(parts), gather=False)
    loss.backward()
    return loss.item(), leaf.grad


def _check(kind: str, ranks: dict) -> None:
    loss, grad = _single(kind)
    mean = sum(ranks[r][0] for r in range(WORLD)) / WORLD
    assert abs(mean - loss) < 1e-5
    for r in range(WORLD):
        rows = slice(r * BATCH // WORLD, (r + 1) * BATCH // WORLD)
        torch.testing.assert_close(ranks[r][1] / WORLD, grad[rows], rtol=1e-4, atol=1e-6)
    # Without gathering, a rank would see only its own half as negatives: a different loss.
    assert all(abs(ranks[r][2] - ranks[r][0]) > 1e-3 for r in range(WORLD))


def test_ntxent_on_split_batch_equals_single_process_loss(ranks):
    _check("ntxent", ranks["ntxent"])


def test_jointcon_supcon_on_split_batch_equals_single_process_loss(ranks):
    _check("supcon", ranks["supcon"])
