"""Throughput of the synthetic hand renderer, in images per second.

For 64 and 128 pixel images it times (1) rendering: sampling lab scenes and rendering them to
uint8 image tensors in batches of ``--batch``, and (2) writing: ``generate("lab", ...)``, which
adds JPEG encoding and the JSON labels. Each figure is the best of ``--repeats`` runs, for each
intra-op thread count in ``--threads``. Besides wall-clock rates it prints rates per second of
this process's CPU time, which other processes on a shared machine do not disturb; with one
thread that is the rate of one dedicated core.

    python -m perf.render [--images 512] [--batch 128] [--threads 1 2] [--device cpu]

``render_img_per_s`` is the figure ``python -m perf`` reports at 128 pixels.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.synth.products import generate
from benchmarks.synth.products import generator
from benchmarks.synth.scene import LAB, render_scenes, sample_scenes


def timed(work: Callable[[], int], repeats: int) -> tuple[float, float]:
    """Best images per wall-clock second and per CPU second of ``work`` (returns images)."""
    wall, cpu = 0.0, 0.0
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        images = work()
        wall = max(wall, images / (time.perf_counter() - w0))
        cpu = max(cpu, images / (time.process_time() - c0))
    return wall, cpu


def render(res: int, images: int, batch: int, device: str) -> int:
    """Sample and render ``images`` lab images; returns how many."""
    for b in range(0, images, batch):
        gen = generator(0, "perf", b)
        sc = sample_scenes(min(batch, images - b), LAB, res, gen)
        render_scenes(sc, res, gen, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return images


def render_img_per_s(res: int, images: int, batch: int, repeats: int, device: str = "cpu") -> float:
    """Best wall-clock rate of ``render`` over ``repeats`` runs, after one warm-up batch."""
    with torch.inference_mode():
        render(res, batch, batch, device)
        return timed(lambda: render(res, images, batch, device), repeats)[0]


def write(res: int, images: int, device: str) -> int:
    """``generate("lab", ...)`` into a temporary folder; returns the images written."""
    with tempfile.TemporaryDirectory() as tmp:
        out = generate("lab", Path(tmp) / "lab", images, res, 0, device=device)
        return sum(1 for _ in out.rglob("*.jpg"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+",
                        default=sorted({1, torch.get_num_threads()}))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, device {args.device}, {args.images} images per run, "
          f"best of {args.repeats}; images per second (wall clock | per CPU second)")
    print(f"{'res':>4} {'threads':>7} {'render':>17} {'render + write':>17}")
    with torch.inference_mode():
        for threads in args.threads:
            torch.set_num_threads(threads)
            for res in (64, 128):
                render(res, args.batch, args.batch, args.device)                # warm-up
                r = timed(lambda: render(res, args.images, args.batch, args.device),
                          args.repeats)
                w = timed(lambda: write(res, args.images, args.device), args.repeats)
                print(f"{res:>4} {threads:>7} {r[0]:>8.0f} | {r[1]:>6.0f} {w[0]:>8.0f} | "
                      f"{w[1]:>6.0f}", flush=True)


if __name__ == "__main__":
    main()
