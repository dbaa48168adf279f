"""The shared training loop: exact resume, NaN guard, deterministic data order."""
import sys

import pytest
import torch
from torch import nn

from benchmarks import batches as B
from benchmarks import engine as E
from benchmarks.config import EngineConfig


def _phase(tmp, steps=30, fail_at=None, stop_at=None, seed=0, loss_nan_at=None):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(100, 8, generator=g)
    src = B.TensorSource({"x": x, "y": x.sum(1, keepdim=True).sin()})
    order = B.StepIndices(len(src), 12, seed)
    calls = {"n": 0}

    def loss_fn(m, batch, gen):
        calls["n"] += 1
        noise = torch.randn(batch["x"].shape, generator=gen) * 0.1   # uses the step generator
        loss = ((m(batch["x"] + noise) - batch["y"]) ** 2).mean()
        if stop_at is not None and calls["n"] == stop_at:
            E.request_stop()
        if loss_nan_at is not None and calls["n"] == loss_nan_at:
            loss = loss * float("nan")
        return loss, {"mse": loss.detach()}

    return E.Phase(name="pretrain", module=model, loss_fn=loss_fn,
                   batches=lambda start: B.iterate(src, order, start, steps),
                   steps=steps, lr=1e-2, weight_decay=1e-4, warmup_frac=0.2, images_per_step=12,
                   seed=seed, ckpt_dir=tmp,
                   evaluate=lambda m, k: {"w": float(sum(p.detach().sum() for p in m.parameters()))},
                   eval_steps=(10, 30))


def _cfg(**kw):
    return EngineConfig(checkpoint_every=7, log_every=3, progress=False, **kw)


def test_resume_equals_uninterrupted(tmp_path):
    ref_ph = _phase(tmp_path / "ref")
    ref = E.Engine(_cfg()).fit(ref_ph)

    E.clear_stop()
    ph = _phase(tmp_path / "cut", stop_at=17)
    with pytest.raises(E.Preempted):
        E.Engine(_cfg()).fit(ph)
    E.clear_stop()
    resumed_ph = _phase(tmp_path / "cut")            # a fresh process: new model, same folder
    out = E.Engine(_cfg()).fit(resumed_ph)
    assert out.resumed_from == 17
    for a, b in zip(ref_ph.module.state_dict().values(), resumed_ph.module.state_dict().values()):
        assert torch.equal(a, b)
    strip = lambda c: [{k: v for k, v in r.items() if k not in ("data_s", "step_s")} for r in c]
    assert strip(out.curve) == strip(ref.curve)
    assert out.evals == ref.evals


def test_nan_guard_names_the_step(tmp_path):
    with pytest.raises(E.TrainingError, match=r"non-finite loss .* step 5 of 30"):
        E.Engine(_cfg()).fit(_phase(tmp_path, loss_nan_at=5))


def test_finished_phase_is_not_trained_again(tmp_path):
    first = E.Engine(_cfg()).fit(_phase(tmp_path))
    ph = _phase(tmp_path, loss_nan_at=1)           # would fail if any step ran
    again = E.Engine(_cfg()).fit(ph)
    assert again.resumed_from == 30 and again.curve == first.curve


def test_step_indices_are_a_function_of_seed_and_step():
    a, b = B.StepIndices(10, 4, seed=3), B.StepIndices(10, 4, seed=3)
    seq = [a(k) for k in range(10)]
    assert all(torch.equal(b(k), seq[k]) for k in reversed(range(10)))
    # each pass is a permutation: 5 steps of 4 cover 20 draws = every sample twice
    counts = torch.bincount(torch.cat(seq[:5]), minlength=10)
    assert counts.tolist() == [2] * 10
    assert not torch.equal(B.StepIndices(10, 4, seed=4)(0), seq[0])


def test_no_decay_on_biases_and_norms():
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    decay, no_decay = E.param_groups(m, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 3])]
    assert len(no_decay["params"]) == 3


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])         # killed mid-write, or a full disk


