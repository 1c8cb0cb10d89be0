"""The import graph of mixedfit: no cycle, no import that runs up a floor, none hidden in a function.

The package is built in floors (issue 18): the formula language, designs,
families and the Cholesky machinery at the bottom; the engines (the LMM
objective and optimizer, GLMM's PIRLS) above them; the fitted numbers; the
inference modules, which take fitted numbers or engines; the printed
summaries and tidy frames; the lme4 faces (``MixedResults``, ``GlmmResults``,
the Dask and moments fits); ``mixed()`` and the command line on top.  A module
imports only from its own floor or below, at the top of its file: an import
inside a function is for an optional extra (dask, matplotlib, tqdm, ...),
never for a module of mixedfit.  scipy's stats, interpolate, optimize and
special, and formulaic, are imported where they are used too: they were half
the time of ``import mixedfit`` (scipy.special alone: 320 against 232 ms with
it deferred, 2026-12-07), and a fit of plain columns and its summary read none of them.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mixedfit"
LAYOUT_PAGE = PACKAGE.parent / "docs" / "architecture.md"

#: Each floor's modules, bottom first (a name ending in "." stands for a subpackage).
FLOORS = [
    ("base", ["mixedfit.errors", "mixedfit.rformat", "mixedfit.formula.", "mixedfit.terms", "mixedfit.family",
              "mixedfit.theta", "mixedfit.blocks.", "mixedfit.glmm_factor", "mixedfit.supernodal", "mixedfit.optimize",
              "mixedfit.progress",
              "mixedfit.datasets", "mixedfit.column_types", "mixedfit.partitions", "mixedfit.dask_tasks",
              "mixedfit.dask_opening", "mixedfit.quantiles", "mixedfit.cores", "mixedfit.distributions"]),
    ("engines", ["mixedfit.model", "mixedfit.glmm"]),
    ("fitted numbers", ["mixedfit.fitted"]),
    ("inference", ["mixedfit.inference.", "mixedfit.update"]),
    ("presentation", ["mixedfit.summary", "mixedfit.html", "mixedfit.glmm_summary", "mixedfit.tidy",
                      "mixedfit.plots"]),
    ("faces", ["mixedfit.results", "mixedfit.glmm_results", "mixedfit.dask_results", "mixedfit.distributed",
               "mixedfit.dask_glmm",
               "mixedfit.moments"]),
    ("top", ["mixedfit.api", "mixedfit.cli", "mixedfit.__main__", "mixedfit"]),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict) -> list[str]:
    """The mixedfit modules *node* imports (a name imported from a package may be a module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in modules]
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    out = []
    for alias in node.names:
        full = f"{base}.{alias.name}"
        target = full if full in modules else base
        if target in modules:
            out.append(target)
    return out


def _runs_at_import(tree: ast.Module) -> set[int]:
    """Ids of the import statements that run when the module is imported (top level, or in a
    top-level ``if``/``try``), except those under ``if TYPE_CHECKING:``."""
    ids = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.If) and ast.unparse(stmt.test).endswith("TYPE_CHECKING"):
            continue
        if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.If, ast.Try)):
            ids.update(id(n) for n in ast.walk(stmt))
    return ids


def _edges() -> tuple[dict[str, set[str]], list[str]]:
    """Module -> the mixedfit modules it imports; and every in-function import of one, located."""
    modules = _modules()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    hidden = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        at_import = _runs_at_import(tree)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            targets = [t for t in _targets(module, path, node, modules) if t != module]
            if targets and id(node) not in at_import:
                hidden.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}")
            edges[module].update(targets)
    return edges, hidden


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _floor(module: str) -> int:
    for level, (_, members) in enumerate(FLOORS):
        if any(module == m.rstrip(".") or (m.endswith(".") and module.startswith(m)) for m in members):
            return level
    raise AssertionError(f"{module} is on no floor: add it to FLOORS in {Path(__file__).name}")


