"""Compose and validate one run's config: hydra overrides -> a typed, checked config."""
from __future__ import annotations

import importlib.util
import math
import os
import re
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmarks.config import (ACCELERATORS, BACKBONES, CONF_DIR, LOGGERS, MATCHES, OPTIMIZERS,
                               POSE_HEADS, PRECISIONS, PROFILES, ROOT_MODES, SEED_MAX, SOURCES,
                               WORLDS, DATA_SPLITS, RunConfig, check_augment)
from benchmarks.errors import UserError, one_line
from benchmarks.run import Run

_STORED = False
MAX_RES = 1024          # input side in pixels: far above any protocol (FreiHAND crops are 224)
MAX_THREADS = 1024


def _store_schemas() -> None:
    """Register the run schema and every method's config dataclass (group ``method``)."""
    global _STORED
    if _STORED:
        return
    import methods

    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    for name in methods.names():
        cs.store(group="method", name=name, node=methods.get(name).Config)
    _STORED = True


def _hydra_message(err: Exception) -> str:
    """Hydra's messages run over several lines with a hint; keep what names the problem."""
    text = str(err)
    cause = err.__cause__ or err.__context__
    env = re.search(r"Environment variable '([^']+)' not found", text + repr(cause))
    if env:
        return (f"environment variable {env.group(1)} is not set (a value reads it with "
                f"${{oc.env:{env.group(1)}}}): set it, e.g. {env.group(1)}=/path bench ...")
    m = re.search(r"Could not override '([^']+)'", text)
    if m and re.search(r"Key '[^']+' not in|not in struct|ConfigKeyError", text + repr(cause)):
        return f"unknown config key {m.group(1)!r}: not in the schema (see benchmarks/config.py)"
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", None)
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        return one_line(f"{key}: {first}" if key else first)
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return one_line(first)


def load(overrides: list[str] | tuple[str, ...] = (), need_data: bool = True) -> DictConfig:
    """The resolved run config for ``overrides`` (hydra ``key=value`` words), validated.
    ``need_data`` False (a dry run, ``--cfg``): data folders need not exist here."""
    _store_schemas()
    overrides = list(overrides)
    for word in overrides:
        if not word.isascii() and "'" not in word and '"' not in word:
            raise UserError(f"{word!r} holds characters outside ASCII: quote the value inside the "
                            f"word, e.g. 'method.label=\"my-label\"' (names and numbers are ASCII)")
        if "=" not in word:
            raise UserError(f"expected a key=value override, got {word!r} (a value with spaces? quote "
                            f"it inside the word: 'data.root=\"/my data\"')")
        if word[0] in "+~":
            raise UserError(f"{word!r}: only existing keys can be set (key=value); "
                            f"the schema has no optional keys to add or delete")
    group_choice = {w.split("=", 1)[0]: w.split("=", 1)[1] for w in overrides}
    if "method" in group_choice:
        import methods
        methods.get(group_choice["method"])         # unknown method -> the list of choices
    if group_choice.get("profile", "cpu") not in PROFILES:
        raise UserError(f"unknown profile {group_choice['profile']!r}; "
                        f"choose one of: {', '.join(PROFILES)}")
    presets = sorted(p.stem for p in (CONF_DIR / "launcher").glob("*.yaml"))
    if group_choice.get("launcher", presets[0]) not in presets:
        raise UserError(f"unknown launcher preset {group_choice['launcher']!r}; choose one of: "
                        f"{', '.join(presets)} (or add benchmarks/conf/launcher/NAME.yaml, see the README)")
    data_names = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))
    if group_choice.get("data", data_names[0]) not in data_names:
        raise UserError(f"unknown data {group_choice['data']!r}; choose one of: {', '.join(data_names)}")
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        if isinstance(err, OverrideParseException):
            raise UserError(f"{_hydra_message(err)} in {' '.join(overrides)!r}: quote a value holding "
                            f"spaces, brackets or commas inside the word, e.g. "
                            f"'data.root=\"/my data (1)\"'") from None
        raise UserError(_hydra_message(err)) from None
    validate(cfg, need_data)
    settle(cfg)
    return cfg


