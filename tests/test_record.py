"""The record type: every committed record reads into a Record and writes back unchanged, keys
this version does not know survive, and a written record is whole on disk."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.record import RECORD, Compute, Record, check, read_record, stand_in, write_record
from example_records import example_record, failed_record

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted(ROOT.glob(f"results/*/records/*/{RECORD}"))


def test_there_are_committed_records_to_read():
    assert len(COMMITTED) >= 57


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: f"{p.parts[-4]}/{p.parts[-2]}")
def test_every_committed_record_round_trips(path):
    d = json.loads(path.read_text())
    record = Record.from_json(d)
    assert record.to_json() == d
    assert isinstance(record.compute, (Compute, type(None)))


def test_unknown_keys_are_kept_and_the_order_is_fixed():
    d = example_record("simclr", 0, 10.0)
    shuffled = {"from_a_later_version": [1, 2], **dict(reversed(list(d.items())))}
    out = Record.from_json(shuffled).to_json()
    assert out == shuffled
    assert list(out)[:4] == ["schema", "run_id", "status", "error"]
    assert list(out)[-1] == "from_a_later_version"


def test_written_records_are_whole_and_checked_the_same_way(tmp_path):
    ok = Record.from_json(example_record("peclr", 1, 12.0))
    path = write_record(tmp_path, ok)
    assert read_record(path) == ok.to_json() and check(path).kind == "ok"
    failed = Record.from_json(failed_record("peclr", 2, "x"))
    failed.metrics = failed.compute = None
    path = write_record(tmp_path, failed.failed("CUDA out of memory", {"host": "n1"}))
    assert check(path).kind == "failed" and "CUDA out of memory" in check(path).reason
    written = json.loads(path.read_text())
    assert "metrics" not in written and "compute" not in written   # sections not reached
    assert written["provenance"] == {"host": "n1"}
    placeholder = stand_in("peclr-x-s3", "job vanished")
    assert placeholder["status"] == "failed" and placeholder["error"] == "job vanished"


@pytest.mark.parametrize("key,value,reason", [
    ("seed", "0", "seed is the string \"0\", not an integer"),
    ("seed", True, "not an integer"),
    ("config", [1], "config is"),
    ("label_fraction", "1", "label_fraction is"),
    ("compute.finetune_steps", "100", "compute.finetune_steps is"),
    ("compute.pretrain_cache_hit", 1, "compute.pretrain_cache_hit is"),
    ("compute", [], "compute is a JSON list, not an object"),
])
def test_the_typed_read_names_a_mistyped_field_and_check_calls_it_invalid(key, value, reason, tmp_path):
    from benchmarks.record import Invalid

    d = example_record("simclr", 0, 10.0)
    if key.startswith("compute."):
        d["compute"][key.split(".", 1)[1]] = value
    else:
        d[key] = value
    with pytest.raises(Invalid) as err:
        Record.from_json(d)
    assert reason.split(" is")[0] in str(err.value) and "\n" not in str(err.value)
    path = tmp_path / d["run_id"] / RECORD
    path.parent.mkdir()
    path.write_text(json.dumps(d))
    checked = check(path)
    assert checked.kind == "invalid" and checked.typed is None


def test_readers_get_the_typed_record(tmp_path):
    path = write_record(tmp_path, example_record("peclr", 1, 12.0))
    checked = check(path)
    assert isinstance(checked.typed, Record) and isinstance(checked.typed.compute, Compute)
    assert checked.typed.metrics["pa_epe_mm"] == checked.record["metrics"]["pa_epe_mm"]
