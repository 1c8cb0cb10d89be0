"""The documentation's examples run, and print what the pages say they print.

Every fenced ```python block of every page in ``docs/`` is executed in page
order, one namespace per page, from a scratch directory (figures saved by
the examples land there).  A ```text block that directly follows a python
block is that block's expected output: what it prints must match it line by
line (trailing spaces aside), so neither the code nor the output shown can
drift from what the library does.  Only fences at the start of a line count.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p.name for p in DOCS.glob("*.md"))
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)


@dataclass
class Example:
    code: str
    expected: str | None
    line: int


def examples(text: str) -> list[Example]:
    """The python blocks of a page, each with the text block right after it, if any."""
    fences = list(FENCE.finditer(text))
    out = []
    for k, fence in enumerate(fences):
        if fence.group(1) != "python":
            continue
        expected = None
        nxt = fences[k + 1] if k + 1 < len(fences) else None
        if nxt is not None and nxt.group(1) == "text" and not text[fence.end() : nxt.start()].strip():
            expected = nxt.group(2)
        out.append(Example(fence.group(2), expected, text.count("\n", 0, fence.start()) + 2))
    return out


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines()]


@pytest.fixture
def headless(monkeypatch, tmp_path):
    """Agg backend, a scratch working directory, and every figure closed afterwards."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def test_examples_are_found():
    text = "```python\nprint(1)\n```\n\n```text\n1\n```\n```python\nx = 2\n```\n"
    found = examples(text)
    assert [(e.code, e.expected, e.line) for e in found] == [("print(1)\n", "1\n", 2), ("x = 2\n", None, 9)]


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page, headless):
    namespace: dict = {"__name__": f"docs_{page[:-3]}"}
    for ex in examples((DOCS / page).read_text(encoding="utf-8")):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(ex.code, f"docs/{page}:{ex.line}", "exec"), namespace)
        if ex.expected is not None:
            assert _lines(out.getvalue()) == _lines(ex.expected), f"output of docs/{page}:{ex.line}"


def test_every_page_is_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = config.split("\nnav:\n", 1)[1].split("\n\n", 1)[0]
    assert sorted(re.findall(r"([\w./-]+\.md)", nav)) == PAGES


def test_api_page_names_importable_objects():
    import importlib

    targets = re.findall(r"^::: ([\w.]+)", (DOCS / "api.md").read_text(encoding="utf-8"), re.M)
    assert targets
    for target in targets:
        module, _, attr = target.rpartition(".")
        try:
            importlib.import_module(target)
        except ModuleNotFoundError:
            assert hasattr(importlib.import_module(module), attr), target


def test_docstrings_use_markdown_not_sphinx_markup():
    """The API reference renders docstrings as Markdown: a Sphinx role or an
    ``array-like`` type (read as ``array - like``) would show literally."""
    sources = sorted((ROOT / "mixedfit").rglob("*.py"))
    roles = [f"{p.name}: {m}" for p in sources
             for m in re.findall(r":(?:func|class|attr|meth|mod|data|obj|exc):`[^`]+`", p.read_text(encoding="utf-8"))]
    assert not roles
    assert not [p.name for p in sources if re.search(r"^\s+\w+ : .*array-like", p.read_text(encoding="utf-8"), re.M)]


def test_readme_links_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/index.md" in readme and "mkdocs" in readme
