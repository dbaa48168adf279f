"""The top layer: what a user runs. The CLI (``bench``), config composition, launch (here, a
local subprocess, SLURM), jobs and their state, sweeps, status, clean and the ablation table.

It may import every package below it (``eval``, ``methods``, ``benchmarks``); nothing below
imports it. The layers are checked by ``tests/test_layers.py``.
"""
