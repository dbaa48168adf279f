"""Shared test settings: offline hub, quiet threads, a private data cache per session."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory):
    """One synthetic-data cache for the whole test session (generated on first use)."""
    path = tmp_path_factory.mktemp("bench-data")
    os.environ["BENCH_DATA"] = str(path)
    return path
