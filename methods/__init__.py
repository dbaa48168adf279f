"""The method registry: one explicit dict from name to method, one file per method.

Modules are imported on first use (``bench --help`` stays fast). A second registration of
a name is an error, never a silent overwrite.
"""
from __future__ import annotations

import importlib

from benchmarks.errors import UserError

# name -> module under methods/; each module exposes METHOD, a subclass of methods.base.Method
MODULES: dict[str, str] = {
    "random": "methods.random",
    "imagenet": "methods.imagenet",
    "simclr": "methods.simclr",
    "peclr": "methods.peclr",
    "pairwise": "methods.pairwise",
    "jointcon": "methods.jointcon",
    "vicreg": "methods.vicreg",
    "trajreg": "methods.trajreg",
    "supervised2d": "methods.supervised2d",
    "synthetic3d": "methods.synthetic3d",
    "weights": "methods.weights",
    "simhand": "methods.simhand",
    "tempclr": "methods.tempclr",
    "byol": "methods.byol",
    "mocov3": "methods.mocov3",
    "dino": "methods.dino",
    "barlowtwins": "methods.barlowtwins",
    "mae": "methods.mae",
    "control": "methods.control",
}

_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Add a method class; a name registered twice raises."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method {cls.name!r} is registered twice "
                         f"({_REGISTRY[cls.name].__module__} and {cls.__module__})")
    _REGISTRY[cls.name] = cls
    return cls


def names() -> list[str]:
    return list(MODULES)


def get(name: str) -> type:
    if name not in MODULES:
        raise UserError(f"unknown method {name!r}; choose one of: {', '.join(MODULES)}")
    if name not in _REGISTRY:
        cls = importlib.import_module(MODULES[name]).METHOD
        if cls.name != name:
            raise ValueError(f"{MODULES[name]} declares name {cls.name!r}, registry says {name!r}")
        register(cls)
    return _REGISTRY[name]


def all_methods() -> dict[str, type]:
    return {n: get(n) for n in MODULES}
