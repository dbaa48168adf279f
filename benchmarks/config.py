"""Typed configuration: structured dataclasses composed by hydra.

The schema lives here; the YAML tree in ``benchmarks/conf`` only sets values (profiles,
data sets, launchers). Each method registers its own config dataclass in the ``method``
group (see ``methods/__init__.py``), so ``method.temperature=0.3`` is checked against the
method's own fields and a mistyped key is rejected with one line.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

CONF_DIR = Path(__file__).parent / "conf"
PROFILES = ("smoke", "cpu", "paper")
MATCHES = ("pretrain", "total")
LOGGERS = ("none", "csv", "tensorboard")   # engine.logger: Lightning Fabric's loggers
# Choices the schema's types cannot express, checked at composition (``orchestration.compose``);
# the modules that implement them import them from here, so no check needs torch.
RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")   # timm names
VITS = ("vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224")   # timm names
BACKBONES = RESNETS + VITS
OPTIMIZERS = ("adam", "adamw")   # adam: L2 weight decay in the gradient; adamw: decoupled
POSE_HEADS = ("regression", "heatmap")     # direct regression (PeCLR's RN_25D_wMLPref) | 2.5D heatmaps
ROOT_MODES = ("closed_form", "prior")      # what the pose model's root refiner corrects
WORLDS = ("capture", "sphere")             # synthetic lab viewpoints: FreiHAND-like | every direction
# The synthetic generator's version: bump whenever the generated files change (2: lab worlds,
# 3: wild 3D). Part of every generated set's folder name and of the pre-training cache key.
SYNTH_VERSION = 3
ACCELERATORS = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true")
# Labelled sets with several official splits (``data.split``): DexYCB's toolkit setups
DATA_SPLITS = {"dexycb": ("s0", "s1", "s2", "s3")}
# FreiHAND's evaluation labels (evaluation_xyz.json, ...) come in this separate download
FREIHAND_EVAL_DOWNLOAD = "FreiHAND_pub_v2_eval.zip"
SOURCES = ("synthetic_wild", "synthetic_lab", "freihand", "youtube3d",   # pre-training data sets
           "ego4d", "100doh", "folder")
# What each pre-training source holds besides images: 2D keypoints (the synthetic labels,
# FreiHAND's K @ xyz; YouTube3DHands gives mesh vertices only), sequences of frames to pair in
# time (the synthetic world's triplets, YouTube3DHands' videos), and the synthetic world itself
# (the triplets' three views of one hand, its 3D labels), which a real set never stands for.
SOURCE_HAS = {"synthetic_wild": ("keypoints2d", "sequences", "synthetic_world"),
              "synthetic_lab": ("keypoints2d", "sequences", "synthetic_world"),
              "freihand": ("keypoints2d",),
              "youtube3d": ("sequences",),
              "ego4d": ("keypoints2d",),         # SiMHand's Hand100M pseudo-labels
              "100doh": ("keypoints2d",),
              "folder": ()}                      # a user's frames and boxes: images only
# What a method input (``methods/base.py`` INPUTS) needs from every source it is drawn from.
INPUT_NEEDS = {"keypoints2d": "keypoints2d", "similar": "keypoints2d", "clips": "sequences",
               "triplets": "synthetic_world", "pose3d": "synthetic_world"}
_NEED_WORDS = {"keypoints2d": "2D keypoints",
               "sequences": "sequences of frames to pair in time",
               "synthetic_world": "the synthetic world (its triplets' views and 3D labels)"}
SEED_MAX = 2 ** 31 - 1                     # seeds go to torch and numpy generators


@dataclass
class AugmentConfig:
    """The shared batched augmenter (benchmarks/augment.py); ranges are symmetric."""
    rotate_deg: float = 45.0        # angle ~ U(-r, r)
    translate: float = 0.1          # shift ~ U(-t, t) x image size, per axis
    scale_min: float = 0.8          # zoom ~ log-uniform(scale_min, scale_max)
    scale_max: float = 1.25
    brightness: float = 0.4         # factor ~ U(1-b, 1+b)
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.05               # shift ~ U(-h, h) of a full turn
    blur_p: float = 0.5             # probability of a Gaussian blur
    blur_sigma_max: float = 1.5     # sigma ~ U(0.1, max) x (res / 64) pixels


def vit_patch(name: str) -> int:
    """A timm ViT's patch size, from its name (``vit_small_patch16_224`` -> 16)."""
    return int(name.split("_patch")[1].split("_")[0])


