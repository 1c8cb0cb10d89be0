"""Estimated marginal means and pairwise contrasts, as R's emmeans computes them on lmer fits.

A port of emmeans 1.8 (``ref_grid``, ``emmeans``, ``pairs``/``contrast``,
``summary``) for linear mixed models:

* the reference grid crosses every level of each factor of the fixed part
  with each numeric covariate at its mean over the rows fitted (emmeans'
  ``cov.reduce = mean``); a numeric column read inside a function
  (``log(Days)``, ``poly(temp, 2)``) sits at the mean of the column, the
  function evaluated there with the fit's transform state (``poly``'s
  coefficients, spline knots: R's ``predvars``), as in emmeans; a column made
  a factor in the formula (``factor(temp)``) is a factor of the grid at its
  distinct values, named as the column;
* a marginal mean averages the grid's rows over the factors not named, with
  equal weights (``weights = "equal"``);
* degrees of freedom as ``lmer.df``: ``"kenward-roger"`` (pbkrtest's
  ``vcovAdj`` covariance and ``Lb_ddf``), ``"satterthwaite"`` (lmerTest's
  ``calcSatterth``) or ``"asymptotic"`` (z tests).  The default is emmeans':
  Kenward-Roger, which emmeans gives up above 3000 observations
  (``pbkrtest.limit``), as it gives up Satterthwaite (``lmerTest.limit``),
  falling back to asymptotic;
* rows that a rank-deficient fit cannot estimate are NaN, marked
  ``"nonEst"`` by the print, as emmeans reports them;
* pairwise contrasts ``A - B`` in emmeans' order and labels, with p-values
  adjusted by ``"tukey"`` (studentized range over the family of means, the
  default), ``"holm"``, ``"bonferroni"`` or ``"none"``.

Examples
--------
>>> import mixedfit as mf
>>> fit = mf.mixed("score ~ Machine + (1|Worker) + (1|Worker:Machine)", mf.load_dataset("Machines"))
>>> em = emmeans(fit, "Machine")
>>> em.round(3)
  Machine  emmean     SE      df  lower.CL  upper.CL
0       A  52.356  2.486  8.522    46.684    58.027
1       B  60.322  2.486  8.522    54.650    65.994
2       C  66.272  2.486  8.522    60.600    71.944
>>> em.pairs()[["contrast", "estimate", "p.value"]].round(4)
  contrast  estimate  p.value
0    A - B   -7.9667   0.0111
1    A - C  -13.9167   0.0002
2    B - C   -5.9500   0.0507
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..distributions import t_ppf, t_sf
from ..errors import MixedFitWarning, ModelSpecError, warn
from ..formula.deparse import deparse
from ..formula.nodes import Call, Name, Node
from ..formula.rterms import term_variables
from ..rformat import zapsmall_array
from .predict import fixed_matrix
from .kenward_roger import contest1d_kr
from .satterthwaite import contest1d, fixed_term_columns

__all__ = ["emmeans", "pairs", "format_emmeans", "EmmeansFrame", "ADJUST_METHODS", "DDF_METHODS"]

ADJUST_METHODS = ("tukey", "holm", "bonferroni", "none")
DDF_METHODS = ("kenward-roger", "satterthwaite", "asymptotic")
_PBKRTEST_LIMIT = 3000  # emmeans' pbkrtest.limit and lmerTest.limit
_LMERTEST_LIMIT = 3000
_ESTIMABLE_TOL = 1e-8  # emmeans' estble.tol
_POLY_SUFFIX = re.compile(r"\.[LQC]|\^\d+")
_PARENS = re.compile(r"-|\+|/|\*")  # emmeans' default `parens` option


# -- the reference grid -------------------------------------------------------


@dataclass(frozen=True)
class _Grid:
    """emmeans' reference grid: its variables and one model-matrix row per cell.

    ``levels`` maps each variable to its levels (a factor) or to the one
    value it takes (a covariate, at its mean); the cells are their product
    with the first variable varying fastest (R's ``expand.grid``).  ``X``
    has the fit's columns, then those dropped for rank deficiency.
    """

    levels: dict[str, list]
    factors: list[str]
    cells: pd.DataFrame
    X: np.ndarray
    null_basis: np.ndarray | None
    term_labels: list[str] = field(default_factory=list)
    term_sizes: list[int] = field(default_factory=list)


def _fixed_variables(fit) -> tuple[list, list[str], list[int]]:
    """The fixed part's variables (not the response), its term labels and their sizes."""
    fixed = fit.model.design.parsed.fixed_terms
    if fixed.offsets:
        raise ModelSpecError("emmeans is not implemented for formulas with offset() terms")
    skip = 1 if fixed.has_response else 0
    sizes = [len(term_variables(t)) for t in fixed.terms]
    return list(fixed.variables[skip:]), fixed.labels(), sizes


def _ordered_factors(fit) -> set[str]:
    """Factors coded by polynomial contrasts (R's ordered factors): ``.L``, ``.Q``… columns."""
    _, _, kinds = fixed_term_columns(fit)
    return {v for v, suffixes in kinds.items()
            if suffixes and all(_POLY_SUFFIX.fullmatch(s) for s in suffixes)}


def _reference_grid(fit) -> _Grid:
    """emmeans' ``ref_grid(fit)``: factors at all levels, covariates at their means."""
    design = fit.model.design
    if design.y.shape[0] == 0:  # a Dask fit keeps no row: neither the means nor the rank
        raise ModelSpecError("emmeans needs a fit to in-memory data (the covariates' means are "
                             "taken over the rows fitted); fit with mf.mixed on a pandas DataFrame")
    if design.offset is not None:
        raise ModelSpecError("emmeans is not implemented for fits with an offset")
    variables, labels, sizes = _fixed_variables(fit)
    levels: dict[str, list] = {}
    factors: list[str] = []
    coerced: list[str] = []  # numeric columns that factor() makes factors of
    for node in variables:
        label = deparse(node)
        if label in design.xlevels:
            column = _coerced_column(node, design)
            if column is not None:
                levels[column] = [float(level) for level in design.xlevels[label]]
                factors.append(column)
                coerced.append(column)
                continue
            if not isinstance(node, Name):
                raise ModelSpecError(
                    f"emmeans needs each factor of the fixed part as a data column or "
                    f"factor(column); '{label}' is another factor made in the formula: make it "
                    "a column and refit")
            levels[label] = list(design.xlevels[label])
            factors.append(label)
    for name, mean in design.covariate_means.items():
        levels.setdefault(name, [mean])
    for node in variables:
        if isinstance(node, Name) and node.name not in levels:
            raise ModelSpecError(
                f"emmeans cannot place '{node.name}' in the reference grid: it is neither a "
                "factor nor a numeric column (a logical column? make it a factor or numbers)")
    ordered = _ordered_factors(fit)
    names = list(levels)
    combos = list(itertools.product(*(levels[v] for v in reversed(names)))) or [()]
    cells = pd.DataFrame({v: [c[len(names) - 1 - k] for c in combos] for k, v in enumerate(names)})
    data = cells.copy()
    for v in factors:
        if v in coerced:  # stays numbers: the formula's factor() codes them with the fit's levels
            continue
        data[v] = pd.Categorical(cells[v], categories=levels[v], ordered=v in ordered)
    columns = list(fit.xnames) + list(design.dropped_xnames)
    X = fixed_matrix(fit, data if len(names) else pd.DataFrame(index=[0]), columns)
    return _Grid(levels, factors, cells, X, _null_basis(design), labels, sizes)


def _coerced_column(node: Node, design) -> str | None:
    """The numeric column *x* of ``factor(x)`` (or ``as.factor(x)``), else None.

    emmeans' ``.find.coerced``: such a column is a factor of the reference
    grid, named as the column, at its distinct values (the levels of the
    factor made, which the formula makes again from those values).
    """
    if not (isinstance(node, Call) and node.func in ("factor", "as.factor") and len(node.args) == 1):
        return None
    arg = node.args[0]
    if arg.name is None and isinstance(arg.value, Name) and arg.value.name in design.covariate_means:
        return arg.value.name
    return None


def _null_basis(design) -> np.ndarray | None:
    """An orthonormal basis of the non-estimable directions (emmeans' ``nonest.basis``)."""
    if design.dropped_coef is None:
        return None
    C = np.asarray(design.dropped_coef, float)
    N = np.vstack([-C, np.eye(C.shape[1])])
    return np.linalg.qr(N)[0]


def _estimable(L: np.ndarray, basis: np.ndarray | None) -> np.ndarray:
    """estimability's ``is.estble``: rows with no part in the non-estimable space."""
    if basis is None:
        return np.ones(L.shape[0], dtype=bool)
    proj = L @ basis
    return np.sum(proj**2, axis=1) < _ESTIMABLE_TOL * np.sum(L**2, axis=1)


# -- arguments -------------------------------------------------------------------


def _as_list(names, what: str) -> list[str]:
    if names is None:
        return []
    if isinstance(names, str):
        return [names]
    try:
        return [str(n) for n in names]
    except TypeError:
        raise ModelSpecError(f"{what} must be a name or a list of names, not {names!r}") from None


def _check_names(names: list[str], grid: _Grid, what: str) -> None:
    unknown = [n for n in names if n not in grid.levels]
    if unknown:
        factors = ", ".join(grid.factors) or "none"
        covariates = ", ".join(v for v in grid.levels if v not in grid.factors) or "none"
        raise ModelSpecError(
            f"{what} {', '.join(repr(n) for n in unknown)} is not a variable of the fixed "
            f"effects; the model's factors: {factors} (covariates: {covariates})")


def _resolve_ddf(fit, ddf: str | None) -> tuple[str, list[str]]:
    """emmeans' choice of ``lmer.df`` and the notes it prints when a limit is exceeded."""
    if ddf is None:
        mode = "kenward-roger"
    else:
        key = str(ddf).lower().replace("_", "-").replace(" ", "-")
        key = {"kenwardroger": "kenward-roger", "kr": "kenward-roger"}.get(key, key)
        if key not in DDF_METHODS:
            raise ModelSpecError(f"ddf={ddf!r} is not available; use one of "
                                 + ", ".join(repr(m) for m in DDF_METHODS))
        mode = key
    notes = []
    n = fit.nobs
    if mode == "kenward-roger" and n <= _PBKRTEST_LIMIT and not fit.reml:
        raise ModelSpecError(
            "emmeans' Kenward-Roger degrees of freedom need a REML fit (pbkrtest refits an ML "
            "fit by REML, which mixedfit does not do behind your back); refit with reml=True "
            "or pass ddf='satterthwaite' or ddf='asymptotic'")
    if mode == "kenward-roger" and n > _PBKRTEST_LIMIT:
        notes.append(_limit_note("pbkrtest", _PBKRTEST_LIMIT, n))
        mode = "satterthwaite"
    if mode == "satterthwaite" and n > _LMERTEST_LIMIT:
        notes.append(_limit_note("lmerTest", _LMERTEST_LIMIT, n))
        mode = "asymptotic"
    return mode, notes


def _limit_note(pkg: str, limit: int, n: int) -> str:
    return (f"Note: D.f. calculations have been disabled because the number of observations "
            f"exceeds {limit} (emmeans' {pkg}.limit); the {n} rows would need large "
            "computation time and memory.")


# -- estimates -------------------------------------------------------------------


def _tests(fit, L: np.ndarray, estimable: np.ndarray, mode: str) -> pd.DataFrame:
    """Estimate, SE and df of each row of L (``.est.se.df``); NaN where not estimable."""
    p = len(fit.xnames)
    V = fit.vcov.to_numpy()
    beta = np.asarray(fit.fixef, float)
    out = np.full((L.shape[0], 3), np.nan)
    for i in np.flatnonzero(estimable):
        x = L[i, :p]
        if mode == "asymptotic":
            out[i] = [x @ beta, np.sqrt(x @ V @ x), np.inf]
            continue
        res = contest1d_kr(fit, x) if mode == "kenward-roger" else contest1d(fit, x)
        out[i] = [res["Estimate"], res["Std. Error"], res["df"]]
    return pd.DataFrame(out, columns=["estimate", "SE", "df"])


def _quantile(level: float, df: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return t_ppf(0.5 + level / 2.0, df)


# -- the result ------------------------------------------------------------------


@dataclass
class _Info:
    """What a result frame keeps to print itself and to make contrasts."""
    fit: object
    grid: _Grid
    L: np.ndarray
    specs: list[str]
    by: list[str]
    mode: str
    level: float = 0.95
    kind: str = "emmeans"
    messages: list[str] = field(default_factory=list)
    averaged: list[str] = field(default_factory=list)
    adjust_line: str | None = None


class EmmeansFrame(pd.DataFrame):
    """A DataFrame of emmeans' summary that prints as emmeans does.

    Its values are those of ``as.data.frame(summary(...))``; ``str()`` and
    ``repr()`` give emmeans' print, with the by groups as blocks and the notes
    beneath.  Selecting or computing on it gives a plain DataFrame.

    Attributes
    ----------
    messages : list of str
        emmeans' notes (interactions, degrees-of-freedom limits).
    """

    _metadata = ["_info"]

    @property
    def _constructor(self):
        return pd.DataFrame

    @property
    def messages(self) -> list[str]:
        return list(self._info.messages)

    def pairs(self, adjust: str = "tukey") -> "EmmeansFrame":
        """Pairwise differences of the means within each by group (emmeans' ``pairs``).

        See ``pairs``.
        """
        return pairs(self, adjust=adjust)

    def __str__(self) -> str:
        return format_emmeans(self)

    def __repr__(self) -> str:
        return format_emmeans(self)


def _frame(table: pd.DataFrame, info: _Info) -> EmmeansFrame:
    out = EmmeansFrame(table)
    out._info = info
    return out


def emmeans(fit, specs, by=None, ddf: str | None = None, level: float = 0.95,
            pairwise: bool = False, adjust: str = "tukey") -> EmmeansFrame:
    """Estimated marginal means, as R's ``emmeans(fit, specs, by = by)`` on an lmer fit.

    Parameters
    ----------
    fit : MixedResults
    specs : str or list of str
        The factors (or covariates) whose means are wanted, ``"trt"`` or
        ``["A", "B"]`` (R's ``~ A * B``).
    by : str or list of str, optional
        Factors to condition on (R's ``~ trt | time``): means within each of
        their levels.
    ddf : {"kenward-roger", "satterthwaite", "asymptotic"}, optional
        Degrees of freedom (emmeans' ``lmer.df``).  Default as emmeans:
        Kenward-Roger up to 3000 observations, else asymptotic.  Kenward-Roger
        needs a REML fit and uses pbkrtest's adjusted covariance for the SEs.
    level : float
        Confidence level of the intervals.
    pairwise : bool
        Return the pairwise contrasts of the means instead (as ``pairs``).
    adjust : {"tukey", "holm", "bonferroni", "none"}
        p-value adjustment of the contrasts (with ``pairwise=True``).

    Returns
    -------
    EmmeansFrame
        Columns: the specs and by variables, ``emmean, SE, df, lower.CL,
        upper.CL`` (``asymp.LCL, asymp.UCL`` with asymptotic df), one row per
        cell, the first variable varying fastest; NaN where the fit cannot
        estimate the mean.

    Raises
    ------
    ModelSpecError
        A name that is not a variable of the fixed effects (the message lists
        the model's factors), an unknown ``ddf``.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("angle ~ recipe * temperature + (1|recipe:replicate)", mf.load_dataset("cake"))
    >>> em = emmeans(fit, "recipe", by="temperature")
    >>> em.head(3).round(3)
      recipe temperature  emmean     SE      df  lower.CL  upper.CL
    0      A         175  29.133  2.038  77.437    25.075    33.191
    1      B         175  26.867  2.038  77.437    22.809    30.925
    2      C         175  27.933  2.038  77.437    23.875    31.991
    """
    grid = _reference_grid(fit)
    specs_l, by_l = _as_list(specs, "specs"), _as_list(by, "by")
    if not specs_l:
        raise ModelSpecError("specs must name at least one variable of the fixed effects")
    _check_names(specs_l, grid, "specs")
    _check_names(by_l, grid, "by")
    facs = list(dict.fromkeys(specs_l + by_l))
    mode, notes = _resolve_ddf(fit, ddf)
    L, cells = _marginal_functions(grid, facs)
    estimable = _estimable(L, grid.null_basis)
    tests = _tests(fit, L, estimable, mode)
    table = cells.copy()
    table["emmean"] = tests["estimate"]
    table["SE"], table["df"] = tests["SE"], tests["df"]
    half = _quantile(level, tests["df"].to_numpy()) * tests["SE"].to_numpy()
    lower, upper = ("asymp.LCL", "asymp.UCL") if mode == "asymptotic" else ("lower.CL", "upper.CL")
    table[lower], table[upper] = table["emmean"] - half, table["emmean"] + half
    messages = notes + (["NOTE: Results may be misleading due to involvement in interactions"]
                        if _some_term_contains(facs, grid) else [])
    averaged = [v for v in grid.factors if v not in facs]
    info = _Info(fit, grid, L, specs_l, by_l, mode, level, messages=messages, averaged=averaged)
    for message in messages:
        warn(message, MixedFitWarning)
    result = _frame(table, info)
    return pairs(result, adjust=adjust) if pairwise else result


def _marginal_functions(grid: _Grid, facs: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Equal-weight averages of the grid's rows per combination of *facs* (first fastest)."""
    combos = list(itertools.product(*(grid.levels[v] for v in reversed(facs))))
    cells = pd.DataFrame({v: [c[len(facs) - 1 - k] for c in combos] for k, v in enumerate(facs)})
    L = np.empty((len(cells), grid.X.shape[1]))
    keys = grid.cells[facs].astype(object)
    for i, row in enumerate(cells.itertuples(index=False)):
        match = np.all(keys.to_numpy() == np.array(row, dtype=object), axis=1)
        L[i] = grid.X[match].mean(axis=0)
    return L, cells


def _some_term_contains(facs: list[str], grid: _Grid) -> bool:
    """emmeans' ``.some.term.contains``: a term naming all of facs and more variables."""
    return any(all(re.search(f, label) for f in facs) and size > len(facs)
               for label, size in zip(grid.term_labels, grid.term_sizes))


# -- contrasts -------------------------------------------------------------------


def _level_labels(cells: pd.DataFrame, names: list[str]) -> list[str]:
    """emmeans' level labels: numeric-looking levels prefixed by their variable, joined by spaces."""
    parts = []
    for v in names:
        values = [_r_text(x) for x in cells[v]]
        numeric = all(_looks_numeric(x) for x in values)
        parts.append([v + x if numeric else x for x in values])
    labels = [" ".join(p) for p in zip(*parts)] if parts else [""] * len(cells)
    return [f"({s})" if _PARENS.search(s) else s for s in labels]


def _r_text(x) -> str:
    """R's ``as.character`` of a level or covariate value (15 significant digits)."""
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.15g}"
    return str(x)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def pairs(em: EmmeansFrame, adjust: str = "tukey") -> EmmeansFrame:
    """Pairwise differences of marginal means, as R's ``pairs(emmeans(...), adjust = ...)``.

    Parameters
    ----------
    em : EmmeansFrame
        The result of ``emmeans``.
    adjust : {"tukey", "holm", "bonferroni", "none"}
        p-value adjustment for the family of contrasts in each by group
        (Tukey: the studentized range over the family of means, emmeans'
        default for pairwise comparisons).  A family of one contrast is not
        adjusted, as in emmeans.

    Returns
    -------
    EmmeansFrame
        Columns ``contrast``, the by variables, ``estimate, SE, df, t.ratio,
        p.value`` (``z.ratio`` with asymptotic df); the contrasts ``A - B``
        in emmeans' order (each level against the later ones).

    Raises
    ------
    ModelSpecError
        An unknown ``adjust`` (the message lists the valid ones); a single
        mean (per by group) to compare.
    """
    if not isinstance(em, EmmeansFrame) or getattr(em, "_info", None) is None \
            or em._info.kind != "emmeans":
        raise ModelSpecError("pairs() takes the result of emmeans()")
    method = _check_adjust(adjust)
    info = em._info
    cells = em[info.specs + [b for b in info.by if b not in info.specs]]
    by = [b for b in info.by if b not in info.specs]
    groups = _by_groups(cells, by)
    labels = _level_labels(cells.iloc[groups[0]], [v for v in info.specs if v not in by])
    k = len(groups[0])
    if k < 2:  # emmeans prints a "(nothing)" row
        where = " in each by group" if by else ""
        raise ModelSpecError(f"pairs() needs two or more means to compare{where}; "
                             f"{', '.join(info.specs)} takes one value")
    pairs_ij = [(i, j) for i in range(k - 1) for j in range(i + 1, k)]
    rows, L = [], []
    for rows_g in groups:
        for i, j in pairs_ij:
            L.append(info.L[rows_g[i]] - info.L[rows_g[j]])
            rows.append({"contrast": f"{labels[i]} - {labels[j]}",
                         **{b: cells.iloc[rows_g[0]][b] for b in by}})
    L = np.array(L).reshape(len(rows), info.L.shape[1])
    tests = _tests(info.fit, L, _estimable(L, info.grid.null_basis), info.mode)
    table = pd.DataFrame(rows, columns=["contrast"] + by)
    table["estimate"], table["SE"], table["df"] = tests["estimate"], tests["SE"], tests["df"]
    ratio = "z.ratio" if info.mode == "asymptotic" else "t.ratio"
    table[ratio] = table["estimate"] / table["SE"]
    pvalues, line = _adjusted_p(table[ratio].to_numpy(), table["df"].to_numpy(), method, k,
                                len(pairs_ij))
    table["p.value"] = pvalues
    out = _Info(info.fit, info.grid, L, ["contrast"], by, info.mode, info.level, kind="pairs",
                messages=info.messages, averaged=info.averaged, adjust_line=line)
    return _frame(table, out)


def _check_adjust(adjust: str) -> str:
    key = str(adjust).lower()
    if key not in ADJUST_METHODS:
        raise ModelSpecError(f"adjust={adjust!r} is not available; use one of "
                             + ", ".join(repr(m) for m in ADJUST_METHODS))
    return key


def _by_groups(cells: pd.DataFrame, by: list[str]) -> list[list[int]]:
    """Row positions of each by group, groups in order of first appearance."""
    if not by:
        return [list(range(len(cells)))]
    keys = [tuple(r) for r in cells[by].astype(object).itertuples(index=False)]
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _adjusted_p(t: np.ndarray, df: np.ndarray, method: str, fam_size: int,
                n_contr: int) -> tuple[np.ndarray, str | None]:
    """emmeans' ``.adj.p.value`` for two-sided tests, and its footnote line."""
    if n_contr == 1:
        method = "none"
    df = np.where(np.isnan(df), np.inf, df)
    raw = 2.0 * t_sf(np.abs(t), df)
    if method == "none":
        return raw, None
    if method == "tukey":
        from scipy import stats  # studentized_range: the one distribution scipy.special lacks

        # emmeans rounds all the df together to 7 significant digits (an Inf among them: to integers)
        dfz = zapsmall_array(df)
        with np.errstate(invalid="ignore"):
            p = stats.studentized_range.sf(np.sqrt(2.0) * np.abs(t), fam_size, dfz)
        p = np.where(np.isnan(t), np.nan, p)
        line = None if fam_size < 3 else \
            f"P value adjustment: tukey method for comparing a family of {fam_size} estimates"
        return p, line
    p = np.concatenate([_p_adjust(raw[s:s + n_contr], method, n_contr)
                        for s in range(0, len(raw), n_contr)])
    return p, f"P value adjustment: {method} method for {n_contr} tests"


def _p_adjust(p: np.ndarray, method: str, n: int) -> np.ndarray:
    """R's ``p.adjust(p, method, n)`` for holm and bonferroni; NaN kept in place."""
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    if method == "bonferroni":
        out[ok] = np.minimum(1.0, n * q)
        return out
    order = np.argsort(q, kind="stable")
    steps = (n - np.arange(len(q))) * q[order]
    adjusted = np.minimum(1.0, np.maximum.accumulate(steps))
    res = np.empty_like(q)
    res[order] = adjusted
    out[ok] = res
    return out


# -- printing (emmeans' print.summary_emm) -----------------------------------------

_TEST_STATS = ("t.ratio", "z.ratio")


def format_emmeans(em: EmmeansFrame) -> str:
    """emmeans' print of a summary: by-group blocks, ``nonEst`` cells, then the notes.

    The numbers are formatted as ``print.summary_emm`` does: estimates, SEs,
    df and limits to the significant digits that the estimate ± 2 SE
    warrant (``.opt.dig``, at least 3), with R's common number of decimals
    per column; test statistics to 3 decimals, p-values to 4 (``<.0001``).
    """
    info = getattr(em, "_info", None)
    if info is None:
        return pd.DataFrame.__repr__(em)
    by = [b for b in info.by if not (info.kind == "emmeans" and b in info.specs)]
    cells, right = _format_columns(em)
    shown = [c for c in em.columns if c not in by]
    widths = {c: max(len(c), *(len(s) for s in cells[c])) for c in em.columns}

    def line(values: list[str], columns: list[str]) -> str:
        return " " + " ".join(v.rjust(widths[c]) if right[c] else v.ljust(widths[c])
                              for v, c in zip(values, columns))

    header = line([c if right[c] else c.ljust(widths[c]) for c in shown], shown)
    blocks = []
    for rows in _by_groups(em, by):
        body = [line([cells[c][i] for c in shown], shown) for i in rows]
        head = ", ".join(f"{b} = {cells[b][rows[0]]}" for b in by)
        blocks.append("\n".join(([f"{head}:"] if head else []) + [header] + body) + "\n")
    notes = []
    if info.averaged:
        notes.append("Results are averaged over the levels of: " + ", ".join(info.averaged))
    notes.append(f"Degrees-of-freedom method: {info.mode}")
    if info.kind == "emmeans":
        notes.append(f"Confidence level used: {info.level:g}")
    elif info.adjust_line:
        notes.append(info.adjust_line)
    return "\n".join(blocks + [note + " " for note in notes])


def _zapsmall_na(x: np.ndarray) -> np.ndarray:
    """R's ``zapsmall``, which leaves NA out of the scale."""
    out = x.copy()
    known = ~np.isnan(x)
    out[known] = zapsmall_array(x[known])
    return out


def _format_columns(em: pd.DataFrame) -> tuple[dict[str, list[str]], dict[str, bool]]:
    """Each column as print.summary_emm writes it, and whether it is right-justified."""
    est_name = "emmean" if "emmean" in em.columns else "estimate"
    est = _zapsmall_na(em[est_name].to_numpy(float))
    se = em["SE"].to_numpy(float)
    ok = np.isfinite(est) & np.isfinite(se)
    digits = max([_opt_digits(est[i] + se[i] * np.array([-2.0, 0.0, 2.0])) for i in np.flatnonzero(ok)],
                 default=3)
    cells: dict[str, list[str]] = {}
    right: dict[str, bool] = {}
    for col in em.columns:
        values = em[col]
        right[col] = pd.api.types.is_numeric_dtype(values)
        if not right[col]:
            cells[col] = [_r_text(v) for v in values]
            continue
        x = _zapsmall_na(values.to_numpy(float))
        if col in _TEST_STATS:
            cells[col] = [f"{v:.3f}" if np.isfinite(v) else "NA" for v in np.round(x, 3)]
        elif col == "p.value":
            cells[col] = [("<.0001" if f"{v:.4f}" == "0.0000" else f"{v:.4f}")
                          if np.isfinite(v) else "NA" for v in np.round(x, 4)]
        else:
            cells[col] = _format_real(np.round(x, 2) if col == "df" else x, digits)
        if col == est_name:
            cells[col] = [s if np.isfinite(v) else "nonEst" for s, v in zip(cells[col], x)]
    return cells, right


def _opt_digits(x: np.ndarray) -> int:
    """emmeans' ``.opt.dig``: significant digits that separate estimate − 2 SE … + 2 SE."""
    z = np.array([x.min(), x.max()]) / np.max(np.abs(x))
    dz = zapsmall_array(np.array([z[1] - z[0], *z]), digits=8)[0]
    with np.errstate(divide="ignore"):
        zz = np.round(1.51 - np.log10(dz))
    return 3 if not np.isfinite(zz) else int(max(zz, 3))


def _format_real(x: np.ndarray, digits: int) -> list[str]:
    """R's ``format(x, digits = digits)`` of a numeric column in fixed notation.

    Each value needs the significant digits (at most *digits*) that show it
    to *digits* digits; the column gets the most decimals any value needs.
    """
    decimals = 0
    for v in x[np.isfinite(x)]:
        mantissa, exponent = f"{abs(v):.{digits - 1}e}".split("e")
        sig = len(mantissa.replace(".", "").rstrip("0")) or 1
        decimals = max(decimals, sig - int(exponent) - 1)
    out = []
    for v in x:
        if np.isnan(v):
            out.append("NA")
        elif np.isinf(v):
            out.append("Inf" if v > 0 else "-Inf")
        else:
            out.append(f"{v:.{decimals}f}")
    return out