def _page_floors(text: str) -> dict[str, list[str]]:
    """The modules a page lists (``- `mixedfit....`: ...``) under each floor's ``## `` heading."""
    floors: dict[str, list[str]] = {}
    listed: list[str] = []
    for line in text.splitlines():
        if line.startswith("## "):
            listed = floors.setdefault(line[3:].strip(), [])
        match = re.match(r"\s*- `(mixedfit[\w.]*)`", line)
        if match:
            listed.append(match.group(1))
    return floors


def test_no_import_cycle():
    edges, _ = _edges()
    assert _cycles(edges) == []


def test_no_mixedfit_import_inside_a_function():
    _, hidden = _edges()
    assert hidden == []


def test_every_import_runs_down_or_along_a_floor():
    edges, _ = _edges()
    upward = [f"{a} ({FLOORS[_floor(a)][0]}) imports {b} ({FLOORS[_floor(b)][0]})"
              for a, targets in edges.items() for b in sorted(targets) if _floor(b) > _floor(a)]
    assert upward == []


@pytest.mark.parametrize("source, expected", [
    ("def f():\n    from .model import MixedModel\n", ["mixedfit/results.py:2: from .model import MixedModel"]),
    ("from .model import MixedModel\n", []),
    ("try:\n    from . import model\nexcept ImportError:\n    pass\n", []),
    ("def f():\n    import numpy\n", []),
])
def test_the_check_sees_imports_inside_functions(tmp_path, monkeypatch, source, expected):
    package = tmp_path / "mixedfit"
    package.mkdir()
    for name in ("__init__.py", "model.py"):
        (package / name).write_text("")
    (package / "results.py").write_text(source)
    monkeypatch.setattr(__import__(__name__), "PACKAGE", package)
    edges, hidden = _edges()
    assert hidden == expected
    assert edges["mixedfit.results"] == ({"mixedfit.model"} if "model" in source else set())


def test_the_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_layout_page_names_every_module_on_its_floor():
    listed = _page_floors(LAYOUT_PAGE.read_text(encoding="utf-8"))
    expected = {name: sorted(m for m in _modules() if FLOORS[_floor(m)][0] == name) for name, _ in FLOORS}
    assert {name: sorted(modules) for name, modules in listed.items()} == expected


def test_the_page_check_reads_floors_and_nested_modules():
    page = "# Layout\n\n## base\n\n- `mixedfit.a`: a.\n    - `mixedfit.a.b`: b.\n\n## top\n\n- `mixedfit`: it.\n"
    assert _page_floors(page) == {"base": ["mixedfit.a", "mixedfit.a.b"], "top": ["mixedfit"]}


_DEFERRED = ("scipy.stats", "scipy.interpolate", "scipy.optimize", "scipy.special", "formulaic")


def test_a_fit_and_its_summary_import_no_deferred_scipy_module():
    script = ("import sys, mixedfit as mf\n"
              "fit = mf.mixed('Reaction ~ Days + (Days|Subject)', mf.load_dataset('sleepstudy'))\n"
              "str(fit.summary())\n"
              f"print(sorted(m for m in {_DEFERRED!r} if m in sys.modules))\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=PACKAGE.parent)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_tests_and_intervals_import_no_scipy_stats_or_interpolate():
    # each took 0.1-0.7 s to import, which a user's first p-value or interval paid (mixedfit.distributions,
    # and profile.natural_slopes for the profile's back-spline)
    script = ("import sys, mixedfit as mf\n"
              "sleep = mf.load_dataset('sleepstudy')\n"
              "fit = mf.mixed('Reaction ~ Days + (Days|Subject)', sleep, reml=False)\n"
              "fit.coef_table(); fit.anova(); fit.confint(method='wald'); fit.confint()\n"
              "mf.anova(mf.mixed('Reaction ~ Days + (1|Subject)', sleep, reml=False), fit)\n"
              "cbpp = mf.load_dataset('cbpp').assign(prop=lambda d: d.incidence / d['size'])\n"
              "glmm = mf.mixed('prop ~ period + (1|herd)', cbpp, family='binomial', weights='size')\n"
              "str(glmm.summary()); glmm.confint(method='wald')\n"
              "print(sorted(m for m in ('scipy.stats', 'scipy.interpolate') if m in sys.modules))\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=PACKAGE.parent)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