def backbone_family(name: str) -> str:
    """``"resnet"`` or ``"vit"``: what a method's ``backbones`` names and its defaults follow."""
    return "vit" if name in VITS else "resnet"


def check_augment(cfg: AugmentConfig, key: str) -> None:
    """The augmenter's ranges, one line per problem (``UserError``)."""
    from benchmarks.errors import UserError

    checks = [
        ("rotate_deg", cfg.rotate_deg >= 0, ">= 0"),
        ("translate", 0 <= cfg.translate < 1, "in [0, 1)"),
        ("scale_min", cfg.scale_min > 0, "> 0"),
        ("scale_max", cfg.scale_max >= cfg.scale_min, ">= scale_min"),
        ("brightness", 0 <= cfg.brightness < 1, "in [0, 1)"),
        ("contrast", 0 <= cfg.contrast < 1, "in [0, 1)"),
        ("saturation", 0 <= cfg.saturation < 1, "in [0, 1)"),
        ("hue", 0 <= cfg.hue <= 0.5, "in [0, 0.5]"),
        ("blur_p", 0 <= cfg.blur_p <= 1, "in [0, 1]"),
        ("blur_sigma_max", cfg.blur_sigma_max >= 0.1, ">= 0.1"),
    ]
    for name, ok, rule in checks:
        if not ok:
            raise UserError(f"{key}.{name} must be {rule} (got {getattr(cfg, name)})")


@dataclass
class FinetuneAugmentConfig(AugmentConfig):
    """Label-consistent augmentation of fine-tuning, its own ranges: milder than pre-training's
    views (the labelled set already has its viewpoints and rolls; fine-tuning needs images that
    still look like the evaluation split, not invariance)."""
    enabled: bool = True
    rotate_deg: float = 20.0
    translate: float = 0.05
    scale_min: float = 0.9
    scale_max: float = 1.1
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02
    blur_p: float = 0.0
    blur_sigma_max: float = 1.0


@dataclass
class SourceConfig:
    """One pre-training data set; sources are drawn with probability proportional to weight."""
    name: str = "synthetic_wild"    # synthetic_wild | synthetic_lab | freihand | youtube3d |
    #                                 ego4d | 100doh (SiMHand's Hand100M files) | folder
    root: Optional[str] = None      # real data: the data set folder
    weight: float = 1.0
    n: int = 2048                   # synthetic only: how many images to generate
    scale: Optional[str] = None     # ego4d, 100doh: which Hand100M file (50k, 1m, ...) when several


@dataclass
class DataConfig:
    """The labelled data set that every method is fine-tuned and evaluated on."""
    name: str = "synthetic"         # synthetic | freihand | dexycb | ho3d | assemblyhands (conf/data)
    root: Optional[str] = None      # freihand: the folder with training/ and evaluation/
    res: int = 64                   # network input size for fine-tuning and evaluation
    n_train: int = 1024             # synthetic: labelled training ids
    n_eval: int = 256               # synthetic: evaluation samples
    n_triplets: int = 512           # synthetic: viewpoint triplets (trajreg and probes)
    world_seed: int = 0             # synthetic: the world's seed (fixed across run seeds)
    world: str = "capture"          # synthetic: viewpoints, capture (FreiHAND-like) | sphere (harder)
    cache: Optional[str] = None     # where generated data sets live ($BENCH_DATA or ~/.cache/handbench)
    val_fraction: float = 0.0       # held-out training ids for model selection (never the eval split)
    split: Optional[str] = None     # dexycb: the toolkit's setup, s0 | s1 | s2 | s3


