"""A run's compute plan: what it may spend, and how many steps each phase takes.

The one place that turns a config, the data sizes and the measured costs into steps:

- :func:`plan` fixes the budget once per run (``budget.parse_budget``, in FLOPs from the
  measured cost of one image at ``pretrain.res``); hours budgets stay in seconds.
- :meth:`Plan.pretrain_steps`: the budget over a method's measured FLOPs per step (within one
  step of the budget), or for an hours budget the hours over a step's measured seconds.
- :meth:`Plan.finetune_steps`: the recipe (:func:`recipe_steps`, ``finetune.epochs`` passes
  over the labelled ids) plus, under ``match=total``, the budget the run did not spend on
  pre-training, at the fine-tuning step's measured cost.
- :func:`estimate`: the same plan before anything runs, from the backbone's cost per image and
  the method's passes per sample (what ``bench run --dry-run`` and ``bench sweep --dry-run``
  print).

What the runner planned is recorded as is in the record's ``compute`` block.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import DictConfig

from benchmarks.budget import Budget, budget_flops, parse_budget, plan_steps


@dataclass(frozen=True)
class Plan:
    """One run's budget, fixed: ``flops`` None for a wall-clock (hours) budget."""

    budget: Budget
    match: str
    image_flops: float
    flops: float | None

    @property
    def unfair(self) -> bool:
        return self.budget.unfair

    def pretrain_steps(self, step_flops: float, step_seconds: Callable[[], float]) -> int:
        """Pre-training steps: the budget over ``step_flops``; an hours budget over the
        seconds ``step_seconds()`` measures (called only then)."""
        if self.flops is None:
            return max(1, int(self.budget.value * 3600 / step_seconds()))
        return plan_steps(self.flops, step_flops)

    def finetune_extra(self, pretrain_spent: float) -> float:
        """FLOPs added to the fine-tuning recipe: under ``match=total`` the budget not spent
        on pre-training, otherwise none."""
        if self.match != "total" or self.flops is None:
            return 0.0
        return max(0.0, self.flops - pretrain_spent)

    def finetune_steps(self, recipe: int, step_flops: float, pretrain_spent: float) -> int:
        """Fine-tuning steps: the ``recipe`` steps, plus :meth:`finetune_extra` at ``step_flops``."""
        extra = self.finetune_extra(pretrain_spent)
        return plan_steps(recipe * step_flops + extra, step_flops) if extra > 0 else recipe


def plan(cfg: DictConfig, image_flops: float, n_pretrain: int) -> Plan:
    """The budget of ``cfg`` fixed for a pre-training set of ``n_pretrain`` images and a
    measured ``image_flops`` (one forward+backward pass at ``pretrain.res``)."""
    budget = parse_budget(cfg.budget)          # parsed (and cached) by compose.validate
    return Plan(budget, cfg.match, image_flops,
                budget_flops(budget, image_flops, n_pretrain, cfg.pretrain.batch_size))


def recipe_steps(cfg: DictConfig, n_labelled: int) -> int:
    """Fine-tuning steps of the recipe: ``finetune.epochs`` passes over the labelled ids."""
    return max(1, math.ceil(cfg.finetune.epochs * n_labelled / cfg.finetune.batch_size))


@dataclass(frozen=True)
class Estimate:
    """A run's plan before it runs: steps and FLOPs of both phases (NaN where an hours
    budget leaves them open)."""

    budget_flops: float
    pretrain_steps: float
    finetune_steps: int
    pretrain_flops: float
    finetune_flops: float


def estimate(cfg: DictConfig, passes_per_sample: int, n_pretrain: int, n_labelled: int,
             image_flops_pretrain: float, image_flops_finetune: float) -> Estimate:
    """:func:`plan` with step costs estimated instead of measured: a pre-training step costs
    ``pretrain.batch_size x passes_per_sample`` image passes (0 passes: no pre-training), a
    fine-tuning step ``finetune.batch_size`` passes at ``data.res`` (the pose head is small)."""
    p = plan(cfg, image_flops_pretrain, n_pretrain)
    total = math.nan if p.flops is None else p.flops
    if passes_per_sample == 0:
        pre_steps = 0
    elif p.flops is None:
        pre_steps = math.nan                            # an hours budget: timed when it runs
    else:
        pre_steps = round(p.flops / (cfg.pretrain.batch_size * passes_per_sample * image_flops_pretrain))
    spent = total if passes_per_sample > 0 else 0.0
    step = cfg.finetune.batch_size * image_flops_finetune
    return Estimate(budget_flops=total, pretrain_steps=pre_steps,
                    finetune_steps=p.finetune_steps(recipe_steps(cfg, n_labelled), step, spent),
                    pretrain_flops=spent,
                    finetune_flops=cfg.finetune.epochs * n_labelled * image_flops_finetune
                    + p.finetune_extra(spent))
