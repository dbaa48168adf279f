"""Records under load: many jobs finishing at once lose nothing and never leave a torn file."""
from __future__ import annotations

import json
import multiprocessing as mp

from benchmarks.record import iter_records, read_record, record_path, write_record

WRITERS = 32


def _record(run_id: str, writer: int) -> dict:
    # Large enough (~30 kB) that a non-atomic write would be seen half-way.
    return {"schema": 1, "run_id": run_id, "status": "ok", "error": None, "writer": writer,
            "curves": {"train": [{"step": i, "loss": 1.0 / (i + 1)} for i in range(1000)]}}


def _write(results: str, run_id: str, writer: int, barrier) -> None:
    barrier.wait()
    write_record(results, _record(run_id, writer))


def _run_all(results, run_ids, ctx) -> None:
    barrier = ctx.Barrier(len(run_ids))
    procs = [ctx.Process(target=_write, args=(str(results), rid, i, barrier))
             for i, rid in enumerate(run_ids)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * len(procs)


def test_32_concurrent_writers_leave_32_valid_records(tmp_path):
    ctx = mp.get_context("fork")
    run_ids = [f"run-{i:02d}" for i in range(WRITERS)]
    _run_all(tmp_path, run_ids, ctx)
    found = {rec["run_id"]: rec for _, rec in iter_records(tmp_path)}
    assert sorted(found) == run_ids
    assert all(rec == _record(rid, int(rid[-2:])) for rid, rec in found.items())
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file() and p.name != "result.json"]
    assert leftovers == []


def test_concurrent_writers_of_one_record_leave_one_whole_record(tmp_path):
    ctx = mp.get_context("fork")
    path = record_path(tmp_path, "same")
    stop = ctx.Event()
    torn = ctx.Value("i", 0)

    def read_until_stopped():
        while not stop.is_set():
            if path.exists():
                try:
                    json.loads(path.read_text())
                except ValueError:
                    with torn.get_lock():
                        torn.value += 1

    reader = ctx.Process(target=read_until_stopped)
    reader.start()
    _run_all(tmp_path, ["same"] * WRITERS, ctx)
    stop.set()
    reader.join(30)
    assert torn.value == 0
    rec = read_record(path)
    assert rec == _record("same", rec["writer"]) and 0 <= rec["writer"] < WRITERS
