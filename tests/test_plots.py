"""mixedfit.plots: each plot renders headless to a PNG with the panels lattice would draw."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import mixedfit as mf
from mixedfit.inference.profile import profile_confint

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def sleep():
    return mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))


@pytest.fixture(scope="module")
def penicillin():
    return mf.mixed("diameter ~ 1 + (1|plate) + (1|sample)", mf.load_dataset("Penicillin"))


def saved(fig, path) -> bytes:
    fig.savefig(path)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000
    return data


def test_ranef_caterpillar(sleep, tmp_path):
    fig = sleep.plot_ranef()
    saved(fig, tmp_path / "ranef.png")
    assert [ax.get_title() for ax in fig.axes] == ["Subject: (Intercept)", "Subject: Days"]
    # levels sorted by the first column's modes, in every panel of the factor (lattice's order)
    modes = sleep.ranef(condvar=True)["Subject"]
    order = np.argsort(modes["(Intercept)"].to_numpy(), kind="stable")
    expected = list(modes.index.astype(str)[order])
    first, beside = ([t.get_text() for t in ax.get_yticklabels()] for ax in fig.axes)
    assert first == expected
    assert beside == [""] * len(expected)  # the same rows: lattice labels them once
    assert [ax.get_xlabel() for ax in fig.axes] == ["mode ± 1.96 conditional SD"] * 2
    # bars of ±1.96 conditional SD around each mode
    bars = fig.axes[1].collections[0].get_segments()
    sd = modes.attrs["condsd"]["Days"].to_numpy()[order]
    np.testing.assert_allclose([seg[1, 0] - seg[0, 0] for seg in bars], 2 * 1.959964 * sd, rtol=1e-5)


def test_ranef_one_panel_per_factor(penicillin, tmp_path):
    fig = penicillin.plot_ranef()
    saved(fig, tmp_path / "ranef2.png")
    assert [ax.get_title() for ax in fig.axes] == ["plate: (Intercept)", "sample: (Intercept)"]
    # different factors have different rows: each panel names its own levels
    for ax, factor in zip(fig.axes, ["plate", "sample"]):
        labels = {t.get_text() for t in ax.get_yticklabels()}
        assert labels == set(penicillin.ranef()[factor].index.astype(str))


def test_ranef_labels_the_first_panel_of_each_row(sleep):
    fig = sleep.plot_ranef(ncols=1)
    assert all(t.get_text() for ax in fig.axes for t in ax.get_yticklabels())


def test_profile_panels_and_precomputed_profile(tmp_path, monkeypatch):
    fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"), reml=False)
    prof = fit.profile(progress=False)
    monkeypatch.setattr(type(fit), "profile", lambda *a, **k: pytest.fail("profiled again"))
    fig = fit.plot_profile(profile=prof)
    saved(fig, tmp_path / "profile.png")
    assert [ax.get_xlabel() for ax in fig.axes] == ["sd_(Intercept)|Batch", "sigma", "(Intercept)"]
    assert fig.axes[0].get_ylabel() == "ζ"


def test_profile_from_a_fit_alone(sleep, tmp_path):
    fig = sleep.plot_profile(conf=0.9)
    saved(fig, tmp_path / "profile6.png")
    assert len(fig.axes) == 6


def test_profile_draws_lattice_levels(tmp_path):
    """xyplot(profile(fit)) draws ±ζ at 50, 80, 90, 95 and 99 % and drops a line at each limit."""
    fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"), reml=False)
    prof = fit.profile(progress=False)
    fig = fit.plot_profile(profile=prof)
    zeta = norm.ppf((1 + np.array([0.5, 0.8, 0.9, 0.95, 0.99])) / 2)
    sigma = fig.axes[1]
    heights = sorted({round(line.get_ydata()[0], 10) for line in sigma.lines[1:]})
    np.testing.assert_allclose(heights, np.r_[-zeta[::-1], zeta], rtol=1e-9)
    drops = np.concatenate([c.get_segments() for c in sigma.collections])
    limits = np.concatenate([profile_confint(prof, level=lev).loc["sigma"] for lev in [0.5, 0.8, 0.9, 0.95, 0.99]])
    np.testing.assert_allclose(sorted(seg[0, 0] for seg in drops), sorted(limits), rtol=1e-9)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        fit.plot_profile(profile=prof, conf=95)


def test_diagnostics(sleep, penicillin, tmp_path):
    fig = sleep.plot_diagnostics()
    saved(fig, tmp_path / "diag.png")
    assert [ax.get_title() for ax in fig.axes] == [
        "Residuals vs fitted", "Scaled residuals", "Subject: (Intercept)", "Subject: Days"]
    x, y = fig.axes[0].lines[0].get_data()
    np.testing.assert_allclose(x, sleep.fittedvalues)
    np.testing.assert_allclose(y, sleep.resid)
    assert len(penicillin.plot_diagnostics().axes) == 4


def test_without_matplotlib_the_error_says_what_to_install(sleep, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install matplotlib"):
        sleep.plot_ranef()


# -- plot_data: lattice's xyplot(y ~ x | g, type = c("p", "r")) ---------------------------

LATTICE = json.loads((Path(__file__).parent / "lme4" / "fixtures" / "postfit_cases.json")
                     .read_text(encoding="utf-8"))["lattice_layout"]


@pytest.mark.parametrize("case", LATTICE, ids=lambda c: str(c["panels"]))
def test_layout_is_lattices(case):
    assert mf.plots.lattice_layout(case["panels"]) == (case["cols"], case["rows"])


def test_data_panels_points_and_lines(tmp_path):
    data = mf.load_dataset("sleepstudy")
    fig = mf.plot_data("Reaction ~ Days | Subject", data)
    saved(fig, tmp_path / "data.png")
    levels = list(data["Subject"].cat.categories)
    panels = {ax.get_title(): ax for ax in fig.axes}
    assert sorted(panels) == sorted(levels) and len(fig.axes) == 18
    # lattice's 5 x 4 layout, panel 1 bottom left, filled left to right and upwards
    cols, rows = 5, 4
    for i, level in enumerate(levels):
        spec = panels[level].get_subplotspec()
        assert (spec.rowspan.start, spec.colspan.start) == (rows - 1 - i // cols, i % cols), level
    for level, ax in panels.items():
        rows_of = data["Subject"] == level
        points, line = ax.get_lines()
        np.testing.assert_array_equal(points.get_xdata(), data.loc[rows_of, "Days"])
        np.testing.assert_array_equal(points.get_ydata(), data.loc[rows_of, "Reaction"])
        (x0, x1), (y0, y1) = line.get_xdata(), line.get_ydata()
        slope, intercept = np.polyfit(data.loc[rows_of, "Days"], data.loc[rows_of, "Reaction"], 1)
        assert (y1 - y0) / (x1 - x0) == pytest.approx(slope, rel=1e-10)
        assert y0 - slope * x0 == pytest.approx(intercept, rel=1e-10)


def test_data_expressions_missing_values_and_errors():
    data = mf.load_dataset("sleepstudy")
    data.loc[0, "Reaction"] = np.nan
    before = data.copy()
    fig = mf.plot_data("log(Reaction) ~ Days | Subject", data)
    pd.testing.assert_frame_equal(data, before)
    first = next(ax for ax in fig.axes if ax.get_title() == "308")
    assert len(first.get_lines()[0].get_xdata()) == 9
    with pytest.raises(mf.errors.FormulaError, match=r"y ~ x \| g"):
        mf.plot_data("Reaction ~ Days", data)
    with pytest.raises(mf.errors.FormulaError, match="numeric"):
        mf.plot_data("Reaction ~ Subject | Days", data)
