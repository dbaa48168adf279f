"""A record names the code its process runs: the git state is read once, at the first run's
start, so a sweep running in one process while the checkout moves on records what it runs."""
from __future__ import annotations

from benchmarks import provenance


def test_the_git_state_is_read_once_per_process(monkeypatch):
    provenance.git_state.cache_clear()
    monkeypatch.setattr(provenance, "_git", lambda *args: "aaaa" if args[0] == "rev-parse" else "")
    first = provenance.git_state()
    monkeypatch.setattr(provenance, "_git", lambda *args: "bbbb" if args[0] == "rev-parse" else " M x.py")
    assert provenance.git_state() == first == ("aaaa", False)
    assert provenance.collect(provenance.now())["git_sha"] == "aaaa"
    provenance.git_state.cache_clear()