def settle(cfg: DictConfig) -> type:
    """The method's own checks and what its settings imply (``Method.settle``), and the
    initial weights an init-only method declares (the file exists; a pinned file's sha256 is
    filled in); returns the method class."""
    import methods
    from benchmarks.backbone_weights import pin_file
    from benchmarks.config import INPUT_NEEDS, backbone_family, require_sources, vit_patch

    method = methods.get(cfg.method.name)
    if (family := backbone_family(cfg.backbone)) not in method.backbones:
        raise UserError(f"method {method.name!r} cannot pre-train a {family} backbone "
                        f"(backbone={cfg.backbone}); it needs one of: {', '.join(method.backbones)}")
    if family == "vit":
        patch = vit_patch(cfg.backbone)
        for key in ("data.res", "pretrain.res"):
            if (res := OmegaConf.select(cfg, key)) % patch:
                raise UserError(f"{key}={res} is not a multiple of {cfg.backbone}'s patch size "
                                f"{patch}: a ViT reads whole patches (try {res // patch * patch or patch})")
    if method.pretrains:
        for need in dict.fromkeys(INPUT_NEEDS[i] for i in method.inputs if i in INPUT_NEEDS):
            require_sources(method.name, need, cfg.pretrain.sources)
    method.settle(cfg.method, cfg)
    if not method.pretrains and (spec := method.init_weights(cfg.method)) is not None:
        pin_file(spec, cfg.method)
    return method


def resolve(overrides: list[str] | tuple[str, ...] = (), need_data: bool = True) -> Run:
    """The ``Run`` of ``overrides``: composed, validated and settled once (``load``), then
    frozen with everything derived from it (``benchmarks.run.Run``)."""
    cfg = load(overrides, need_data)
    import methods

    return Run.of(cfg, methods.get(cfg.method.name))


