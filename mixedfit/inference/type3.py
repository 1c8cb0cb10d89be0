"""lmerTest's Type III hypothesis matrices (``extract_contrasts_type3``), and Type I for one term.

For each fixed term, the contrasts that test it with every other term
present: built on a synthetic grid of the factors' levels and varied
numeric values, residualized on the terms that contain it, as lmerTest does
for treatment-coded factors.  The columns of a numeric matrix (``poly(x, 2)``,
``ns(x, 3)``) are numbers, each varied on its own, not levels of a factor.  ``mixedfit.inference.fixed_tests.anova_type3``
tests them.
"""

from __future__ import annotations

import itertools
import re

import numpy as np

from ..errors import ModelSpecError
from ..rformat import zapsmall_array
from .satterthwaite import FixedTerm, fixed_term_columns

__all__ = ["type3_contrasts"]


_Cell = tuple[str, ...]  # what each variable of a term adds to its name in a column's name


def _cell_values(cells: list[_Cell], owners: list[tuple[str, ...]], grid: dict) -> np.ndarray:
    """Columns of R's model matrix, given by their cells, evaluated on the synthetic grid.

    A factor's suffix is a level (an indicator); a number's suffix names one
    of its columns (``""``, or a matrix's column number): its values.
    """
    n = len(next(iter(grid.values())))
    out = np.ones((n, len(cells)))
    for j, (cell, variables) in enumerate(zip(cells, owners)):
        for var, suffix in zip(variables, cell):
            out[:, j] *= grid[var, suffix] if (var, suffix) in grid else (grid[var] == suffix)
    return out


def _synthetic_grid(factors: dict[str, list[str]], numbers: dict[str, list[str]]) -> dict:
    """Every combination of factor levels, with varied values of each numeric column.

    ``ginv(X) %*% rdX`` expresses each column of the over-parameterized design
    in X's columns; with no missing cells that expression depends only on the
    levels, so a complete grid (the data are not kept by the fit) gives the
    same map.  Each column of a numeric matrix (``poly(x, 2)``) varies on its
    own, keyed ``(variable, suffix)``.
    """
    columns = [(v, s) for v, suffixes in numbers.items() for s in suffixes]
    cells = list(itertools.product(*factors.values())) or [()]
    reps = len(columns) + 2
    rng = np.random.default_rng(20240501)
    grid: dict = {v: np.repeat(np.array([c[k] for c in cells], dtype=object), reps)
                  for k, v in enumerate(factors)}
    for key in columns:
        grid[key] = rng.normal(size=len(cells) * reps)
    return grid


def _factor_levels(fit, kinds: dict) -> dict[str, list[str]]:
    """All levels of each factor (R's ``xlevels``; a logical's are FALSE and TRUE).

    ``rdX`` has an indicator for every level, and a factor may be coded by
    indicators in one term and by contrasts in another (without an intercept).
    """
    xlevels = fit.model.design.xlevels
    return {v: list(xlevels.get(v, ["FALSE", "TRUE"])) for v, lev in kinds.items() if lev is not None}


def _numeric_columns(fit, terms: list[FixedTerm], kinds: dict) -> dict[str, list[str]]:
    """The suffix of each column of each numeric variable: ``[""]``, or ``["1", "2"]`` for ``poly(x, 2)``.

    Read from every column made (``design.suffixes``, those dropped for rank
    deficiency too).
    """
    design = fit.model.design
    out: dict[str, list[str]] = {v: [] for v, lev in kinds.items() if lev is None}
    for name, cell in design.suffixes.items():
        if design.assign[name] == 0:
            continue
        for var, suffix in zip(terms[design.assign[name] - 1].variables, cell):
            if var in out and suffix not in out[var]:
                out[var].append(suffix)
    return {v: suffixes or [""] for v, suffixes in out.items()}


def _rdx_cells(term: FixedTerm, choices: dict[str, list[str]]) -> list[_Cell]:
    """Columns of ``model.matrix(~ 0 + term)``: every cell of the term's factors and matrices."""
    combos = itertools.product(*(choices[v] for v in reversed(term.variables)))
    return [tuple(reversed(c)) for c in combos]  # the first variable varies fastest


def _column_name(variables: tuple[str, ...], cell: _Cell) -> str:
    return ":".join(v + s for v, s in zip(variables, cell)) if variables else "(Intercept)"


def _containment(terms: list[FixedTerm], numbers: dict[str, list[str]]) -> dict[str, list[str]]:
    """lmerTest's ``containment``: terms whose variables strictly include a term's.

    A term is contained in another only when both have the same numeric
    variables (so ``temp`` is in ``recipe:temp`` but ``recipe`` is not).  As
    for lmerTest (``dataClasses`` ``"nmatrix.k"``), a matrix such as
    ``poly(x, 2)`` is not numeric here; ``scale(x)``, a one-column matrix to R,
    is.  Either way a matrix's columns multiply every cell they enter, so the
    residualization against a term holding it changes nothing.
    """
    def numerics(t: FixedTerm) -> set[str]:
        return {v for v in t.variables if numbers.get(v) == [""]}

    return {t.label: [u.label for u in terms
                      if set(t.variables) < set(u.variables) and numerics(t) == numerics(u)]
            for t in terms}