@dataclass
class PretrainConfig:
    sources: list[SourceConfig] = field(default_factory=lambda: [SourceConfig()])
    res: int = 64
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-6
    warmup_frac: float = 0.1
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class FinetuneConfig:
    epochs: float = 50.0            # fine-tuning length under match=pretrain (labelled set epochs)
    steps: Optional[int] = None     # instead of epochs: this many steps at every label fraction
    batch_size: int = 128
    lr: float = 5e-4
    weight_decay: float = 2e-4      # not on biases and norm weights
    depth_weight: float = 5.0       # L1(uv) + depth_weight x L1(relative depth)
    warmup_frac: float = 0.0
    optimizer: str = "adam"         # adam (L2 weight decay, PeCLR) | adamw (decoupled)
    head: str = "regression"        # regression (PeCLR's released model) | heatmap (2.5D heatmaps)
    root: str = "closed_form"       # the root refiner corrects: closed_form (PeCLR) | prior (median)
    heatmap_weight: float = 1.0     # heatmap head: weight of the Gaussian prior loss (Nibali et al.)
    heatmap_sigma: float = 1.0      # its width, in cells of the stride-8 map
    label_fraction: float = 1.0     # seeded subset of labelled ids (all versions of an id together)
    freeze_backbone: bool = False   # True: a probe on frozen features
    augment: FinetuneAugmentConfig = field(default_factory=FinetuneAugmentConfig)
    eval_points: int = 4            # periodic evaluations for the convergence curve
    seed: Optional[int] = None      # defaults to the run seed


@dataclass
class EngineConfig:
    accelerator: str = "auto"       # auto | cpu | cuda
    precision: str = "auto"         # auto: bf16-mixed on GPU, 32-true on CPU
    channels_last: bool = True      # GPU only
    channels_last_on_cpu: bool = False   # channels_last on the CPU too (oneDNN: 7-14 % faster here)
    compile: bool = False
    devices: int = 1
    num_workers: int = 0
    checkpoint_every: int = 200     # steps
    log_every: int = 10             # steps
    progress: bool = True
    progress_every_s: float = 30.0  # a plain progress line this often when output is no terminal
    logger: str = "csv"             # none | csv | tensorboard: both phases' curves under the run
    threads: int = 0                # torch intra-op threads; 0: torch's default (one per core)


@dataclass
class AlsoConfig:
    """Another labelled set the fine-tuned model is scored on, without training on it."""
    name: str = MISSING             # freihand | dexycb | ho3d | assemblyhands (benchmarks/conf/data)
    root: Optional[str] = None      # its folder
    split: Optional[str] = None     # dexycb: the toolkit's setup (default s0)


@dataclass
class EvalConfig:
    probes: bool = False            # gesture / viewpoint probes on frozen pre-trained features
    probe_epochs: int = 100
    pretext_points: int = 1         # held-out measures of pre-training's objective (evenly spaced, the last at its end)
    # cross-dataset evaluation: e.g. eval.also=[{name: dexycb, root: /data/dex-ycb}]
    also: list[AlsoConfig] = field(default_factory=list)


@dataclass
class LauncherConfig:
    name: str = "inprocess"         # inprocess | local | slurm
    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    constraint: Optional[str] = None
    time_min: int = 60
    nodes: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 2
    mem_gb: int = 8
    max_requeues: int = 3
    signal_delay_s: int = 60
    array_parallelism: int = 16
    folder: Optional[str] = None    # submitit logs; default <results>/.submitit
    additional_parameters: dict[str, Any] = field(default_factory=dict)
    setup: list[str] = field(default_factory=list)


@dataclass
class MethodConfig:
    """Base of every method's config; each method file subclasses it."""
    name: str = MISSING


