"""The layers: core (``benchmarks``) < ``methods`` < harness and report (``eval``) < ``orchestration``.

Every import counts, function-level ones included (not those under ``if TYPE_CHECKING:``). A
module may import its own layer or the layers below; there is no import cycle between modules
or between folders; and what must answer fast (config composition, the method registry, the
report) never imports torch.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("benchmarks", "methods", "eval", "orchestration")


def _modules() -> dict[str, Path]:
    out = {}
    for package in LAYERS:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _skipped(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            for sub in node.body:
                skip.update(id(n) for n in ast.walk(sub))
    return skip


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a.b.c also runs a and a.b, unless inside them)."""
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        tree = ast.parse(path.read_text())
        skip = _skipped(tree)
        package = m if path.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                if t in mods and t != m:
                    edges[m].add(t)
                    parts = t.split(".")
                    for k in range(1, len(parts)):
                        q = ".".join(parts[:k])
                        if q in mods and q != m and not m.startswith(q + "."):
                            edges[m].add(q)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def _folders(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    packages = {m for m in edges if any(o.startswith(m + ".") for o in edges)}

    def folder(m: str) -> str:
        return m if m in packages else m.rsplit(".", 1)[0]

    out: dict[str, set[str]] = {}
    for a, bs in edges.items():
        out.setdefault(folder(a), set()).update(folder(b) for b in bs if folder(b) != folder(a))
    return out


def test_no_layer_imports_a_layer_above_it():
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = [f"{m} -> {t}" for m, ts in import_graph().items() for t in ts
              if rank[t.split(".")[0]] > rank[m.split(".")[0]]]
    assert upward == []


def test_no_import_cycle_between_modules_or_folders():
    edges = import_graph()
    assert _cycles(edges) == []
    assert _cycles(_folders(edges)) == []


def test_the_graph_sees_function_level_imports_and_cycles():
    """The checker itself: a function-level import is an edge, and a planted cycle is found."""
    edges = import_graph()
    assert "orchestration.runner" in edges["orchestration.cli"] or \
        "orchestration.launch" in edges["orchestration.cli"]       # imported inside cmd_run
    planted = {**edges, "benchmarks.errors": edges["benchmarks.errors"] | {"orchestration.cli"}}
    assert any("benchmarks.errors" in c for c in _cycles(planted))


def test_composition_registry_and_report_import_no_torch():
    """Nor the libraries whose imports once took most of the report's start-up (seaborn,
    ``scipy.stats``, statsmodels, pyplot)."""
    code = (
        "import sys\n"
        "from orchestration import compose, cli\n"
        "import methods, eval.report.build, orchestration.status, orchestration.sweepfile\n"
        "run = compose.resolve(['method=simclr', 'profile=smoke'], need_data=False)\n"
        "for name in methods.names(): methods.get(name)\n"
        "heavy = sorted(m for m in ('torch', 'timm', 'lightly.loss', 'lightning_fabric', 'seaborn',\n"
        "                           'scipy.stats', 'statsmodels', 'matplotlib.pyplot') if m in sys.modules)\n"
        "print(','.join(heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
