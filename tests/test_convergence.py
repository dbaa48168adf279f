"""Whether fine-tuning converged, read on the validation curve: the relative change of
validation PA-EPE over the last quarter of steps, under 1 % in size."""
from __future__ import annotations

import pytest

from eval.convergence import CONVERGED, convergence


def curve(values, steps=400):
    n = len(values)
    return [{"step": round(steps * (i + 1) / n), "pa_epe_mm": 1.0, "val_pa_epe_mm": v} for i, v in enumerate(values)]


def test_the_last_quarter_decides():
    falling = convergence(curve([20.0, 17.0, 16.0, 15.0]), 400)
    assert falling["from_step"] == 300 and falling["change"] == pytest.approx(-1 / 16)
    assert not falling["converged"]
    flat = convergence(curve([20.0, 17.0, 15.05, 15.0]), 400)
    assert flat["converged"] and abs(flat["change"]) < CONVERGED
    rising = convergence(curve([20.0, 15.0, 15.0, 15.3]), 400)     # got worse by 2 %: not settled
    assert not rising["converged"] and rising["change"] > 0


def test_a_window_longer_than_a_quarter_when_no_point_sits_at_three_quarters():
    points = curve([20.0, 15.2, 15.0], 300)          # points at 100, 200, 300: from 200 (2/3)
    assert convergence(points, 300)["from_step"] == 200


def test_no_verdict_without_a_validation_curve_or_an_earlier_point():
    assert convergence(curve([15.0], 400), 400) is None
    assert convergence([{"step": 200, "pa_epe_mm": 1.0}, {"step": 400, "pa_epe_mm": 1.0}], 400) is None