@dataclass
class RunConfig:
    method: Any = MISSING
    backbone: str = "resnet18"
    budget: str = "10ep"
    match: str = "pretrain"
    seed: int = 0
    profile: str = "cpu"
    data: DataConfig = field(default_factory=DataConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)


# Keys that change how a run is executed or displayed, never what it computes.
NON_SEMANTIC = ("launcher", "engine.progress", "engine.num_workers", "engine.log_every",
                "engine.checkpoint_every", "engine.progress_every_s", "engine.logger",
                "engine.threads", "eval.pretext_points")


def to_container(cfg: DictConfig | dict) -> dict:
    if isinstance(cfg, dict):
        return cfg
    return OmegaConf.to_container(cfg, resolve=True)


def _drop(d: dict, dotted: str) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        d = d.get(p, {})
    d.pop(last, None)


def stable_hash(obj: Any, n: int = 12) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


# Keys left out of the run id and the pre-training cache key while they hold these values
# (their defaults), so that adding them to the schema keeps every id computed before they
# existed: committed results (results/) are keyed by them. Any other value counts.
DROPPED_AT_DEFAULT = {
    "method.weighting": "none",       # simclr, peclr: SiMHand's SimCLR_w / PeCLR_w when "linear"
    "data.split": None,               # a data set with one official split (FreiHAND, synthetic)
    "eval.also": [],                  # no cross-dataset evaluation
    "finetune.steps": None,           # fine-tuning length in epochs (finetune.epochs)
    "engine.channels_last_on_cpu": False,   # contiguous tensors on the CPU
    "pretrain.sources.*.scale": None,  # a source with one annotation file
}


def drop_defaults(d: dict) -> dict:
    """``d`` (a plain config dict, changed in place) without the ``DROPPED_AT_DEFAULT`` keys
    that hold their default (``*`` in a key: each element of a list)."""
    for dotted, default in DROPPED_AT_DEFAULT.items():
        *parents, last = dotted.split(".")
        nodes = [d]
        for p in parents:                       # "*": every element of a list
            nodes = [x for n in nodes for x in
                     ((n if isinstance(n, list) else []) if p == "*" else
                      ([n[p]] if isinstance(n, dict) and p in n else []))]
        for node in nodes:
            if isinstance(node, dict) and last in node and node[last] == default:
                del node[last]
    return d


def semantic(cfg: DictConfig | dict) -> dict:
    """The part of the config that decides the result."""
    d = drop_defaults(json.loads(json.dumps(to_container(cfg))))
    for key in NON_SEMANTIC:
        _drop(d, key)
    if d.get("method", {}).get("sha256"):     # weights named by their bytes, not their path
        _drop(d, "method.weights")
    return d


def run_id(cfg: DictConfig | dict) -> str:
    """Readable and unique: the budget and method are in the name, the hash decides."""
    d = to_container(cfg)
    name = d["method"].get("label") or d["method"]["name"]
    frac = d["finetune"]["label_fraction"]
    tag = f"{name}-{d['backbone']}-{d['budget']}-{d['match']}-lf{frac:g}-s{d['seed']}"
    return f"{tag}-{stable_hash(semantic(d), 10)}"


def require_sources(method: str, need: str, sources, why: str = "") -> None:
    """Refuse, in one line and before any training, pre-training ``sources`` (the config's
    ``pretrain.sources``) of which one lacks what ``method`` needs (a key of ``SOURCE_HAS``'s
    values): a method trained on a source without its labels would otherwise train on
    nothing and still be charged the FLOPs."""
    from benchmarks.errors import UserError

    for i, src in enumerate(sources):
        if need not in SOURCE_HAS.get(src.name, ()):
            having = [name for name, has in SOURCE_HAS.items() if need in has]
            raise UserError(f"method {method} needs {_NEED_WORDS[need]}{why}, which "
                            f"pretrain.sources.{i}.name={src.name} does not have; pre-train "
                            f"it on {' or '.join(having)}")