def validate(cfg: DictConfig, need_data: bool = True) -> None:
    """Ranges and names the schema's types cannot express; one line per problem."""
    from benchmarks.budget import parse_budget

    for key, value in _numbers(cfg):
        if not math.isfinite(value):
            raise UserError(f"{key} must be a finite number (got {value})")
    for key in ("seed", "finetune.seed", "data.world_seed"):
        value = OmegaConf.select(cfg, key)
        if value is not None and not 0 <= value <= SEED_MAX:
            raise UserError(f"{key} must be in [0, {SEED_MAX}] (got {value})")
    for key in ("engine.devices", "engine.checkpoint_every", "engine.log_every",
                "eval.probe_epochs", "data.n_train", "data.n_eval", "data.n_triplets"):
        if OmegaConf.select(cfg, key) < 1:
            raise UserError(f"{key} must be >= 1 (got {OmegaConf.select(cfg, key)})")
    for key in ("data.res", "pretrain.res"):
        if OmegaConf.select(cfg, key) > MAX_RES:
            raise UserError(f"{key} must be <= {MAX_RES} pixels (got {OmegaConf.select(cfg, key)}): "
                            f"hand crops are trained at 64-256 px")
    if cfg.engine.threads > MAX_THREADS:
        raise UserError(f"engine.threads must be <= {MAX_THREADS} (got {cfg.engine.threads})")
    if not cfg.engine.progress_every_s >= 0:
        raise UserError(f"engine.progress_every_s must be >= 0, 0 for a line at every logged "
                        f"step (got {cfg.engine.progress_every_s})")
    if cfg.engine.num_workers < 0:
        raise UserError(f"engine.num_workers must be >= 0 (got {cfg.engine.num_workers})")
    if cfg.engine.threads < 0:
        raise UserError(f"engine.threads must be >= 0, 0 for torch's default (got {cfg.engine.threads})")
    if cfg.engine.logger not in LOGGERS:
        raise UserError(f"engine.logger must be one of: {', '.join(LOGGERS)} (got {cfg.engine.logger!r})")
    if cfg.engine.logger == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        raise UserError("engine.logger=tensorboard needs the tensorboard package: pip install tensorboard")
    if cfg.backbone not in BACKBONES:
        raise UserError(f"unknown backbone {cfg.backbone!r}; choose one of: {', '.join(BACKBONES)}")
    budget = parse_budget(cfg.budget)
    if cfg.match not in MATCHES:
        raise UserError(f"match must be one of: {', '.join(MATCHES)} (got {cfg.match!r})")
    if budget.unfair and cfg.match == "total":
        raise UserError("match=total needs a compute budget (ep, step, img, tflop, pflop), not hours")
    checks = [
        ("finetune.label_fraction", 0.0 < cfg.finetune.label_fraction <= 1.0, "in (0, 1]"),
        ("data.val_fraction", 0.0 <= cfg.data.val_fraction < 1.0, "in [0, 1)"),
        ("finetune.epochs", cfg.finetune.epochs > 0, "> 0"),
        ("finetune.steps", cfg.finetune.steps is None or cfg.finetune.steps >= 1, ">= 1 or null"),
        ("finetune.batch_size", cfg.finetune.batch_size > 0, "> 0"),
        ("pretrain.batch_size", cfg.pretrain.batch_size > 1, "> 1"),
        ("data.res", cfg.data.res >= 32, ">= 32"),
        ("pretrain.res", cfg.pretrain.res >= 32, ">= 32"),
        ("finetune.lr", cfg.finetune.lr > 0, "> 0"),
        ("pretrain.lr", cfg.pretrain.lr > 0, "> 0"),
        ("finetune.eval_points", cfg.finetune.eval_points >= 1, ">= 1"),
        ("eval.pretext_points", cfg.eval.get("pretext_points", 1) >= 1, ">= 1"),
        ("pretrain.warmup_frac", 0.0 <= cfg.pretrain.warmup_frac < 1.0, "in [0, 1)"),
        ("finetune.warmup_frac", 0.0 <= cfg.finetune.warmup_frac < 1.0, "in [0, 1)"),
        ("finetune.depth_weight", cfg.finetune.depth_weight >= 0, ">= 0"),
        ("finetune.heatmap_weight", cfg.finetune.heatmap_weight >= 0, ">= 0"),
        ("finetune.heatmap_sigma", cfg.finetune.heatmap_sigma > 0, "> 0"),
    ]
    for key, ok, rule in checks:
        if not ok:
            raise UserError(f"{key} must be {rule} (got {OmegaConf.select(cfg, key)})")
    choices = [("finetune.head", POSE_HEADS), ("finetune.root", ROOT_MODES),
               ("finetune.optimizer", OPTIMIZERS), ("data.world", WORLDS),
               ("engine.accelerator", ACCELERATORS), ("engine.precision", PRECISIONS)]
    for key, valid in choices:
        if OmegaConf.select(cfg, key) not in valid:
            raise UserError(f"{key} must be one of: {', '.join(valid)} (got {OmegaConf.select(cfg, key)!r})")
    check_augment(cfg.pretrain.augment, key="pretrain.augment")
    check_augment(cfg.finetune.augment, key="finetune.augment")
    if cfg.data.name == "synthetic" and cfg.data.root:
        raise UserError(f"data.root={cfg.data.root} is set but the data set is the embedded "
                        f"synthetic one: add data=freihand to fine-tune and evaluate on that folder")
    if cfg.data.name != "synthetic" and need_data:
        _check_root("data.root", cfg.data.root)
    real_sets = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml") if p.stem != "synthetic")
    for i, also in enumerate(cfg.eval.also):
        if also.name not in real_sets:
            raise UserError(f"eval.also.{i}.name={also.name!r}: choose a real data set: "
                            f"{', '.join(real_sets)}")
        if also.name == cfg.data.name and also.root == cfg.data.root:
            raise UserError(f"eval.also.{i} is the data set fine-tuned on; its scores are the "
                            f"record's metrics already")
        if need_data:
            _check_root(f"eval.also.{i}.root ({also.name})", also.root)
        also_setups = DATA_SPLITS.get(also.name)
        if also_setups is None and also.split is not None:
            raise UserError(f"eval.also.{i}.split={also.split} is set but {also.name} has one "
                            f"official split")
        if also_setups is not None and (also.split or also_setups[0]) not in also_setups:
            raise UserError(f"eval.also.{i}.split must be one of: {', '.join(also_setups)} "
                            f"(got {also.split!r})")
    setups = DATA_SPLITS.get(cfg.data.name)
    if setups is None and cfg.data.split is not None:
        raise UserError(f"data.split={cfg.data.split} is set but data={cfg.data.name} has one "
                        f"official split; data.split is for {', '.join(DATA_SPLITS)}")
    if setups is not None and cfg.data.split not in setups:
        raise UserError(f"data.split must be one of: {', '.join(setups)} for data="
                        f"{cfg.data.name} (got {cfg.data.split!r})")
    if not cfg.pretrain.sources:
        raise UserError("pretrain.sources is empty: name at least one pre-training data set")
    for i, src in enumerate(cfg.pretrain.sources):
        if src.name not in SOURCES:
            raise UserError(f"unknown pre-training source pretrain.sources.{i}.name={src.name!r}; "
                            f"choose one of: {', '.join(SOURCES)}")
        if src.weight <= 0:
            raise UserError(f"pretrain.sources.{i}.weight must be > 0 (got {src.weight})")
        if src.name.startswith("synthetic") and src.n < 1:
            raise UserError(f"pretrain.sources.{i}.n must be >= 1 (got {src.n})")
        if not src.name.startswith("synthetic") and need_data:
            _check_root(f"pretrain.sources.{i}.root ({src.name})", src.root)


def _numbers(cfg, prefix: str = ""):
    """(dotted key, value) of every float in ``cfg``."""
    items = cfg.items() if isinstance(cfg, DictConfig) else enumerate(cfg)
    for key, value in items:
        dotted = f"{prefix}{key}"
        if isinstance(value, float):
            yield dotted, value
        elif isinstance(value, (DictConfig, ListConfig)):
            yield from _numbers(value, dotted + ".")


def _check_root(key: str, root: str | None) -> None:
    if not root:
        raise UserError(f"{key} is not set: point it at the data set folder ({key.split(' ')[0]}=DIR)")
    if not Path(os.path.expanduser(root)).is_dir():
        raise UserError(f"{key}: no such directory: {root}")
