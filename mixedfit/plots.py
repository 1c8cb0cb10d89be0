"""The plots lme4 users draw with lattice, drawn with matplotlib.

* ``plot_ranef``: caterpillar plot, lattice's ``dotplot(ranef(fit, condVar = TRUE))``;
* ``plot_profile``: ζ against each parameter, lattice's ``xyplot(profile(fit))``;
* ``plot_diagnostics``: residuals against fitted values, and normal QQ
  plots of the scaled residuals and of each column of the random effects.

matplotlib is optional (``pip install ".[plot]"`` from a checkout, or
``pip install matplotlib``) and imported only when a plot is drawn.  Each
function returns the figure, made through ``pyplot`` so that ``plt.show()``
shows it in a script; in a notebook it is shown once, whether the cell ends
with the call, with ``;`` or with an assignment.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import mixedfit as mf
>>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
>>> fig = plot_ranef(fit)
>>> [ax.get_title() for ax in fig.axes]
['Subject: (Intercept)', 'Subject: Days']
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .distributions import norm_ppf
from .errors import FormulaError, caret_message
from .formula.deparse import deparse
from .formula.evaluate import Evaluator, Numeric
from .formula.nodes import BinOp
from .formula.parse import parse_formula_tree
from .formula.rvalues import as_factor
from .inference.profile import profile_confint
from .terms import as_dataframe

__all__ = ["plot_ranef", "plot_profile", "plot_diagnostics", "plot_data", "lattice_layout"]

#: where to stop labelling levels: beyond this a caterpillar shows only its shape
_MAX_LABELLED_LEVELS = 60


def _pyplot():
    """matplotlib's pyplot, or an ImportError that says how to get it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(
            "mixedfit's plots need matplotlib: pip install matplotlib"
            ' (or, from a mixedfit checkout, pip install ".[plot]")'
        ) from err
    return plt


@functools.cache
def _figure_class():
    """A Figure that a notebook shows once.

    IPython's inline backend shows the cell's value and then, when the cell
    ends, every figure pyplot still holds: a returned figure would appear
    twice.  This figure, once shown, leaves pyplot under that backend, so
    whichever display comes first is the only one.
    """
    from matplotlib.figure import Figure

    class LatticeFigure(Figure):
        def _ipython_display_(self) -> None:
            import matplotlib.pyplot as plt
            from IPython import get_ipython
            from IPython.display import publish_display_data

            formatters = get_ipython().display_formatter.formatters
            data = {mime: f(self) for mime, f in formatters.items()}
            publish_display_data({mime: d for mime, d in data.items() if d is not None})
            if "inline" in plt.get_backend():
                plt.close(self)

    return LatticeFigure


def _grid(plt, n: int, ncols: int, panel_size: tuple[float, float], sharey: bool = False):
    """A figure with ``n`` axes on a grid of ``ncols`` columns (unused cells removed)."""
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
        sharey=sharey,
        squeeze=False,
        FigureClass=_figure_class(),
    )
    flat = list(axes.ravel())
    for ax in flat[n:]:
        fig.delaxes(ax)
    return fig, flat[:n]


def ppoints(n: int) -> np.ndarray:
    """R's ``ppoints(n)``: probabilities for a QQ plot of n points.

    Examples
    --------
    >>> ppoints(4).round(4).tolist()
    [0.1471, 0.3824, 0.6176, 0.8529]
    """
    a = 3 / 8 if n <= 10 else 1 / 2
    return (np.arange(1, n + 1) - a) / (n + 1 - 2 * a)


def _qq(ax, values: np.ndarray, title: str) -> None:
    """Normal QQ plot with R's ``qqline`` (through the quartiles)."""
    y = np.sort(np.asarray(values, float))
    x = norm_ppf(ppoints(y.size))
    ax.plot(x, y, "o", markersize=3, alpha=0.7)
    q_y = np.quantile(y, [0.25, 0.75])
    q_x = norm_ppf([0.25, 0.75])
    slope = (q_y[1] - q_y[0]) / (q_x[1] - q_x[0])
    ax.axline((q_x[0], q_y[0]), slope=slope if np.isfinite(slope) else 0.0, color="grey", lw=1)
    ax.set(title=title, xlabel="Standard normal quantiles", ylabel="Sample quantiles")


