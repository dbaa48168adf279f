"""What a pre-training method is: a config, heads, the inputs it needs, and a loss.

A method never touches files, devices or launch: the engine hands it a batch already on
the right device, the backbone, and the shared batched augmenter; it returns a loss.

A method's file imports no torch when it is loaded: its config, its card (summary, citation,
inputs, passes) and its checks (``settle``) are what ``bench methods`` and config composition
read, and both answer without torch. Torch is imported where a method is built (``__init__``,
``loss`` and the helpers they call, by function-level imports); building one makes it an
``nn.Module`` (see ``Method.__new__``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from benchmarks.config import MethodConfig

if TYPE_CHECKING:
    import torch
    from torch import nn

    from benchmarks.backbone_weights import InitWeights

_TRAINABLE: dict[type, type] = {}


def trainable(cls: type) -> type:
    """``cls`` as an ``nn.Module``: the class ``(cls, nn.Module)``, made once per method class.
    The method's own ``__init__`` then runs ``nn.Module.__init__`` through ``super()``."""
    if cls.__dict__.get("_is_module"):
        return cls
    if cls not in _TRAINABLE:
        from torch import nn

        _TRAINABLE[cls] = type(cls.__name__, (cls, nn.Module),
                               {"__module__": cls.__module__, "__qualname__": cls.__qualname__,
                                "__doc__": cls.__doc__, "_is_module": True})
    return _TRAINABLE[cls]

# What a method may ask the pre-training loader for (``Method.inputs``):
#   "images"       batch["image"]    (B, 3, H, W) float in [0, 1], hand crops at pretrain.res
#   "keypoints2d"  batch["uv"]       (B, 21, 2) crop pixel coordinates (x right, y down;
#                                     pixel (row i, col j) covers [j, j+1) x [i, i+1))
#   "pose3d"       batch["xyz"]      (B, 21, 3) camera-frame joints in metres and
#                  batch["K"]        (B, 3, 3) intrinsics of the crop (synthetic wild set)
#   "triplets"     batch["triplet"]  (B, 3, 3, H, W) left, centre, right views of one hand,
#                  batch["gesture"]  (B,) int64, batch["viewpoint"] (B, 3, 2) azimuth,
#                                     elevation in degrees
#   "similar"      batch["image"], batch["uv"] as above, and the mined most similar hand of
#                  another sequence (SiMHand): batch["partner"] (B, 3, H, W), batch["partner_uv"]
#                  (B, 21, 2)
#   "clips"        batch["clip"]     (B, 2, 3, H, W) two frames of one sequence or video within
#                                     the method's time window (TempCLR)
INPUTS = ("images", "keypoints2d", "pose3d", "triplets", "similar", "clips")


