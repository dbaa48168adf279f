"""`bench evaluate` logic: official file formats in, the metrics record out, one-line errors."""
from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from benchmarks.errors import UserError
from eval import evaluate
from eval.evaluate import main
from eval.metrics import freihand_metrics
from orchestration import cli

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


def pair(xyz) -> list:
    """The official submission shape: [xyz_list, verts_list], one entry of each per sample."""
    xyz = np.asarray(xyz, dtype=float)
    return [xyz.tolist(), np.zeros((len(xyz), 778, 3)).tolist()]


def gt_xyz(gt_dir: Path) -> np.ndarray:
    return np.array(json.loads((gt_dir / "evaluation_xyz.json").read_text()))


def quiet() -> Console:
    return Console(record=True, width=120, file=io.StringIO())


def test_scores_submission_and_writes_record_metrics(gt_dir: Path, tmp_path: Path) -> None:
    gt = gt_xyz(gt_dir)
    pred = gt + np.random.default_rng(1).normal(0.0, 0.01, size=gt.shape)
    payload = [pred.tolist(), np.zeros((N, 778, 3)).tolist()]
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


def test_two_samples_in_a_pair_are_not_mistaken_for_a_bare_list(tmp_path: Path) -> None:
    root = tmp_path / "gt"
    root.mkdir()
    xyz = np.random.default_rng(2).normal(0.0, 0.04, size=(2, 21, 3))
    write(root / "evaluation_xyz.json", xyz.tolist())
    result = main(write(tmp_path / "pred.json", pair(xyz)), root, console=quiet())
    assert result["n"] == 2 and result["epe_mm"] == 0.0


@pytest.mark.parametrize("n", [2, 6])
def test_a_bare_xyz_list_is_refused_as_the_official_script_refuses_it(gt_dir: Path, tmp_path: Path,
                                                                      capsys, n: int) -> None:
    """The official eval.py asserts two lists; a bare list of two samples is not read as a pair."""
    bare = write(tmp_path / "pred.json", gt_xyz(gt_dir)[:n].tolist())
    cli_refuses(bare, gt_dir, tmp_path, capsys,
                rf"pred\.json: a bare xyz list of {n} entries; the official script and CodaLab "
                r"need \[xyz_list, verts_list\]")


def test_no_output_file_unless_asked(gt_dir: Path, tmp_path: Path) -> None:
    main(write(tmp_path / "pred.json", pair(gt_xyz(gt_dir))), gt_dir, console=quiet())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["freihand", "pred.json"]


def expect_user_error(pred: Path, gt_dir: Path, match: str, out: Path | None = None) -> None:
    with pytest.raises(UserError, match=match) as info:
        main(pred, gt_dir, out, console=quiet())
    assert "\n" not in str(info.value)
    if out is not None:
        assert not out.exists()


def test_count_mismatch(gt_dir: Path, tmp_path: Path) -> None:
    pred = write(tmp_path / "pred.json", pair(gt_xyz(gt_dir)[:-1]))
    expect_user_error(pred, gt_dir, "5 predictions for 6 ground-truth", out=tmp_path / "m.json")


def test_nan_and_inf(gt_dir: Path, tmp_path: Path) -> None:
    for bad in (float("nan"), float("inf")):
        pred = gt_xyz(gt_dir)
        pred[3, 4, 1] = bad
        path = tmp_path / "pred.json"
        path.write_text(json.dumps(pair(pred)))  # json writes NaN / Infinity literals
        expect_user_error(path, gt_dir, "1 of 6 entries hold NaN or inf, first at index 3", out=tmp_path / "m.json")


