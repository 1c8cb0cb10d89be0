"""The example notebook runs in a Jupyter kernel and shows each plot exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("matplotlib")

NOTEBOOK = Path(__file__).parents[1] / "docs" / "notebooks" / "sleepstudy.ipynb"


@pytest.fixture(scope="module")
def executed():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute(cwd=str(NOTEBOOK.parent))
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def images(cell) -> int:
    return sum("image/png" in out.get("data", {}) for out in cell.outputs)


def test_fit_displays_as_html(executed):
    assert any("text/html" in out.get("data", {}) for out in executed[0].outputs)


@pytest.mark.parametrize("ending", [1, 2, 3], ids=["value", "semicolon", "assignment"])
def test_each_plot_is_shown_once(executed, ending):
    assert images(executed[ending]) == 1


def test_a_figure_shown_again_later_is_shown(executed, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (
        "import mixedfit as mf\nfig = mf.mixed('Yield ~ 1 + (1|Batch)', mf.load_dataset('Dyestuff')).plot_ranef()",
        "fig",
    )]
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute(cwd=str(tmp_path))
    assert [images(cell) for cell in nb.cells] == [1, 1]