@pytest.mark.parametrize("damage", ["last", "both"])
def test_a_truncated_checkpoint_resumes_from_the_previous_or_starts_over(tmp_path, capsys, damage):
    """A checkpoint that cannot be read costs the steps since the one before it (or the phase),
    never the run: the result equals the uninterrupted run's, with a line naming the files."""
    ref_ph = _phase(tmp_path / "ref")
    E.Engine(_cfg()).fit(ref_ph)

    E.clear_stop()
    with pytest.raises(E.Preempted):
        E.Engine(_cfg()).fit(_phase(tmp_path / "cut", stop_at=17))   # saves at 7, 14 and 17
    E.clear_stop()
    last, prev = tmp_path / "cut" / E.CKPT, tmp_path / "cut" / E.PREV
    assert torch.load(prev, weights_only=False)["step"] == 14
    _truncate(last)
    if damage == "both":
        _truncate(prev)
    capsys.readouterr()
    resumed_ph = _phase(tmp_path / "cut")
    out = E.Engine(_cfg()).fit(resumed_ph)
    err = capsys.readouterr().err
    assert f"checkpoint {last} cannot be read" in err
    if damage == "last":
        assert out.resumed_from == 14 and f"resuming from the previous checkpoint {prev}" in err
    else:
        assert out.resumed_from == 0 and "starting the phase over" in err
    for a, b in zip(ref_ph.module.state_dict().values(), resumed_ph.module.state_dict().values()):
        assert torch.equal(a, b)


def test_progress_lines_when_the_output_is_not_a_terminal(tmp_path):
    import io

    from rich.console import Console

    buf = io.StringIO()
    E.Engine(EngineConfig(checkpoint_every=7, log_every=1, progress=True, progress_every_s=0.0),
             console=Console(file=buf)).fit(_phase(tmp_path, steps=5))
    lines = buf.getvalue().splitlines()
    assert len(lines) == 5 and "\x1b" not in buf.getvalue()
    assert lines[0].startswith("pretrain step 1/5 loss ") and lines[-1].startswith("pretrain step 5/5 ")
    assert all("img/s elapsed " in line and " ETA " in line for line in lines)


@pytest.mark.parametrize("kind,pattern", [("csv", "pretrain/version_0/metrics.csv"),
                                          ("tensorboard", "pretrain/version_0/events.out.tfevents.*")])
def test_the_logger_writes_the_curve_under_the_log_folder(tmp_path, kind, pattern):
    E.Engine(EngineConfig(checkpoint_every=7, log_every=3, progress=False, logger=kind),
             log_dir=tmp_path / "logs").fit(_phase(tmp_path / "ck", steps=9))
    files = list((tmp_path / "logs").glob(pattern))
    assert len(files) == 1
    if kind == "csv":
        import pandas as pd

        table = pd.read_csv(files[0])
        assert table["step"].dropna().astype(int).tolist()[:3] == [3, 6, 9]
        assert table["loss"].notna().sum() == 3


def test_no_host_synchronisation_between_logging_steps(tmp_path, monkeypatch):
    """Every conversion of a tensor to a Python value made by the loop itself (the points at
    which a GPU would synchronise) falls on a logging, evaluation or checkpoint step."""
    steps_seen = []
    ph = _phase(tmp_path, steps=30)
    inner = ph.loss_fn

    def counting_loss(m, batch, gen):
        steps_seen.append(len(steps_seen) + 1)
        return inner(m, batch, gen)

    ph.loss_fn = counting_loss
    syncs = []
    for name in ("__bool__", "__float__", "__int__", "item", "tolist"):
        real = getattr(torch.Tensor, name)

        def wrapped(self, *a, _real=real, **kw):
            if sys._getframe(1).f_code.co_filename.endswith("benchmarks/engine.py"):
                syncs.append(steps_seen[-1] if steps_seen else 0)
            return _real(self, *a, **kw)
        monkeypatch.setattr(torch.Tensor, name, wrapped)
    E.Engine(EngineConfig(checkpoint_every=14, log_every=4, progress=False)).fit(ph)
    allowed = {4, 8, 12, 16, 20, 24, 28, 30} | {10} | {14, 28}     # log, eval, checkpoint steps
    assert syncs and set(syncs) <= allowed, sorted(set(syncs) - allowed)
