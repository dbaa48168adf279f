"""The budget grammar and the schedules derived from planned steps."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.budget import budget_flops, parse_budget, plan_steps, warmup_cosine
from benchmarks.errors import UserError


@pytest.mark.parametrize("text,value,unit", [
    ("100ep", 100, "ep"), ("2000step", 2000, "step"), ("500kimg", 5e5, "img"),
    ("2Mimg", 2e6, "img"), ("1.5pflop", 1.5, "pflop"), ("3tflop", 3, "tflop"),
    ("0.5h", 0.5, "h"), ("1e3img", 1000, "img"),
])
def test_parse(text, value, unit):
    b = parse_budget(text)
    assert b.value == pytest.approx(value) and b.unit == unit
    assert b.unfair == (unit == "h")


@pytest.mark.parametrize("text", ["", "100", "ep", "10 epochs", "-3ep", "0ep", "1kpflop", "3x",
                                  "1.2.3ep", "nanep"])
def test_malformed_lists_units(text):
    with pytest.raises(UserError) as err:
        parse_budget(text)
    msg = str(err.value)
    assert "\n" not in msg and repr(text) in msg
    if "multiplier" not in msg and "positive" not in msg:
        for unit in ("ep", "step", "img", "tflop", "pflop", "h"):
            assert unit in msg


def test_units_convert_to_flops():
    img, n, batch = 3.0e9, 1000, 64
    assert budget_flops(parse_budget("2ep"), img, n, batch) == 2 * n * 2 * img
    assert budget_flops(parse_budget("10step"), img, n, batch) == 10 * batch * 2 * img
    assert budget_flops(parse_budget("4kimg"), img, n, batch) == 4000 * img
    assert budget_flops(parse_budget("2tflop"), img, n, batch) == 2e12
    assert budget_flops(parse_budget("1pflop"), img, n, batch) == 1e15
    assert budget_flops(parse_budget("1h"), img, n, batch) is None
    # one epoch at two views per sample costs what 2N image passes cost
    assert budget_flops(parse_budget("1ep"), img, n, batch) == budget_flops(
        parse_budget(f"{2 * n}img"), img, n, batch)


@given(st.floats(1e9, 1e18), st.floats(1e6, 1e13))
def test_plan_spends_the_budget_within_one_step(total, step):
    steps = plan_steps(total, step)
    assert steps >= 1
    if total >= step:
        assert abs(steps * step - total) <= step / 2 + 1e-6 * total


@given(st.integers(1, 5000), st.floats(0, 0.5))
def test_schedule_covers_planned_steps(total, warm):
    lrs = [warmup_cosine(k, total, warm) for k in range(total)]
    assert all(0 <= v <= 1 for v in lrs)
    assert max(lrs) == pytest.approx(1.0, abs=max(1e-9, math.pi / max(1, total)))
    if total > 4:
        # decays towards zero at the planned end, never cut short
        assert lrs[-1] < 0.05 + 2.5 / total
        assert warmup_cosine(total, total, warm) == pytest.approx(0.0, abs=1e-12)


def test_schedule_stretches_with_budget():
    # the same relative point of two budgets has the same learning rate
    for frac in (0.1, 0.5, 0.9):
        assert warmup_cosine(int(frac * 1000), 1000, 0.1) == pytest.approx(
            warmup_cosine(int(frac * 4000), 4000, 0.1), abs=1e-3)
