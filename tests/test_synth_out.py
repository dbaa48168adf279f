"""Where and how much ``generate`` (and so ``bench data synth``) writes: a complete set renamed
into place or nothing, never over an existing set, and bounded requests refused before any
file is written."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest

from benchmarks.data.freihand import FreiHAND
from benchmarks.errors import UserError
from benchmarks.synth import products
from benchmarks.synth.products import MAX_ITEMS, MIN_RES, generate
from orchestration.cli import main

RES = MIN_RES
REPO = Path(__file__).resolve().parents[1]


def digests(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` (and its own mode) with its bytes' hash."""
    out = {".": oct(root.stat().st_mode)}
    for p in sorted(root.rglob("*")):
        name = str(p.relative_to(root))
        out[name] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def one_line_error(call) -> str:
    with pytest.raises(UserError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and message.strip() == message
    return message


def leftovers(folder: Path) -> list[str]:
    """Temporary siblings of an output folder that a generation left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def set16(tmp_path_factory) -> Path:
    return generate("lab", tmp_path_factory.mktemp("set16") / "lab", 16, RES, 0, eval_n=4)


def test_a_non_empty_out_is_refused_in_one_line_and_left_unchanged(set16):
    before = digests(set16)
    message = one_line_error(lambda: generate("lab", set16, 4, RES, 0))
    assert message == (f"{set16}: output folder is not empty; synthetic data are written only "
                       f"into a new or empty folder (remove it or choose another)")
    assert digests(set16) == before and leftovers(set16.parent) == []


def test_the_cli_refuses_to_overwrite_a_set_with_status_2(set16, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = digests(set16)
    code = main(["data", "synth", "--n", "4", "--res", str(RES), "--out", str(set16)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err == f"bench data: error: {set16}: output folder is not empty; synthetic data " \
                  f"are written only into a new or empty folder (remove it or choose another)\n"
    assert digests(set16) == before
    # the 16-id set still reads as itself: 16 ids, one version each
    assert FreiHAND(set16, "train", RES).n_unique == 16


@pytest.mark.parametrize("what", ["file", "hidden file", "empty folder inside"])
def test_any_entry_makes_out_non_empty(tmp_path, what):
    out = tmp_path / "out"
    out.mkdir()
    if what == "file":
        (out / "notes.txt").write_text("keep me")
    elif what == "hidden file":
        (out / ".keep").write_bytes(b"")
    else:
        (out / "sub").mkdir()
    before = digests(out)
    assert "output folder is not empty" in one_line_error(
        lambda: generate("wild", out, 2, RES, 0))
    assert digests(out) == before and leftovers(tmp_path) == []


def test_an_out_that_is_a_file_is_refused_and_kept(tmp_path):
    out = tmp_path / "out"
    out.write_bytes(b"not a folder")
    message = one_line_error(lambda: generate("triplets", out, 2, RES, 0))
    assert message == (f"{out}: exists and is not a folder; synthetic data need a new or empty "
                       f"output folder")
    assert out.read_bytes() == b"not a folder" and leftovers(tmp_path) == []


def test_an_empty_existing_folder_is_filled_like_a_new_one(tmp_path):
    empty, new = tmp_path / "empty", tmp_path / "new"
    empty.mkdir()
    assert generate("lab", empty, 3, RES, 5, eval_n=2) == empty
    generate("lab", new, 3, RES, 5, eval_n=2)
    assert digests(empty) == digests(new)
    assert json.loads((empty / "synth.json").read_text())["n"] == 3
    assert leftovers(tmp_path) == []
    # the folder gets the permissions of a plain mkdir, not mkdtemp's 0700
    assert empty.stat().st_mode & 0o777 == 0o777 & ~_umask()


def test_a_symlink_to_an_empty_folder_gets_the_set_at_its_target(tmp_path):
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    link.symlink_to(real)
    assert generate("wild", link, 2, RES, 0) == link
    assert link.is_symlink() and (real / "synth.json").exists()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


Bad = namedtuple("Bad", "kwargs message")
BAD = {
    "n 0": Bad({"n": 0}, f"synthetic data n must be a whole number of items from 1 to "
                         f"{MAX_ITEMS:,}, got 0"),
    "n negative": Bad({"n": -3}, "got -3"),
    "n too many": Bad({"n": 100_000_000}, f"from 1 to {MAX_ITEMS:,}, got 100000000"),
    "n one too many": Bad({"n": MAX_ITEMS + 1}, f"got {MAX_ITEMS + 1}"),
    "n float": Bad({"n": 1e8}, "got 100000000.0"),
    "n bool": Bad({"n": True}, "got True"),
    "eval_n 0": Bad({"eval_n": 0}, f"the evaluation split eval_n must be a whole number of "
                                   f"items from 1 to {MAX_ITEMS:,}, got 0"),
    "eval_n too many": Bad({"eval_n": MAX_ITEMS + 1}, f"got {MAX_ITEMS + 1}"),
    "res too small": Bad({"res": MIN_RES - 1},
                         f"synthetic images need res >= {MIN_RES} pixels, got {MIN_RES - 1}"),
    "res float": Bad({"res": 64.0}, "got 64.0"),
}


@pytest.mark.parametrize("kind", ["lab", "triplets"])
@pytest.mark.parametrize("bad", list(BAD), ids=list(BAD))
def test_bounds_are_refused_in_one_line_before_anything_is_written(tmp_path, kind, bad):
    kwargs = {"n": 4, "res": RES, "seed": 0, "eval_n": None} | BAD[bad].kwargs
    for out in (tmp_path / "new" / "out", tmp_path / "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        message = one_line_error(lambda: generate(kind, out, **kwargs))
        assert BAD[bad].message in message
    assert not (tmp_path / "new").exists()
    assert list((tmp_path / "empty").iterdir()) == [] and leftovers(tmp_path) == []


def test_the_cli_refuses_out_of_bounds_with_status_2_and_writes_nothing(tmp_path, monkeypatch,
                                                                       capsys):
    monkeypatch.chdir(tmp_path)
    for flags, words in ((["--n", "100000000"], "got 100000000"),
                         (["--n", "0"], "got 0"),
                         (["--eval-n", "0"], "eval_n must be"),
                         (["--res", "16"], "res >= 32 pixels, got 16")):
        code = main(["data", "synth", "--out", str(tmp_path / "out"), *flags])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and words in err, err
        assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_a_set_larger_than_the_free_disk_space_is_refused(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(products.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 10**6, 10**6))
    need = products.estimated_bytes("lab", 1000, 128, 250)
    assert need > 10**6
    message = one_line_error(lambda: generate("lab", tmp_path / "out", 1000, 128, 0))
    assert message == (f"{tmp_path / 'out'}: the requested set needs about {need / 1e9:.1f} GB "
                       f"but only 0.0 GB are free on {tmp_path}")
    assert list(tmp_path.iterdir()) == []


def test_the_estimate_bounds_the_bytes_written(tmp_path):
    for kind, res in (("lab", 32), ("wild", 96), ("triplets", 64)):
        out = generate(kind, tmp_path / kind, 8, res, 1, eval_n=4)
        written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        estimate = products.estimated_bytes(kind, 8, res, 4 if kind == "lab" else 0)
        assert written <= estimate <= 3 * written, (kind, written, estimate)


@pytest.mark.parametrize("exc", [RuntimeError("renderer ran out of memory"), KeyboardInterrupt])
def test_a_failed_generation_leaves_out_as_it_was(tmp_path, monkeypatch, exc):
    real = products._write_freihand_split

    def fail_in_evaluation(root, split, *args):
        real(root, split, *args)
        if split == "evaluation":
            raise exc

    monkeypatch.setattr(products, "_write_freihand_split", fail_in_evaluation)
    empty = tmp_path / "empty"
    empty.mkdir()
    for out in (tmp_path / "new", empty):
        with pytest.raises(exc if isinstance(exc, type) else type(exc)):
            generate("lab", out, 4, RES, 0, eval_n=2)
    assert not (tmp_path / "new").exists() and list(empty.iterdir()) == []
    assert leftovers(tmp_path) == []


def test_an_out_filled_during_generation_is_left_to_its_new_owner(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    real = products._write_wild

    def someone_else_writes_too(root, *args):
        real(root, *args)
        (out / "theirs.txt").write_text("theirs")

    monkeypatch.setattr(products, "_write_wild", someone_else_writes_too)
    message = one_line_error(lambda: generate("wild", out, 2, RES, 0))
    assert message == (f"{out}: output folder was filled by something else while the set was "
                       f"generated; it is left as it is")
    assert sorted(p.name for p in out.iterdir()) == ["theirs.txt"]
    assert leftovers(tmp_path) == []


def test_a_killed_generation_leaves_no_half_set_under_out(tmp_path):
    """SIGKILL mid-way: ``out`` never appears (an empty one stays empty); the half set is
    only in a hidden ``.out.*.tmp`` sibling."""
    empty = tmp_path / "empty"
    empty.mkdir()
    for out in (tmp_path / "new", empty):
        code = (f"from benchmarks.synth.products import generate; "
                f"generate('lab', {str(out)!r}, 5000, 64, 0)")
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                tmps = [tmp_path / t for t in leftovers(tmp_path)]
                if tmps and len(list((tmps[0] / "training" / "rgb").glob("*.jpg"))) >= 64:
                    break
                time.sleep(0.05)
            assert proc.poll() is None, "generation ended before it could be killed"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert out.name != "new" or not out.exists()
        assert out.name != "empty" or list(out.iterdir()) == []
        (half,) = [tmp_path / t for t in leftovers(tmp_path)]
        assert half.name.startswith(f".{out.name}.") and not (half / "synth.json").exists()
        shutil.rmtree(half)


def test_the_data_cache_still_generates_once_and_cleans_up(tmp_path):
    from benchmarks.data.prepare import synthetic

    a = synthetic("wild", tmp_path, n=3, res=RES, seed=2)
    before = digests(a)
    assert synthetic("wild", tmp_path, n=3, res=RES, seed=2) == a
    assert digests(a) == before
    assert sorted(p.name for p in (tmp_path / "synth").iterdir()) == [a.name, f"{a.name}.lock"]


def test_res_above_max_res_is_refused_in_one_line_before_anything_is_written(tmp_path):
    out = tmp_path / "new" / "out"
    message = one_line_error(lambda: generate("lab", out, n=4, res=100_000, seed=0))
    assert message == (f"synthetic images need res <= {products.MAX_RES} pixels, got 100000 "
                       f"(FreiHAND's are 224)")
    assert one_line_error(lambda: generate("wild", out, n=4, res=products.MAX_RES + 1, seed=0))
    assert not (tmp_path / "new").exists() and list(tmp_path.iterdir()) == []


def _no_render(monkeypatch):
    from benchmarks.synth import preview as preview_mod

    def boom(*a, **k):
        raise AssertionError("rendered before the path was checked")
    monkeypatch.setattr(preview_mod, "render_scenes", boom)
    return preview_mod.preview


@pytest.mark.parametrize("case", ["file", "folder", "suffix", "no parent", "parent is a file", "res"])
def test_preview_refuses_a_bad_path_in_one_line_before_rendering(tmp_path, monkeypatch, case):
    preview = _no_render(monkeypatch)
    (tmp_path / "old.png").write_bytes(b"keep")
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "afile").write_text("x")
    path, res, expected = {
        "file": (tmp_path / "old.png", 48, f"{tmp_path / 'old.png'}: exists (a file); the preview is "
                                           f"written only to a new file (remove it or choose another name)"),
        "folder": (tmp_path / "dir.png", 48, f"{tmp_path / 'dir.png'}: exists (a folder); the preview is "
                                             f"written only to a new file (remove it or choose another name)"),
        "suffix": (tmp_path / "sheet.jpg", 48, f"{tmp_path / 'sheet.jpg'}: the preview is a PNG image; "
                                               f"give a file name ending in .png"),
        "no parent": (tmp_path / "nope" / "a.png", 48, f"{tmp_path / 'nope' / 'a.png'}: its folder "
                      f"{tmp_path / 'nope'} is no such folder; create it first or choose another path"),
        "parent is a file": (tmp_path / "afile" / "a.png", 48, f"{tmp_path / 'afile' / 'a.png'}: its folder "
                             f"{tmp_path / 'afile'} is not a folder; create it first or choose another path"),
        "res": (tmp_path / "big.png", 100_000, f"synthetic images need res <= {products.MAX_RES} pixels, "
                                               f"got 100000"),
    }[case]
    before = digests(tmp_path)
    assert one_line_error(lambda: preview(path, res=res, n=2)) == expected
    assert digests(tmp_path) == before


def test_cli_preview_onto_an_existing_file_exits_2_and_keeps_it(tmp_path, monkeypatch, capsys):
    _no_render(monkeypatch)
    old = tmp_path / "hands.png"
    old.write_bytes(b"keep")
    code = main(["data", "synth", "--preview", str(old)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "exists (a file)" in err, err
    assert old.read_bytes() == b"keep"