# -- caterpillar -------------------------------------------------------------------------
def plot_ranef(fit: Any, level: float = 0.95, ncols: int = 3):
    """Caterpillar plot of the conditional modes, as ``dotplot(ranef(fit, condVar = TRUE))``.

    One panel per grouping factor and random-effects column; within a
    grouping factor the levels are sorted by their first column, as
    lattice does, with bars of ± z·(conditional SD) (z = 1.96 for 95 %).

    Parameters
    ----------
    fit : MixedResults
    level : float
        Coverage of the bars.
    ncols : int
        Most panels in a row.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import mixedfit as mf
    >>> fit = mf.mixed("diameter ~ 1 + (1|plate) + (1|sample)", mf.load_dataset("Penicillin"))
    >>> len(plot_ranef(fit).axes)
    2
    """
    plt = _pyplot()
    modes = fit.ranef(condvar=True)
    panels = [(g, term) for g, frame in modes.items() for term in frame.columns]
    tallest = max(len(frame) for frame in modes.values())
    height = min(max(2.5, 0.16 * min(tallest, _MAX_LABELLED_LEVELS) + 1.0), 12.0)
    ncols = max(1, min(ncols, len(panels)))
    fig, axes = _grid(plt, len(panels), ncols, (3.6, height))
    z = norm_ppf((1 + level) / 2)
    for i, (ax, (group, term)) in enumerate(zip(axes, panels)):
        frame = modes[group]
        order = np.argsort(frame.iloc[:, 0].to_numpy(), kind="stable")
        est = frame[term].to_numpy()[order]
        sd = frame.attrs["condsd"][term].to_numpy()[order]
        pos = np.arange(est.size)
        ax.errorbar(est, pos, xerr=z * sd, fmt="o", markersize=3, lw=0.8, capsize=0)
        ax.axvline(0.0, color="grey", lw=0.8, ls=":")
        if est.size > _MAX_LABELLED_LEVELS:
            ax.set_yticks([])
        elif i % ncols == 0 or panels[i - 1][0] != group:
            ax.set_yticks(pos, frame.index.astype(str)[order], fontsize=7)
        else:  # lattice labels a factor's levels once per row: the panel beside has the same rows
            ax.set_yticks(pos, [""] * est.size)
        ax.set_title(f"{group}: {term}")
        ax.set_xlabel(f"mode ± {z:.2f} conditional SD")
    fig.tight_layout()
    return fig


# -- profile -------------------------------------------------------------------------
def plot_profile(
    fit: Any = None,
    profile: pd.DataFrame | None = None,
    conf: float | Sequence[float] = (0.5, 0.8, 0.9, 0.95, 0.99),
    ncols: int = 4,
):
    """ζ against each parameter, as lattice's ``xyplot(profile(fit))``.

    Each panel shows the signed square root ζ of the likelihood-ratio
    statistic along one parameter, with lme4's ±ζ lines of each confidence
    level in ``conf`` and the profile confidence limits where they cross.
    A straight line means the Wald interval would be as good as the
    profile one.

    Parameters
    ----------
    fit : MixedResults, optional
        Profiled with ``profile`` unless
        ``profile`` is given.
    profile : pandas.DataFrame, optional
        A profile already computed (the slow part).
    conf : float or sequence of float
        Confidence levels of the reference lines (lme4's ``conf``: 50, 80,
        90, 95 and 99 %).
    ncols : int
        Most panels in a row.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"), reml=False)
    >>> [ax.get_xlabel() for ax in plot_profile(fit).axes]
    ['sd_(Intercept)|Batch', 'sigma', '(Intercept)']
    """
    plt = _pyplot()
    if profile is None:
        if fit is None:
            raise TypeError("plot_profile needs a fit or a profile")
        profile = fit.profile()
    params = list(dict.fromkeys(profile[".par"]))
    levels = np.sort(np.atleast_1d(np.asarray(conf, float)))
    if not np.all((levels > 0) & (levels < 1)):
        raise ValueError(f"values of conf must be strictly between 0 and 1, not {conf!r}")
    limits = [profile_confint(profile, level=lev) for lev in levels]
    fig, axes = _grid(plt, len(params), ncols, (3.0, 3.0), sharey=True)
    for ax, name in zip(axes, params):
        rows = profile[profile[".par"] == name].sort_values(".focal")
        ax.plot(rows[".focal"], rows[".zeta"], "-", marker=".", markersize=3, lw=1)
        for lev, lim in zip(levels, limits):
            z = norm_ppf((1 + lev) / 2)
            for x, end in zip(lim.loc[name], (-z, z)):
                ax.axhline(end, color="grey", lw=0.6, ls=":")
                if np.isfinite(x):
                    ax.vlines(x, 0.0, end, color="grey", lw=0.8)
        ax.set_xlabel(name)
    axes[0].set_ylabel("ζ")
    fig.tight_layout()
    return fig


# -- diagnostics -------------------------------------------------------------------------
def plot_diagnostics(fit: Any, ncols: int = 2):
    """Residual checks: residuals vs fitted, QQ of scaled residuals, QQ of each random effect.

    The first panel is lme4's ``plot(fit)`` (Pearson residuals against
    fitted values), the second ``qqnorm(residuals(fit, scaled = TRUE))``,
    then one ``qqmath(ranef(fit))`` panel per grouping factor and column.

    Parameters
    ----------
    fit : MixedResults
    ncols : int
        Most panels in a row.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    >>> len(plot_diagnostics(fit).axes)
    4
    """
    plt = _pyplot()
    modes = fit.ranef()
    panels = [(g, term) for g, frame in modes.items() for term in frame.columns]
    fig, axes = _grid(plt, 2 + len(panels), ncols, (3.6, 3.2))
    scaled = np.asarray(fit.scaled_resid, float)
    axes[0].plot(fit.fittedvalues.to_numpy(), scaled * fit.sigma, "o", markersize=3, alpha=0.6)
    axes[0].axhline(0.0, color="grey", lw=0.8)
    axes[0].set(title="Residuals vs fitted", xlabel="Fitted values", ylabel="Pearson residuals")
    _qq(axes[1], scaled, "Scaled residuals")
    for ax, (group, term) in zip(axes[2:], panels):
        _qq(ax, modes[group][term].to_numpy(), f"{group}: {term}")
    fig.tight_layout()
    return fig


