"""The sweep file: read, checked, and expanded into the ``key=value`` words of its runs.

A sweep file is YAML::

    name: example                 # optional (default: the file's name); names the jobs
    fixed:                        # settings every run shares
      profile: cpu
      budget: 20ep
    grid:                         # every combination of these values
      method: [simclr, peclr, random]
      finetune.label_fraction: [0.1, 1.0]
      finetune.seed: [0, 1, 2]

Keys are exactly those of ``bench run``'s ``key=value`` words: dotted config keys and the
config groups (``method``, ``profile``, ``data``, ``launcher``). ``grid`` may also be a list of
grids (the runs of all of them). ``key=value`` words after the file override both, and
``--launcher`` sets ``launcher.name``.
"""
from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from omegaconf import DictConfig

from benchmarks import compose
from benchmarks.config import run_id
from benchmarks.errors import UserError, one_line

TOP_KEYS = ("name", "description", "fixed", "grid")
_PLAIN = re.compile(r"^[\w./@:+-]+$", re.ASCII)


@dataclass
class SweepSpec:
    name: str
    fixed: dict
    grids: list[dict]


def load_spec(path: Path) -> SweepSpec:
    """Read and check a sweep file; UserError with one line on any problem."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML ({one_line(err)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping with keys {', '.join(TOP_KEYS)}")
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(map(str, unknown))}; "
                        f"a sweep file has {', '.join(TOP_KEYS)}")
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise UserError(f"{path}: 'fixed' must map config keys to values")
    grids = data.get("grid")
    if grids is None:
        raise UserError(f"{path}: no 'grid' (a mapping of config keys to lists of values)")
    grids = grids if isinstance(grids, list) else [grids]
    for i, grid in enumerate(grids):
        where = f"{path}: grid" + (f"[{i}]" if len(grids) > 1 else "")
        if not isinstance(grid, dict) or not grid:
            raise UserError(f"{where} must map config keys to lists of values")
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise UserError(f"{where}: {key!r} must be a non-empty list of values "
                                f"(got {values!r})")
    name = str(data.get("name") or path.stem)
    if not _PLAIN.match(name):
        raise UserError(f"{path}: name {name!r} must be letters, digits and ._-")
    return SweepSpec(name=name, fixed=dict(fixed), grids=[dict(g) for g in grids])


def override_value(value) -> str:
    """A YAML value as a hydra override value (``key=<this>``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _PLAIN.match(text) and _parse_value(text) == text:
        return text
    # hydra's quoted strings: a backslash is literal unless it precedes a quote or the end
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    escaped = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped)
    return f"'{escaped}'"


@functools.lru_cache(maxsize=None)
def _parse_value(text: str):
    """What hydra makes of ``key=<text>`` (``1e3`` is a float, ``null`` None, ...); None
    when it is not a valid unquoted value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_override(f"k={text}").value()
    except HydraException:
        return None


def expand(spec: SweepSpec, overrides: list[str], launcher: str | None) -> list[list[str]]:
    """The override words of every run: fixed, then the grid point, then the command line."""
    extra = {}
    for word in overrides:
        if "=" not in word:
            raise UserError(f"expected a key=value override, got {word!r}")
        key, _, value = word.partition("=")
        extra[key] = value
    if launcher is not None:
        extra["launcher.name"] = launcher
    runs = []
    for grid in spec.grids:
        keys = list(grid)
        for point in itertools.product(*(grid[k] for k in keys)):
            words = {str(k): override_value(v) for k, v in spec.fixed.items()}
            words.update({str(k): override_value(v) for k, v in zip(keys, point)})
            words.update(extra)
            runs.append([f"{k}={v}" for k, v in words.items()])
    return runs


def compose_runs(path: Path, spec: SweepSpec, overrides: list[str], launcher: str | None,
                 need_data: bool = True) -> list[DictConfig]:
    """The resolved config of every distinct run (the first of equal run ids is kept)."""
    cfgs, seen = [], set()
    for words in expand(spec, overrides, launcher):
        try:
            cfg = compose.load(words, need_data)
        except UserError as err:
            raise UserError(f"{path}: {one_line(err)}") from None
        if cfgs and (cfg.launcher != cfgs[0].launcher
                     or cfg.engine.devices != cfgs[0].engine.devices):
            raise UserError(f"{path}: all runs of a sweep share one launcher and engine.devices;"
                            f" set them under 'fixed', not in the grid")
        rid = run_id(cfg)
        if rid not in seen:
            seen.add(rid)
            cfgs.append(cfg)
    return cfgs