def _residualize(L: np.ndarray, x_cols: list[int], y_cols: list[int]) -> np.ndarray:
    """``resid(lm.fit(x = L[, x], y = L[, y]))``: least-squares residuals."""
    x, y = L[:, x_cols], L[:, y_cols]
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    return y - x @ coef


def type3_contrasts(fit) -> dict[str, np.ndarray]:
    """lmerTest's Type III hypothesis matrices, one per fixed term (treatment coding).

    Terms are tested in the order of the formula's terms; a matrix has one row
    per X column of its term.  For a model with a single term (or a single
    column) lmerTest uses the Type I (sequential) contrasts instead, and so
    does this.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("angle ~ recipe * temp + (1|recipe:replicate)", mf.load_dataset("cake"))
    >>> type3_contrasts(fit)["temp"]
    array([[0.       , 0.       , 0.       , 1.       , 0.3333333, 0.3333333]])
    """
    terms, intercept, kinds = fixed_term_columns(fit)
    X = fit.model.design.X
    if X.shape[1] <= 1 or len(terms) <= 1:
        return _type1_contrasts(X, terms, intercept)
    _check_treatment_coding(kinds)
    xnames = list(fit.xnames)
    owner = {j: t.variables for t in terms for j in t.columns}
    x_owners = [owner.get(j, ()) for j in range(len(xnames))]
    x_cells = [fit.model.design.suffixes[name] for name in xnames]
    factors = _factor_levels(fit, kinds)
    numbers = _numeric_columns(fit, terms, kinds)
    choices = {**numbers, **factors}
    rd_cells, rd_owners = ([()], [()]) if intercept else ([], [])
    for t in terms:
        cells = _rdx_cells(t, choices)
        rd_cells += cells
        rd_owners += [t.variables] * len(cells)
    grid = _synthetic_grid(factors, numbers)
    Xg = _cell_values(x_cells, x_owners, grid)
    rdX = _cell_values(rd_cells, rd_owners, grid)
    L = zapsmall_array((np.linalg.pinv(Xg) @ rdX).T)  # rows: rdX columns; columns: X columns
    contains = _containment(terms, numbers)
    by_label = {t.label: t for t in terms}
    for t in sorted(terms, key=lambda t: -t.order):  # stable: highest order first
        if contains[t.label] and t.columns:
            x_cols = [j for u in contains[t.label] for j in by_label[u].columns]
            L[:, t.columns] = zapsmall_array(_residualize(L, x_cols, t.columns))
    rd_names = [_column_name(v, c) for v, c in zip(rd_owners, rd_cells)]
    keep = [rd_names.index(name) for name in xnames]  # L[colnames(X), ]
    L = L[keep]
    out = {}
    for t in terms:
        Lt = L[:, t.columns].T
        out[t.label] = Lt[np.abs(Lt).sum(axis=1) > 1e-8]
    return out


def _check_treatment_coding(kinds: dict) -> None:
    """Refuse codings other than R's default treatment contrasts.

    lmerTest re-expresses other codings through a treatment-coded remake of
    X, which needs the data; that path is not ported.  Ordered factors show
    polynomial suffixes (``.L``, ``.Q``, ``.C``, ``^4``); ``C(f, ...)`` sets a
    coding explicitly.
    """
    for var, levels in kinds.items():
        poly = levels and all(re.fullmatch(r"\.[LQC]|\^\d+", s) for s in levels)
        if poly or var.startswith("C("):
            raise ModelSpecError(
                f"Type III tests are implemented for treatment-coded factors only; {var!r} "
                "is an ordered factor (polynomial contrasts) or has contrasts set with C()")


def _doolittle(x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """lmerTest's ``doolittle``: the unit lower factor L of ``x = LU`` (no pivoting)."""
    n = x.shape[0]
    L, U = np.eye(n), np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            U[i, j] = x[i, j] - L[i, :i] @ U[:i, j]
        for j in range(i + 1, n):
            L[j, i] = x[j, i] - L[j, :i] @ U[:i, i]
            L[j, i] = 0.0 if abs(U[i, i]) < eps else L[j, i] / U[i, i]
    L[np.abs(L) < eps] = 0.0
    return L


def _type1_contrasts(X: np.ndarray, terms: list[FixedTerm], intercept: bool) -> dict[str, np.ndarray]:
    """lmerTest's ``get_contrasts_type1``: rows of the Doolittle factor of XᵀX per term."""
    p = X.shape[1]
    if p == 0 or (p == 1 and intercept):
        return {}
    L = np.ones((1, 1)) if p == 1 else _doolittle(X.T @ X).T
    return {t.label: L[t.columns] for t in terms}