# -- data --------------------------------------------------------------------------------
def lattice_layout(n: int) -> tuple[int, int]:
    """Columns and rows lattice chooses for ``n`` panels on a square device.

    lattice's ``plot.trellis`` with ``layout = NULL``: rows = round(√n),
    columns = ⌈n / rows⌉, then rows = ⌈n / columns⌉.

    Examples
    --------
    >>> lattice_layout(18), lattice_layout(6)
    ((5, 4), (3, 2))
    """
    rows = max(1, round(np.sqrt(n)))
    cols = -(-n // rows)
    return cols, -(-n // cols)


def _panel_variables(formula: str, data: Any) -> tuple[str, str, str, np.ndarray, np.ndarray,
                                                      np.ndarray, list[str]]:
    """y, x and the conditioning factor of ``y ~ x | g``, rows with a missing value left out."""
    response, rhs = parse_formula_tree(formula)
    if response is None or not (isinstance(rhs, BinOp) and rhs.op == "|"):
        raise FormulaError(caret_message(formula, 0, len(formula),
                                         "plot_data needs a formula y ~ x | g (one panel per level of g)"))
    evaluator = Evaluator(as_dataframe(data), formula)
    values = {}
    for role, node in (("y", response), ("x", rhs.left)):
        value = evaluator.evaluate(node)
        if not (isinstance(value, Numeric) and value.values.shape[1] == 1):
            raise FormulaError(caret_message(formula, max(node.start, 0), node.end,
                                             f"the panels' {role} must be one numeric variable"))
        values[role] = value.values[:, 0]
    group = as_factor(evaluator.evaluate(rhs.right))
    keep = ~(np.isnan(values["y"]) | np.isnan(values["x"]) | group.missing())
    return (deparse(response), deparse(rhs.left), deparse(rhs.right),
            values["y"][keep], values["x"][keep], group.codes[keep], group.levels)


def plot_data(formula: str, data: Any, panel_size: tuple[float, float] = (2.0, 2.0)):
    """The data in panels, as lattice's ``xyplot(y ~ x | g, data, type = c("p", "r"))``.

    One panel per level of ``g`` (unused levels dropped, as lattice does),
    in lattice's default layout and order: panel 1 bottom left, then left
    to right and upwards (``as.table = FALSE``), the level in the panel's
    title; each panel shows its points and its least-squares line
    (``panel.lmline``), over common axes.  ``fig.axes`` lists the panels
    row by row from the top.

    Parameters
    ----------
    formula : str
        ``"y ~ x | g"``; ``y`` and ``x`` may be expressions (``log(Reaction)``).
    data : pandas.DataFrame or dict of arrays
        The data; it is never modified.
    panel_size : (float, float)
        Width and height of a panel in inches.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import mixedfit as mf
    >>> fig = plot_data("Reaction ~ Days | Subject", mf.load_dataset("sleepstudy"))
    >>> len(fig.axes), fig.axes[-5].get_title(), fig.axes[0].get_title()  # bottom left, top left
    (18, '308', '370')
    """
    plt = _pyplot()
    y_label, x_label, g_label, y, x, codes, levels = _panel_variables(formula, data)
    used = [k for k in range(len(levels)) if np.any(codes == k)]
    cols, rows = lattice_layout(len(used))
    fig, grid = _grid(plt, cols * rows, cols, panel_size, sharey=True)
    for ax in grid:
        ax.sharex(grid[0])
    x_range = np.array([x.min(), x.max()]) if x.size else np.zeros(2)
    axes = []
    for i, k in enumerate(used):
        ax = grid[(rows - 1 - i // cols) * cols + i % cols]  # lattice fills from the bottom row
        axes.append(ax)
        xs, ys = x[codes == k], y[codes == k]
        ax.plot(xs, ys, "o", markersize=3, fillstyle="none")
        if np.unique(xs).size > 1:
            slope, intercept = np.polyfit(xs, ys, 1)
            ax.plot(x_range, intercept + slope * x_range, lw=1)
        ax.set_title(levels[k], fontsize=9)
    for ax in grid:
        if ax not in axes:
            fig.delaxes(ax)
    fig.supxlabel(x_label)
    fig.supylabel(y_label)
    fig.tight_layout()
    return fig
