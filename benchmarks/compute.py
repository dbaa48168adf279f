"""A run's compute plan: what it may spend, and how many steps each phase takes.

The one place that turns a config, the data sizes and the measured costs into steps:

- :func:`plan` fixes the budget once per run (``budget.parse_budget``, in FLOPs from the
  measured cost of one image at ``pretrain.res``); hours budgets stay in seconds.
- :meth:`Plan.pretrain_steps`: the budget over a method's measured FLOPs per step (within one
  step of the budget), or for an hours budget the hours over a step's measured seconds.
- :meth:`Plan.finetune_steps`: the recipe (:func:`recipe_steps`, ``finetune.epochs`` passes
  over the labelled ids, or ``finetune.steps`` whatever their number) plus, under ``match=total``, the budget the run did not spend on
  pre-training, at the fine-tuning step's measured cost.
- :func:`plan_run`: both phases' steps of one run, made before any training from its
  measured step costs (the runner, which prints it as the run's start header) or from
  estimated ones (:func:`estimate`, from the backbone's cost per image and the method's passes
  per sample: what ``bench run --dry-run`` and ``bench sweep --dry-run`` print).

What the runner planned is recorded as is in the record's ``compute`` block.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import DictConfig

from benchmarks.budget import Budget, budget_flops, parse_budget, plan_steps
from benchmarks.errors import UserError

MAX_STEPS = 1e8     # more steps than any study runs: a budget this large has the wrong unit


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
    """Fine-tuning steps of the recipe: ``finetune.steps`` where set, so that every label
    fraction gets the same optimisation; otherwise ``finetune.epochs`` passes over the
    ``n_labelled`` ids (fewer labels, fewer steps)."""
    if cfg.finetune.get("steps") is not None:
        return int(cfg.finetune.steps)
    return max(1, math.ceil(cfg.finetune.epochs * n_labelled / cfg.finetune.batch_size))


def recipe_words(cfg: DictConfig) -> str:
    """The setting that fixes the recipe's length, as the user would write it."""
    if cfg.finetune.get("steps") is not None:
        return f"finetune.steps={cfg.finetune.steps}"
    return f"finetune.epochs={cfg.finetune.epochs:g}"


@dataclass(frozen=True)
class Costs:
    """What a run's steps are planned from: data sizes and the cost of one step of each phase
    (``measured`` True: counted on the run's first batches; False: estimated)."""

    n_pretrain: int
    n_labelled: int
    image_flops: float                  # one image, forward + backward, at pretrain.res
    pretrain_step_flops: float          # 0: an init-only method
    finetune_step_flops: float
    recipe_steps: int                   # recipe_steps(): finetune.steps, or epochs over the labelled ids
    measured: bool
    step_seconds: Callable[[], float] | None = None     # an hours budget: times one step


@dataclass(frozen=True)
class RunPlan:
    """Both phases of one run, fixed before it trains. ``pretrain_steps`` is NaN for an
    estimated hours budget (timed when it runs); ``cached``: the pre-training comes from the
    cache, its steps are what the cached run spent."""

    budget: Plan
    pretrain_steps: float
    finetune_steps: int
    recipe_steps: int
    pretrain_flops: float
    finetune_flops: float
    measured: bool
    cached: bool = False

    @property
    def budget_flops(self) -> float | None:
        return self.budget.flops


def plan_run(cfg: DictConfig, costs: Costs, cached: dict | None = None) -> RunPlan:
    """The plan of one run: pre-training steps from the budget at the step's cost (or, for a
    cached pre-training, what it spent: ``cached`` is its meta), then fine-tuning steps from the
    recipe plus, under ``match=total``, the budget left at the fine-tuning step's cost."""
    if costs.n_labelled < cfg.finetune.batch_size:
        held = (f" after data.val_fraction={cfg.data.val_fraction:g} held out"
                if cfg.data.val_fraction else "")
        need = math.ceil(100 * cfg.finetune.label_fraction * (cfg.finetune.batch_size + 0.5)
                         / max(costs.n_labelled, 1)) / 100          # rounded up: enough ids
        raise UserError(f"finetune.label_fraction={cfg.finetune.label_fraction:g} leaves "
                        f"{costs.n_labelled} labelled images{held}; one batch of "
                        f"finetune.batch_size={cfg.finetune.batch_size} needs "
                        + (f"{cfg.finetune.batch_size}: use label_fraction >= about {need:.2g}" if need <= 1
                           else f"{cfg.finetune.batch_size}: even all labels are too few; lower "
                                f"finetune.batch_size" + (" or data.val_fraction" if held else "")))
    p = plan(cfg, costs.image_flops, costs.n_pretrain)
    if cached is not None:
        pre_steps, pre_flops = cached["steps"], float(cached["flops"])
    elif costs.pretrain_step_flops <= 0:
        pre_steps, pre_flops = 0, 0.0
    elif p.flops is None and costs.step_seconds is None:
        pre_steps, pre_flops = math.nan, math.nan       # an hours budget: timed when it runs
    else:
        pre_steps = p.pretrain_steps(costs.pretrain_step_flops, costs.step_seconds)
        pre_flops = pre_steps * costs.pretrain_step_flops
    if cached is None and costs.pretrain_step_flops > 0 and p.flops is not None:
        exact = p.flops / costs.pretrain_step_flops
        if exact < 0.5:
            raise UserError(f"budget={cfg.budget} buys {exact:.2g} pre-training steps of "
                            f"{cfg.method.name}: less than one; give a larger budget")
    spent = 0.0 if math.isnan(pre_flops) else pre_flops
    fine = p.finetune_steps(costs.recipe_steps, costs.finetune_step_flops, spent)
    for phase, n, keys in (("pre-training", pre_steps, f"budget={cfg.budget}: check its unit "
                                                        f"(ep, step, img, tflop, pflop, h)"),
                           ("fine-tuning", fine, f"check {recipe_words(cfg)}"
                                                 + (f" and budget={cfg.budget} (match=total)"
                                                    if cfg.match == "total" else ""))):
        if not math.isnan(n) and n > MAX_STEPS:
            raise UserError(f"this run plans {n:.3g} {phase} steps, more than {MAX_STEPS:.0e}: {keys}")
    return RunPlan(budget=p, pretrain_steps=pre_steps, finetune_steps=fine,
                   recipe_steps=costs.recipe_steps, pretrain_flops=pre_flops,
                   finetune_flops=fine * costs.finetune_step_flops, measured=costs.measured,
                   cached=cached is not None)


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
    """:func:`plan_run` with step costs estimated instead of measured: a pre-training step costs
    ``pretrain.batch_size x passes_per_sample`` image passes (0 passes: no pre-training), a
    fine-tuning step ``finetune.batch_size`` passes at ``data.res`` (the pose head is small)."""
    costs = Costs(n_pretrain=n_pretrain, n_labelled=n_labelled, image_flops=image_flops_pretrain,
                  pretrain_step_flops=cfg.pretrain.batch_size * passes_per_sample * image_flops_pretrain,
                  finetune_step_flops=cfg.finetune.batch_size * image_flops_finetune,
                  recipe_steps=recipe_steps(cfg, n_labelled), measured=False)
    r = plan_run(cfg, costs)
    return Estimate(budget_flops=math.nan if r.budget_flops is None else r.budget_flops,
                    pretrain_steps=r.pretrain_steps, finetune_steps=r.finetune_steps,
                    pretrain_flops=r.pretrain_flops, finetune_flops=r.finetune_flops)