def test_nan_in_ground_truth(gt_dir: Path, tmp_path: Path) -> None:
    gt = gt_xyz(gt_dir)
    pred = write(tmp_path / "pred.json", pair(gt))
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
    expect_user_error(write(tmp_path / "pred.json", ragged), gt_dir,
                      r"got ragged entries: 1 of 6 entries are not 21 x 3, first at index 2 \(20 x 3\)")
    ragged[2] = ragged[3][:20] + [[0.1, 0.2]]
    expect_user_error(write(tmp_path / "pred.json", ragged), gt_dir,
                      r"1 of 6 entries are not 21 x 3, first at index 2 \(ragged lists\)")
    words = gt_xyz(gt_dir).tolist()
    words[0][0][0] = "x"
    expect_user_error(write(tmp_path / "pred.json", words), gt_dir,
                      r'got non-numbers: 1 of 6 entries .* first at index 0 \(the string "x"\)')


def test_unreadable_json(gt_dir: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "pred.json"
    truncated.write_text(json.dumps(gt_xyz(gt_dir).tolist())[:-7])
    expect_user_error(truncated, gt_dir, "pred.json: not valid JSON")
    binary = tmp_path / "pred.bin"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    expect_user_error(binary, gt_dir, "pred.bin: not valid JSON")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    expect_user_error(deep, gt_dir, "deep.json: not valid JSON")


def test_missing_files(gt_dir: Path, tmp_path: Path) -> None:
    pred = write(tmp_path / "pred.json", pair(gt_xyz(gt_dir)))
    expect_user_error(tmp_path / "nothing.json", gt_dir, "nothing.json: no such file")
    expect_user_error(tmp_path / "nothing.zip", gt_dir, "nothing.zip: no such file")
    expect_user_error(pred, tmp_path / "no_such_dir", "ground-truth folder not found")
    expect_user_error(pred, gt_dir / "evaluation", "evaluation_xyz.json: no such file")


def test_unwritable_output(gt_dir: Path, tmp_path: Path) -> None:
    pred = write(tmp_path / "pred.json", pair(gt_xyz(gt_dir)))
    blocker = write(tmp_path / "a_file", [])
    expect_user_error(pred, gt_dir, "cannot write", out=blocker / "metrics.json")


# --- refusals through the CLI: one line on stderr, exit status 2, nothing printed or written ---

@pytest.fixture(autouse=True)
def _results_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_RESULTS", str(tmp_path / "runs"))   # the CLI never looks at the repo's records


def cli_refuses(pred: Path, gt_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, match: str) -> str:
    """Run ``bench evaluate PRED --gt GT --out OUT``; assert exit 2, one stderr line matching
    ``match``, nothing on stdout and no OUT; return the line."""
    out = tmp_path / "scores" / "metrics.json"
    capsys.readouterr()
    rc = cli.main(["evaluate", str(pred), "--gt", str(gt_dir), "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and captured.err.endswith("\n") and captured.err.count("\n") == 1, captured.err
    assert lines[0].startswith("bench evaluate: error: ")
    assert re.search(match, lines[0]), lines[0]
    assert "Traceback" not in captured.err
    assert not out.exists() and not out.parent.exists()
    return lines[0]


def test_cli_scores_a_good_file(gt_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The control for the refusals below: the same call on a good file exits 0 and writes --out."""
    gt = gt_xyz(gt_dir)
    pred = write(tmp_path / "pred.json", [(gt + 0.001).tolist(), np.zeros((N, 778, 3)).tolist()])
    out = tmp_path / "scores" / "metrics.json"
    assert cli.main(["evaluate", str(pred), "--gt", str(gt_dir), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == freihand_metrics(gt + 0.001, gt)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("bad, shown", [(True, "true"), (False, "false"), ("0.1", 'the string "0.1"'),
                                        (None, "null"), ({"x": 1}, "a JSON object")])
def test_only_json_numbers_are_read(gt_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                    bad: object, shown: str) -> None:
    """true/false are not 1/0, "0.1" is not 0.1, null is not NaN: each is refused by entry index."""
    xyz = gt_xyz(gt_dir).tolist()
    xyz[4][7][2] = bad
    xyz[5][0][0] = bad
    payload = [xyz, np.zeros((N, 778, 3)).tolist()]
    line = cli_refuses(write(tmp_path / "pred.json", payload), gt_dir, tmp_path, capsys,
                       r"pred\.json.*got non-numbers: 2 of 6 entries hold something other than a number, "
                       rf"first at index 4 \({re.escape(shown)}\); only JSON numbers are read")
    assert "(xyz list)" in line


def test_non_numbers_in_ground_truth_too(gt_dir: Path, tmp_path: Path) -> None:
    gt = gt_xyz(gt_dir).tolist()
    pred = write(tmp_path / "pred.json", gt)
    gt[1][0][0] = True
    write(gt_dir / "evaluation_xyz.json", gt)
    expect_user_error(pred, gt_dir, r"evaluation_xyz\.json: .*non-numbers: 1 of 6 entries .* first at index 1 \(true\)")


@pytest.mark.parametrize("token", ["Infinity", "-Infinity", "NaN"])
def test_non_finite_tokens_are_refused_before_printing(gt_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                       token: str) -> None:
    xyz = gt_xyz(gt_dir)
    xyz[3, 4, 1] = xyz[5, 0, 0] = float(token.replace("Infinity", "inf"))
    text = json.dumps([xyz.tolist(), np.zeros((N, 778, 3)).tolist()])
    assert token in text            # Python's json writes and reads these non-standard tokens
    cli_refuses(write_text(tmp_path / "pred.json", text), gt_dir, tmp_path, capsys,
                r"2 of 6 entries hold NaN or inf, first at index 3$")


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_overflowing_predictions_are_refused(gt_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Finite but huge values (1e200) used to score EPE inf, and crash writing --out."""
    xyz = gt_xyz(gt_dir)
    xyz[1, 2, 0] = 1e200
    xyz[4, 0, 2] = -1e160
    cli_refuses(write(tmp_path / "pred.json", pair(xyz)), gt_dir, tmp_path, capsys,
                r"2 of 6 entries hold values too large to score \(up to 1e\+200; FreiHAND scores metres\), "
                r"first at index 1$")
    xyz[1, 2, 0] = xyz[4, 0, 2] = 1e140   # large but still finite arithmetic: scored, not refused
    result = main(write(tmp_path / "pred.json", pair(xyz)), gt_dir, console=quiet())
    assert 1e130 < result["epe_mm"] < float("inf")


def test_xyz_and_verts_of_different_lengths(gt_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    xyz = np.concatenate([gt_xyz(gt_dir)] * 4)        # 24 entries
    pred = write(tmp_path / "pred.json", [xyz.tolist(), np.zeros((5, 778, 3)).tolist()])
    cli_refuses(pred, gt_dir, tmp_path, capsys,
                r"pred\.json: \[xyz_list, verts_list\] of different lengths: 24 xyz entries, 5 verts entries")
    # equal lengths but wrong for the ground truth: both counts named
    pred = write(tmp_path / "pred.json", [xyz.tolist(), np.zeros((24, 778, 3)).tolist()])
    cli_refuses(pred, gt_dir, tmp_path, capsys, r"24 predictions for 6 ground-truth samples in .*evaluation_xyz\.json")
    cli_refuses(write(tmp_path / "pred.json", [xyz[:6].tolist(), 7]), gt_dir, tmp_path, capsys,
                r"expected \[xyz_list, verts_list\], but the second element is a single number")


def test_each_xyz_entry_must_be_21_by_3(gt_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    xyz = gt_xyz(gt_dir).tolist()
    xyz[2] = xyz[2][:20]
    xyz[3] = [row[:2] for row in xyz[3]]
    pred = write(tmp_path / "pred.json", [xyz, np.zeros((N, 778, 3)).tolist()])
    cli_refuses(pred, gt_dir, tmp_path, capsys,
                r"pred\.json \(xyz list\): expected N x 21 x 3 keypoints \(metres\), got ragged entries: "
                r"2 of 6 entries are not 21 x 3, first at index 2 \(20 x 3\)")


def zip_with(path: Path, files: dict[str, object]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data if isinstance(data, (str, bytes)) else json.dumps(data))
    return path


@pytest.mark.parametrize("member", ["pred.json", "submission/pred.json"])
def test_reads_a_codalab_submission_zip(gt_dir: Path, tmp_path: Path, member: str) -> None:
    gt = gt_xyz(gt_dir)
    pred = gt + np.random.default_rng(3).normal(0.0, 0.01, size=gt.shape)
    sub = zip_with(tmp_path / "submission.zip", {"readme.txt": "x", member: [pred.tolist(), np.zeros((N, 778, 3)).tolist()]})
    out = tmp_path / "m.json"
    result = main(sub, gt_dir, out, console=quiet())
    assert result == freihand_metrics(pred, gt) and json.loads(out.read_text()) == result
    renamed = tmp_path / "submission.bin"          # found by its content, whatever its name
    renamed.write_bytes(sub.read_bytes())
    assert main(renamed, gt_dir, console=quiet()) == result


def test_zip_without_pred_json(gt_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pred = gt_xyz(gt_dir).tolist()
    sub = zip_with(tmp_path / "sub.zip", {"predictions.json": pred, "a/b/pred.json": pred})
    cli_refuses(sub, gt_dir, tmp_path, capsys,
                r"sub\.zip: no pred\.json in this zip \(a FreiHAND CodaLab submission holds pred\.json at its "
                r"top level\); it holds predictions\.json, a/b/pred\.json$")
    sub = zip_with(tmp_path / "sub.zip", {"a/pred.json": pred, "b/pred.json": pred})
    cli_refuses(sub, gt_dir, tmp_path, capsys, r"sub\.zip: 2 pred\.json files in this zip")


def test_broken_zip_and_bad_contents(gt_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    broken = tmp_path / "pred.zip"
    broken.write_bytes(b"PK\x03\x04\xff\xfe\x00")
    cli_refuses(broken, gt_dir, tmp_path, capsys, r"pred\.zip: not a readable zip archive")
    sub = zip_with(tmp_path / "sub.zip", {"pred.json": "[[1, 2"})
    cli_refuses(sub, gt_dir, tmp_path, capsys, r"sub\.zip \(pred\.json\): not valid JSON")
    xyz = gt_xyz(gt_dir).tolist()
    xyz[1][1][1] = "1"
    sub = zip_with(tmp_path / "sub.zip", {"pred.json": [xyz, np.zeros((N, 778, 3)).tolist()]})
    cli_refuses(sub, gt_dir, tmp_path, capsys,
                r"sub\.zip \(pred\.json\) \(xyz list\): .*first at index 1 \(the string \"1\"\)")


def test_all_zero_template(gt_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    zeros = np.zeros((N, 21, 3)).tolist()
    payload = [zeros, np.zeros((N, 778, 3)).tolist()]
    line = cli_refuses(write(tmp_path / "pred.json", payload), gt_dir, tmp_path, capsys,
                       r"pred\.json: all 6 predictions are zero: this looks like the unfilled submission template")
    assert "scale" not in line and "another unit" not in line
    one = np.zeros((N, 21, 3))
    one[0, 0, 0] = 1e-3     # not the template: scored (with the scale warning), not refused
    assert main(write(tmp_path / "pred.json", pair(one)), gt_dir, console=quiet())["n"] == N


def test_missing_ground_truth_names_the_evaluation_download(gt_dir: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    pred = write(tmp_path / "pred.json", pair(gt_xyz(gt_dir)))
    line = cli_refuses(pred, gt_dir / "evaluation", tmp_path, capsys,
                       r"evaluation_xyz\.json: no such file: evaluation_xyz\.json comes in FreiHAND's separate "
                       r"evaluation download \(FreiHAND_pub_v2_eval\.zip\)")
    assert f"give its parent, {gt_dir}, as --gt" in line
    (gt_dir / "evaluation_xyz.json").unlink()
    line = cli_refuses(pred, gt_dir, tmp_path, capsys, r"FreiHAND_pub_v2_eval\.zip")
    assert f"unpack it into the FreiHAND root given as --gt ({gt_dir}), next to evaluation/" in line


# --- --out and --gt: refused in one line, with every file left as it was ---

def _snapshot(*roots: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for root in roots:
        for p in [root, *sorted(root.rglob("*"))] if root.is_dir() else [root]:
            out[str(p)] = p.read_bytes() if p.is_file() else None
    return out


def _cli_line(args: list[str], capsys: pytest.CaptureFixture) -> str:
    capsys.readouterr()
    rc = cli.main(["evaluate", *args])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == "" and captured.err.count("\n") == 1, captured
    return captured.err.strip()


@pytest.mark.parametrize("which", ["pred", "pred via ..", "gt file", "gt new file", "folder",
                                   "foreign json", "foreign text"])
def test_out_that_would_overwrite_inputs_or_other_files_is_refused(
        gt_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, which: str) -> None:
    pred = write(tmp_path / "pred.json", [(gt_xyz(gt_dir) + 0.001).tolist(), np.zeros((N, 778, 3)).tolist()])
    (tmp_path / "sub").mkdir()
    write(tmp_path / "other.json", {"epe_mm": 1.0})       # JSON, but not our metrics
    (tmp_path / "notes.txt").write_text("keep me\n")
    out, match = {
        "pred": (pred, "is the prediction file"),
        "pred via ..": (tmp_path / "sub" / ".." / "pred.json", "is the prediction file"),
        "gt file": (gt_dir / "evaluation_xyz.json", "inside the ground-truth folder"),
        "gt new file": (gt_dir / "evaluation" / "m.json", "inside the ground-truth folder"),
        "folder": (tmp_path / "sub", "is a folder"),
        "foreign json": (tmp_path / "other.json", "exists and is not a metrics JSON"),
        "foreign text": (tmp_path / "notes.txt", "exists and is not a metrics JSON"),
    }[which]
    before = _snapshot(tmp_path)
    line = _cli_line([str(pred), "--gt", str(gt_dir), "--out", str(out)], capsys)
    assert line.startswith("bench evaluate: error: --out ") and match in line, line
    assert _snapshot(tmp_path) == before
    with pytest.raises(UserError) as err:
        main(pred, gt_dir, out, console=quiet())
    assert "\n" not in str(err.value) and match in str(err.value)
    assert _snapshot(tmp_path) == before


def test_an_earlier_metrics_json_may_be_replaced(gt_dir: Path, tmp_path: Path) -> None:
    gt = gt_xyz(gt_dir)
    pred = write(tmp_path / "pred.json", pair((gt + 0.001)))
    out = tmp_path / "metrics.json"
    main(pred, gt_dir, out, console=quiet())
    write(pred, pair(gt + 0.002))
    assert main(pred, gt_dir, out, console=quiet()) == json.loads(out.read_text())
    assert json.loads(out.read_text()) == freihand_metrics(gt + 0.002, gt)


@pytest.mark.parametrize("gt", ["", "file"])
def test_gt_that_is_not_a_folder_is_one_line(gt_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch, gt: str) -> None:
    pred = write(tmp_path / "pred.json", pair(gt_xyz(gt_dir)))
    monkeypatch.chdir(gt_dir)              # '' must not mean the working folder
    arg = "" if gt == "" else str(gt_dir / "evaluation_xyz.json")
    out = tmp_path / "m.json"
    expected = ("--gt '': not a folder; give the FreiHAND root that holds evaluation_xyz.json"
                if gt == "" else
                f"--gt {arg}: not a folder (a file); give the FreiHAND root that holds evaluation_xyz.json")
    before = _snapshot(tmp_path)
    with pytest.raises(UserError) as err:
        main(pred, arg, out, console=quiet())
    assert str(err.value) == expected
    if gt == "file":       # the CLI parses --gt as a Path, for which '' is already '.'
        assert _cli_line([str(pred), "--gt", arg, "--out", str(out)], capsys) == \
            f"bench evaluate: error: {expected}"
    assert _snapshot(tmp_path) == before and not out.exists()
