"""`bench evaluate` logic: official file formats in, the metrics record out, one-line errors."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from benchmarks.errors import UserError
from eval.evaluate import main
from eval.metrics import freihand_metrics

N = 6


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def gt_dir(tmp_path: Path) -> Path:
    """A FreiHAND-layout root: annotation files next to evaluation/."""
    rng = np.random.default_rng(0)
    root = tmp_path / "freihand"
    (root / "evaluation" / "rgb").mkdir(parents=True)
    xyz = rng.normal(0.0, 0.04, size=(N, 21, 3)) + [0.0, 0.0, 0.6]
    write(root / "evaluation_xyz.json", xyz.tolist())
    write(root / "evaluation_K.json", [[[389.0, 0, 112], [0, 389.0, 112], [0, 0, 1]]] * N)
    write(root / "evaluation_scale.json", np.linalg.norm(xyz[:, 9] - xyz[:, 10], axis=-1).tolist())
    return root


def gt_xyz(gt_dir: Path) -> np.ndarray:
    return np.array(json.loads((gt_dir / "evaluation_xyz.json").read_text()))


def quiet() -> Console:
    return Console(record=True, width=120, file=io.StringIO())


@pytest.mark.parametrize("with_verts", [True, False])
def test_scores_submission_and_writes_record_metrics(gt_dir: Path, tmp_path: Path, with_verts: bool) -> None:
    gt = gt_xyz(gt_dir)
    pred = gt + np.random.default_rng(1).normal(0.0, 0.01, size=gt.shape)
    payload = [pred.tolist(), np.zeros((N, 778, 3)).tolist()] if with_verts else pred.tolist()
    console = quiet()
    out = tmp_path / "scores" / "metrics.json"
    result = main(write(tmp_path / "pred.json", payload), gt_dir, out, console=console)

    assert result == freihand_metrics(pred, gt)
    assert json.loads(out.read_text()) == result
    record_keys = {"epe_mm", "pa_epe_mm", "auc", "pa_auc", "pck_thresholds_mm", "pck", "pa_pck",
                   "per_joint_pa_epe_mm"}
    assert record_keys <= set(result) and result["n"] == N
    text = console.export_text()
    for column in ("EPE mm", "PA-EPE mm", "AUC", "PA-AUC"):
        assert column in text
    assert f"{result['pa_epe_mm']:.2f}" in text and f"{result['auc']:.4f}" in text


def test_two_bare_samples_are_not_mistaken_for_a_submission_pair(tmp_path: Path) -> None:
    root = tmp_path / "gt"
    root.mkdir()
    xyz = np.random.default_rng(2).normal(0.0, 0.04, size=(2, 21, 3))
    write(root / "evaluation_xyz.json", xyz.tolist())
    result = main(write(tmp_path / "pred.json", xyz.tolist()), root, console=quiet())
    assert result["n"] == 2 and result["epe_mm"] == 0.0


def test_no_output_file_unless_asked(gt_dir: Path, tmp_path: Path) -> None:
    main(write(tmp_path / "pred.json", gt_xyz(gt_dir).tolist()), gt_dir, console=quiet())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["freihand", "pred.json"]


def expect_user_error(pred: Path, gt_dir: Path, match: str, out: Path | None = None) -> None:
    with pytest.raises(UserError, match=match) as info:
        main(pred, gt_dir, out, console=quiet())
    assert "\n" not in str(info.value)
    if out is not None:
        assert not out.exists()


def test_count_mismatch(gt_dir: Path, tmp_path: Path) -> None:
    pred = write(tmp_path / "pred.json", gt_xyz(gt_dir)[:-1].tolist())
    expect_user_error(pred, gt_dir, "5 predictions for 6 ground-truth", out=tmp_path / "m.json")


def test_nan_and_inf(gt_dir: Path, tmp_path: Path) -> None:
    for bad in (float("nan"), float("inf")):
        pred = gt_xyz(gt_dir)
        pred[3, 4, 1] = bad
        path = tmp_path / "pred.json"
        path.write_text(json.dumps(pred.tolist()))  # json writes NaN / Infinity literals
        expect_user_error(path, gt_dir, "1 of 6 entries hold NaN or inf, first at index 3", out=tmp_path / "m.json")


def test_nan_in_ground_truth(gt_dir: Path, tmp_path: Path) -> None:
    gt = gt_xyz(gt_dir)
    pred = write(tmp_path / "pred.json", gt.tolist())
    gt[0, 0, 0] = float("nan")
    (gt_dir / "evaluation_xyz.json").write_text(json.dumps(gt.tolist()))
    expect_user_error(pred, gt_dir, "evaluation_xyz.json: 1 of 6 entries hold NaN")


@pytest.mark.parametrize(
    "payload",
    [np.zeros((N, 21, 2)).tolist(), np.zeros((N, 20, 3)).tolist(), np.zeros((N, 63)).tolist(), [], {"xyz": 1}],
)
def test_wrong_shapes(gt_dir: Path, tmp_path: Path, payload: object) -> None:
    expect_user_error(write(tmp_path / "pred.json", payload), gt_dir, "expected N x 21 x 3")


def test_ragged_or_non_numeric(gt_dir: Path, tmp_path: Path) -> None:
    ragged = gt_xyz(gt_dir).tolist()
    ragged[2] = ragged[2][:20]
    expect_user_error(write(tmp_path / "pred.json", ragged), gt_dir, "ragged or non-numeric")
    words = gt_xyz(gt_dir).tolist()
    words[0][0][0] = "x"
    expect_user_error(write(tmp_path / "pred.json", words), gt_dir, "ragged or non-numeric")


def test_unreadable_json(gt_dir: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "pred.json"
    truncated.write_text(json.dumps(gt_xyz(gt_dir).tolist())[:-7])
    expect_user_error(truncated, gt_dir, "pred.json: not valid JSON")
    binary = tmp_path / "pred.zip"
    binary.write_bytes(b"PK\x03\x04\xff\xfe\x00")
    expect_user_error(binary, gt_dir, "pred.zip: not valid JSON")


def test_missing_files(gt_dir: Path, tmp_path: Path) -> None:
    pred = write(tmp_path / "pred.json", gt_xyz(gt_dir).tolist())
    expect_user_error(tmp_path / "nothing.json", gt_dir, "nothing.json: no such file")
    expect_user_error(pred, tmp_path / "no_such_dir", "ground-truth folder not found")
    expect_user_error(pred, gt_dir / "evaluation", "evaluation_xyz.json: no such file")


def test_unwritable_output(gt_dir: Path, tmp_path: Path) -> None:
    pred = write(tmp_path / "pred.json", gt_xyz(gt_dir).tolist())
    blocker = write(tmp_path / "a_file", [])
    expect_user_error(pred, gt_dir, "cannot write", out=blocker / "metrics.json")
