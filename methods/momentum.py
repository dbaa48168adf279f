"""The momentum teacher shared by BYOL, MoCo v3 and DINO: an exponential moving average of
the student, updated after every optimizer step with the cosine momentum schedule the three
papers use,

    m(k) = 1 - (1 - m_base) (cos(pi k / K) + 1) / 2        (m(0) = m_base, m(K) = 1)

for step k of K (lightly's ``cosine_schedule``), and ``teacher <- m teacher + (1 - m) student``
(lightly's ``update_momentum``). The teacher never receives a gradient: its parameters do not
require one, and it is only run under ``torch.no_grad``. It is a submodule of the method, so
checkpoints hold it and a resumed run repeats the uninterrupted one; the pre-training cache
keeps only the student's backbone, which is what fine-tuning starts from.

The steps done so far and planned are kept in buffers (``steps_done``, ``steps_total``), so that schedules that a method
reads inside its loss (DINO's teacher temperature, its frozen last layer) resume too.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


def momentum_at(step: int, steps: int, base: float) -> float:
    """The cosine momentum schedule from ``base`` at step 0 to 1 at the last step."""
    from lightly.utils.scheduler import cosine_schedule

    return float(cosine_schedule(step, steps + 1, base, 1.0))   # lightly's runs to max_steps - 1


def teacher_of(student: nn.Module) -> nn.Module:
    """A frozen copy of ``student``: same weights, no gradients."""
    import copy

    from lightly.models.utils import deactivate_requires_grad

    teacher = copy.deepcopy(student)
    deactivate_requires_grad(teacher)
    return teacher


class MomentumTeacher:
    """Mix-in for a ``Method``: ``self.pairs`` lists (student, teacher) module pairs and
    ``self.momentum_base`` the schedule's start; ``after_step`` moves every teacher."""

    pairs: list[tuple[nn.Module, nn.Module]]
    momentum_base: float

    def init_teacher(self, *students: nn.Module) -> list[nn.Module]:
        """Teachers for ``students`` (registered by the caller as attributes), and the
        ``steps_done`` buffer."""
        import torch

        teachers = [teacher_of(s) for s in students]
        self.pairs = list(zip(students, teachers))
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("steps_total", torch.zeros((), dtype=torch.long))
        return teachers

    def progress(self) -> float:
        """The fraction of pre-training done (0 before the first step)."""
        total = int(self.steps_total)
        return int(self.steps_done) / total if total else 0.0

    def momentum(self, step: int, steps: int) -> float:
        return momentum_at(step, steps, self.momentum_base)

    def after_step(self, step: int, steps: int) -> None:
        import torch
        from lightly.models.utils import update_momentum

        m = self.momentum(step, steps)
        with torch.no_grad():
            for student, teacher in self.pairs:
                update_momentum(student, teacher, m)
            self.steps_done.fill_(step)
            self.steps_total.fill_(steps)
