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

A key may appear only once in a mapping (YAML would otherwise keep the last one silently and
drop, say, a whole grid axis); the file must be UTF-8 text.
"""
from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks.errors import UserError, one_line
from benchmarks.run import Run
from orchestration import compose

TOP_KEYS = ("name", "description", "fixed", "grid", "claims")     # claims: read by bench report --claims
_PLAIN = re.compile(r"^[\w./@:+-]+$", re.ASCII)


class DuplicateKey(yaml.YAMLError):
    """A mapping of the sweep file names one key twice."""

    def __init__(self, key, first: yaml.Mark, again: yaml.Mark):
        super().__init__(f"duplicate key {key!r} (line {again.line + 1}; first on line "
                         f"{first.line + 1})")
        self.key = key


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with a repeated key (``DuplicateKey``).
    Merge keys (``<<: *anchor``) still override as YAML says."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:           # an unhashable key: the base class says so
                    continue
                if first is not key_node:
                    raise DuplicateKey(key, first.start_mark, key_node.start_mark)
        return super().construct_mapping(node, deep)


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
        text = path.read_bytes().decode("utf-8")
    except PermissionError as err:
        raise UserError(f"{path}: sweep file not readable ({err.strerror})") from None
    except OSError as err:
        raise UserError(f"{path}: sweep file cannot be read "
                        f"({one_line(err.strerror or err)})") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not a text file (not UTF-8 at byte {err.start}); a sweep "
                        f"file is YAML text") from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)
    except DuplicateKey as err:
        raise UserError(f"{path}: {err}; each key may appear once in a mapping") from None
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
            seen: list = []
            for value in values:
                if any(type(value) is type(v) and value == v for v in seen):
                    raise UserError(f"{where}: {key!r} lists the value {value!r} twice; "
                                    f"each value may appear once")
                seen.append(value)
    # A grid block may override a fixed default for its runs (the other blocks keep it); a key
    # every grid sets as well would silently lose its fixed value in every run.
    for key in fixed:
        if all(key in grid for grid in grids):
            where = "the grid" if len(grids) == 1 else "every grid"
            raise UserError(f"{path}: {key!r} is set both under 'fixed' and in {where}, so its "
                            f"fixed value is never used; set it in one place")
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
                 need_data: bool = True) -> list[Run]:
    """Every distinct run, resolved (the first of equal run ids is kept)."""
    runs, seen = [], set()
    for words in expand(spec, overrides, launcher):
        try:
            run = compose.resolve(words, need_data)
        except UserError as err:
            raise UserError(f"{path}: {one_line(err)}") from None
        if runs and (run.cfg.launcher != runs[0].cfg.launcher
                     or run.cfg.engine.devices != runs[0].cfg.engine.devices):
            raise UserError(f"{path}: all runs of a sweep share one launcher and engine.devices;"
                            f" set them under 'fixed', not in the grid")
        if run.run_id not in seen:
            seen.add(run.run_id)
            runs.append(run)
    return runs