class Method:
    """Base class. Subclasses set the class attributes and implement ``loss``.

    ``backbone`` is a ``benchmarks.backbone.Backbone``: it takes images in [0, 1] (it
    normalises them itself); ``backbone(x)`` gives pooled features of size ``feat_dim``,
    ``backbone.forward_features(x)`` the last feature map, ``backbone.net`` the timm model.
    Heads built in ``__init__`` are trained with the backbone and dropped after pre-training.
    """

    name: ClassVar[str]                      # set from Config's name (the registry key)
    summary: ClassVar[str]                   # one line: what it does
    citation: ClassVar[str]                  # e.g. "Spurr et al., ICCV 2021"
    inputs: ClassVar[tuple[str, ...]] = ("images",)
    passes_per_sample: ClassVar[int] = 2     # backbone image passes one sample costs
    pretrains: ClassVar[bool]                # passes_per_sample > 0; False: init-only (random, imagenet)
    backbones: ClassVar[tuple[str, ...]] = ("resnet", "vit")   # families it can pre-train
    # The logged scalar that falls as the objective is learned: "loss", or a key of the
    # logs ``loss`` returns where the loss also moves with the method's own state (DINO's
    # centring raises its teacher's entropy, so its cross-entropy can rise while it learns).
    objective: ClassVar[str] = "loss"
    Config: ClassVar[type[MethodConfig]] = MethodConfig

    def __init_subclass__(cls, **kwargs):
        """A method's name is written once, as its Config's ``name`` (which is also its key in
        ``methods.MODULES``, checked at registration); ``pretrains`` follows from its passes."""
        super().__init_subclass__(**kwargs)
        cls.name = cls.Config.name
        cls.pretrains = cls.passes_per_sample > 0

    def __new__(cls, *args, **kwargs):
        """Building a method gives an instance of its ``nn.Module`` form (``trainable``)."""
        return object.__new__(trainable(cls))

    def __init__(self, cfg: MethodConfig, backbone: nn.Module, feat_dim: int, augmenter=None):
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.feat_dim = feat_dim
        self.augmenter = augmenter

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """One pre-training step's loss and a few scalars to log.

        ``generator`` is the step's own random generator (seeded from the run seed and the
        step index, on the batch's device): draw every random number from it, so that a
        resumed run repeats the uninterrupted one exactly.
        """
        raise NotImplementedError

    def after_step(self, step: int, steps: int) -> None:
        """Called after each optimizer step of pre-training, ``step`` of ``steps`` done (1-based).
        Methods with a momentum teacher update it here (``methods/momentum.py``); state kept
        for the next step belongs in buffers, so that a resumed run repeats the uninterrupted
        one."""

    @classmethod
    def chance(cls, cfg: MethodConfig, batch_size: int) -> float | None:
        """The objective's value for embeddings that carry no information at this batch size
        (NT-Xent: log(2B - 1)), reported beside the held-out measure; None where the method
        states none (a collapse indicator in its logs says more)."""
        return None

    def baseline(self, batch: dict[str, torch.Tensor], generator: torch.Generator
                 ) -> dict[str, float] | None:
        """The logged scalars of a predictor that ignores the image, on the views ``loss``
        draws from the same ``generator`` state (a constant 2D pose, zero relative depth):
        the reference a supervised pre-training's held-out measure must beat. None where the
        method has no such predictor (its chance level, or its start, is the reference)."""
        return None

    @classmethod
    def has_baseline(cls) -> bool:
        """Whether the method defines an image-blind predictor (overrides ``baseline``)."""
        return cls.baseline is not Method.baseline

    @classmethod
    def learned(cls, cfg: MethodConfig, block: dict) -> tuple[str, bool]:
        """Whether the held-out measure ``block`` (``Record.pretraining``: ``start``, ``end``,
        ``chance``, ``baseline``) says the pre-training learned its task, and the criterion in
        words. Here: the objective ends below the lower of its start and its reference (the
        image-blind baseline, else the chance level, else the start) by ``LEARN_MARGIN`` of the
        larger of the two in size, and
        where the method logs an embedding std it ends at ``COLLAPSED_STD`` or above."""
        return learned_by(cls.objective, block)

    @classmethod
    def init_weights(cls, cfg: MethodConfig) -> InitWeights | None:
        """Init-only methods: the weights the backbone starts from, as a declaration the harness
        loads (``benchmarks.backbone_weights.apply_init``); None keeps the backbone's own
        initialisation."""
        return None

    @classmethod
    def settle(cls, cfg: MethodConfig, run=None) -> None:
        """Check the method's settings (``cfg``, the ``method`` node of the run config ``run``)
        and fill in what they imply, when the config is composed (before its run id exists);
        raise ``UserError`` with one line."""

    @classmethod
    def row_name(cls, cfg: MethodConfig) -> str:
        """The name of this run's row in records, tables and run ids (the method's name)."""
        return cls.name

    @classmethod
    def external(cls, cfg: MethodConfig) -> str | None:
        """Pre-training done outside the suite that the run starts from, in words, or None."""
        return getattr(cls, "external_pretrain", None)


LEARN_MARGIN = 0.05      # the held-out objective must end this far (relative) below its reference
COLLAPSED_STD = 0.2      # an embedding std below it at the end: collapsed (1 when spread, 0 collapsed)


def learned_by(key: str, block: dict, extra: tuple[tuple[str, bool], ...] = ()) -> tuple[str, bool]:
    """The default rule of ``Method.learned`` on the logged scalar ``key``, with ``extra``
    (words, passed) conditions that must hold too."""
    start, end = float(block["start"][key]), float(block["end"][key])
    base = (block.get("baseline") or {}).get(key)
    if base is not None:
        reference, said = float(base), "a predictor that ignores the image"
    elif block.get("chance") is not None:
        reference, said = float(block["chance"]), "chance"
    else:
        reference, said = start, "its start"
    scale = max(abs(reference), abs(start))     # a reference of 0 (BYOL's chance) still has a margin
    bar = min(start, reference) - LEARN_MARGIN * scale
    if reference == start:
        words = f"held-out {key} ends at least {LEARN_MARGIN:.0%} below its start (below {bar:.4g})"
    else:
        words = (f"held-out {key} ends below the lower of its start ({start:.4g}) and {said} "
                 f"({reference:.4g}) by {LEARN_MARGIN:.0%} of the larger in size (below {bar:.4g})")
    conditions = [(words, end < bar), *extra]
    std = block["end"].get("embedding_std")
    if std is not None:
        conditions.append((f"embedding std ends at {COLLAPSED_STD} or above (not collapsed)",
                           float(std) >= COLLAPSED_STD))
    return "; ".join(w for w, _ in conditions), all(ok for _, ok in conditions)


def embedding_std(z: torch.Tensor) -> float:
    """The collapse indicator of Chen and He (SimSiam, CVPR 2021): the per-dimension std over
    the batch of the L2-normalised embeddings, times sqrt(dim), averaged over dimensions. About
    1 for embeddings spread over the sphere, 0 when every sample maps to one point."""
    import torch.nn.functional as F

    z = F.normalize(z.detach().float(), dim=1)
    return float(z.std(dim=0).mean() * z.shape[1] ** 0.5)
