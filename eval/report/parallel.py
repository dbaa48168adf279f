"""Run a report's figure jobs side by side, one forked worker per core.

Drawing is most of ``bench report``'s time and each figure is independent of the others.
The jobs (closures over the records already in memory) are put where forked workers inherit
them, so only a job's index goes to a worker and only its result (file paths, or the
exception it raised, e.g. ``NothingToShow``) comes back; nothing large is pickled. Where fork
is unavailable, or there is one job or one core, the jobs run here, in order, with the same
futures. Every file is the same byte for byte either way.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

_JOBS: Sequence[Callable[[], object]] = ()


def _run(i: int) -> object:
    return _JOBS[i]()


@contextlib.contextmanager
def run_all(jobs: Sequence[Callable[[], object]], workers: int | None = None) -> Iterator[list[Future]]:
    """Futures of ``jobs``' results; every job has finished when the block exits."""
    global _JOBS
    workers = min(len(jobs), workers or os.cpu_count() or 1)
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield [_here(job) for job in jobs]
        return
    _JOBS = jobs
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            yield [pool.submit(_run, i) for i in range(len(jobs))]   # workers fork on the first
    finally:
        _JOBS = ()


def _here(job: Callable[[], object]) -> Future:
    done: Future = Future()
    try:
        done.set_result(job())
    except Exception as err:  # noqa: BLE001 - handed over like a worker's exception
        done.set_exception(err)
    return done
