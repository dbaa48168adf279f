"""What the performance suite measures at: model, image sizes, batches, steps and repeats.

One ``Sizes`` per device. The CPU sizes are the ``cpu`` profile's (ResNet-18, 64 px, batch 64);
the GPU sizes are the ``paper`` profile's pre-training (ResNet-50, 128 px, batch 128) and its
224 px fine-tuning. ``--quick`` keeps the model and the image size and shrinks the batch on the
CPU, the data sets, the steps and the repeats.

The sizes become hydra overrides of an ordinary run config (``overrides``), so every figure is
measured on the same typed config, data and code a ``bench run`` uses.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """One device's workload.

    ``batch`` is samples per pre-training step (SimCLR and PeCLR pass two views of each, so
    ``2 * batch`` backbone images); ``finetune_batch`` images per fine-tuning step. Each timed
    figure is ``steps`` steps after ``warmup`` untimed ones, repeated ``repeats`` times.
    """

    backbone: str = "resnet18"
    res: int = 64                   # pre-training input side, pixels
    batch: int = 64
    finetune_res: int = 64          # fine-tuning and evaluation input side, pixels
    finetune_batch: int = 64
    wild: int = 2048                # synthetic wild frames: the pre-training (and peer) images
    labelled: int = 1024            # synthetic labelled training ids
    evaluation: int = 512           # synthetic evaluation samples (the predict figure)
    warmup: int = 2
    steps: int = 10
    repeats: int = 5


@dataclass(frozen=True)
class Extras:
    """The device-free figures: renderer throughput at 128 px and ``bench report`` time."""

    render_images: int = 512
    render_batch: int = 128
    render_repeats: int = 3
    report_records: int = 1000


CPU = Sizes()
CPU_QUICK = Sizes(batch=32, finetune_batch=32, wild=512, labelled=256, evaluation=256,
                  warmup=1, steps=3, repeats=5)
GPU = Sizes(backbone="resnet50", res=128, batch=128, finetune_res=224, finetune_batch=128,
            wild=4096, labelled=1024, evaluation=1024, warmup=10, steps=50, repeats=5)
GPU_QUICK = Sizes(backbone="resnet50", res=128, batch=128, finetune_res=224, finetune_batch=128,
                  wild=1024, labelled=256, evaluation=512, warmup=5, steps=20, repeats=3)
EXTRAS = Extras()
EXTRAS_QUICK = Extras(render_images=256, render_repeats=2)


def presets(quick: bool) -> tuple[Sizes, Sizes, Extras]:
    """(CPU sizes, GPU sizes, extras) for a full or a ``--quick`` run."""
    return (CPU_QUICK, GPU_QUICK, EXTRAS_QUICK) if quick else (CPU, GPU, EXTRAS)


def overrides(sizes: Sizes, method: str, accelerator: str, compile: bool = False) -> list[str]:
    """Hydra overrides of the ``cpu`` profile that give a run config of these sizes."""
    return [
        f"method={method}", "profile=cpu", f"backbone={sizes.backbone}",
        f"data.res={sizes.finetune_res}", f"data.n_train={sizes.labelled}",
        f"data.n_eval={sizes.evaluation}",
        f"pretrain.res={sizes.res}", f"pretrain.batch_size={sizes.batch}",
        f"pretrain.sources=[{{name:synthetic_wild,weight:1.0,n:{sizes.wild}}}]",
        f"finetune.batch_size={sizes.finetune_batch}",
        f"engine.accelerator={accelerator}", f"engine.compile={str(compile).lower()}",
        "engine.progress=false", "engine.checkpoint_every=1000000000", "eval.probes=false",
    ]
