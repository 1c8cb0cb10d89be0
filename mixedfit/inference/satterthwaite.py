"""Satterthwaite's degrees of freedom for t and F tests of fixed effects (lmerTest).

A port of lmerTest 3.1-3 (``as_lmerModLT``, ``contest1D``, ``contestMD``,
``get_Fstat_ddf`` and the Type III / Type I contrast builders).  The
variance parameters are ``varpar = (θ, σ)``; lmerTest

1. takes the Hessian of its ``devfun_vp`` (the ML deviance or REML criterion
   as a function of θ *and* σ, not profiled over σ) at the optimum, by
   ``numDeriv::hessian`` (Richardson extrapolation, relative step 0.1), and
   sets ``vcov_varpar = 2 H⁻¹`` (a pseudo-inverse over eigenvalues > 1e-8);
2. takes the Jacobian of ``vcov(β) = σ² (R_X R_Xᵀ)⁻¹`` with respect to
   varpar by ``numDeriv::jacobian`` (Richardson, relative step 1e-4);
3. for a contrast ``l``: ``df = 2 (lᵀVl)² / (gᵀ vcov_varpar g)`` with
   ``g_i = lᵀ (∂V/∂varpar_i) l``.

The finite differences below reproduce numDeriv's steps and extrapolation
exactly, so the degrees of freedom agree with lmerTest to many digits.

``ddf="kenward-roger"`` ports pbkrtest 0.5.2 (``vcovAdj``, ``Lb_ddf``,
``KRmodcomp``) as lmerTest calls it; it works with dense n × n matrices.

Examples
--------
>>> import mixedfit as mf
>>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
>>> coef_table(fit)["df"].round(2).tolist()
[17.0, 17.0]
>>> anova_type3(fit).round(3)
         Sum Sq    Mean Sq  NumDF  DenDF  F value  Pr(>F)
Days  30030.939  30030.939    1.0   17.0   45.853     0.0
"""

from __future__ import annotations

import itertools
import re
import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConvergenceWarning, ModelSpecError, warn
from ..formula.deparse import deparse
from ..formula.rterms import term_variables
from ..formula.spec import parse_formula
from ..rformat import zapsmall_array
from .numderiv import richardson_hessian, richardson_jacobian

__all__ = [
    "DDF_METHODS",
    "normalize_ddf",
    "FixedTerm",
    "VarparInfo",
    "varpar_info",
    "devfun_vp",
    "covbeta",
    "contest1d",
    "contest_md",
    "coef_table",
    "anova_type3",
    "type3_contrasts",
    "fixed_term_columns",
    "map_term_columns",
    "full_levels",
    "KenwardRoger",
    "kenward_roger",
    "contest1d_kr",
    "contest_md_kr",
]

_EIGEN_TOL = 1e-8  # lmerTest's tolerance on the Hessian's eigenvalues
#: lmerTest's ``ddf`` methods, as its ``summary`` and ``anova`` spell them.
DDF_METHODS = ("Satterthwaite", "Kenward-Roger", "lme4")

# -- lmerTest's functions of varpar = (θ, σ) --------------------------------


def devfun_vp(model, varpar: np.ndarray) -> float:
    """lmerTest's ``devfun_vp``: −2 log-likelihood (ML) or REML criterion at varpar = (θ, σ)."""
    varpar = np.asarray(varpar, float)
    return model.objective_at_sigma(varpar[:-1], varpar[-1])


def covbeta(model, varpar: np.ndarray) -> np.ndarray:
    """lmerTest's ``get_covbeta``: ``σ² (R_X R_Xᵀ)⁻¹`` at (θ, σ)."""
    varpar = np.asarray(varpar, float)
    factor = model.factor(varpar[:-1])
    if factor is None:
        return np.full((model.cross.p,) * 2, np.nan)
    Ri = model.cross.rx_inverse(factor)
    return varpar[-1] ** 2 * (Ri.T @ Ri)


@dataclass(frozen=True)
class VarparInfo:
    """What lmerTest stores on an ``lmerModLmerTest`` object.

    Attributes
    ----------
    varpar : ndarray
        (θ, σ) at the optimum.
    vcov_beta : ndarray, shape (p, p)
        Covariance of β̂.
    hessian : ndarray
        Hessian of ``devfun_vp`` at varpar.
    vcov_varpar : ndarray
        ``2 H⁻¹`` (pseudo-inverse over eigenvalues above 1e-8).
    jac : list of ndarray
        ∂vcov(β)/∂varpar_i, one (p, p) array per variance parameter.
    """

    varpar: np.ndarray
    vcov_beta: np.ndarray
    hessian: np.ndarray
    vcov_varpar: np.ndarray
    jac: list[np.ndarray]


_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def varpar_info(fit) -> VarparInfo:
    """lmerTest's ``as_lmerModLT`` on a fit (computed once per fit, then cached).

    Warns (``ConvergenceWarning``) with lmerTest's text when
    the Hessian has negative or near-zero eigenvalues.
    """
    try:
        return _CACHE[fit]
    except (KeyError, TypeError):
        pass
    model = fit.model
    varpar = np.append(np.asarray(fit.theta, float), fit.sigma)
    H = richardson_hessian(lambda v: devfun_vp(model, v), varpar)
    vcov_varpar = _pseudo_inverse_times_two(H)
    p = len(fit.xnames)
    J = richardson_jacobian(lambda v: covbeta(model, v), varpar)
    jac = [J[:, i].reshape(p, p) for i in range(J.shape[1])]
    info = VarparInfo(varpar, fit.vcov.to_numpy(), H, vcov_varpar, jac)
    try:
        _CACHE[fit] = info
    except TypeError:  # not weak-referenceable: recompute next time
        pass
    return info


def _pseudo_inverse_times_two(H: np.ndarray) -> np.ndarray:
    """``2 H⁻¹`` over H's eigenvalues above 1e-8, warning as lmerTest does."""
    values, vectors = np.linalg.eigh(H)
    values, vectors = values[::-1], vectors[:, ::-1]  # R's eigen(): decreasing
    neg = values < -_EIGEN_TOL
    zero = (values > -_EIGEN_TOL) & (values < _EIGEN_TOL)
    if neg.any():
        word = "eigenvalues" if neg.sum() > 1 else "eigenvalue"
        warn(f"Model failed to converge with {neg.sum()} negative {word}: "
                      + " ".join(f"{v:1.1e}" for v in values[neg]),
             ConvergenceWarning)
    if zero.any():
        word = "eigenvalues" if zero.sum() > 1 else "eigenvalue"
        warn(f"Model may not have converged with {zero.sum()} {word} close to zero: "
                      + " ".join(f"{v:1.1e}" for v in values[zero]),
             ConvergenceWarning)
    pos = values > _EIGEN_TOL
    V = vectors[:, pos]
    return 2.0 * (V / values[pos]) @ V.T


# -- tests of contrasts -------------------------------------------------------


def _qform(x: np.ndarray, A: np.ndarray) -> float:
    return float(x @ A @ x)


def _ddf_key(text: str) -> str:
    return "".join(c for c in text.lower() if c not in "-_ ")


def normalize_ddf(ddf: str) -> str:
    """lmerTest's spelling of a ``ddf`` method: one of ``DDF_METHODS``.

    Case, hyphens, underscores and spaces do not matter (``"kenward-roger"``,
    ``"Kenward Roger"``, ``"LME4"``); lmerTest's abbreviations do not stand.

    Raises
    ------
    ModelSpecError
        For anything else, listing the methods.

    Examples
    --------
    >>> normalize_ddf("kenward roger"), normalize_ddf("SATTERTHWAITE"), normalize_ddf("lme4")
    ('Kenward-Roger', 'Satterthwaite', 'lme4')
    """
    if isinstance(ddf, str):
        for method in DDF_METHODS:
            if _ddf_key(ddf) == _ddf_key(method):
                return method
    raise ModelSpecError(f"ddf must be one of {', '.join(map(repr, DDF_METHODS))} "
                         f"(any case), not {ddf!r}")


def contest1d(fit, L: np.ndarray, rhs: float = 0.0) -> dict[str, float]:
    """lmerTest's ``contest1D``: t test of ``Lᵀβ = rhs`` with Satterthwaite's df.

    Returns
    -------
    dict
        ``Estimate, Std. Error, df, t value, Pr(>|t|)``.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    >>> round(contest1d(fit, np.array([0.0, 1.0]))["df"], 3)
    17.0
    """
    info = varpar_info(fit)
    L = np.asarray(L, float).ravel()
    estimate = float(L @ np.asarray(fit.fixef, float))
    var_con = _qform(L, info.vcov_beta)
    grad = np.array([_qform(L, J) for J in info.jac])
    ddf = 2.0 * var_con**2 / _qform(grad, info.vcov_varpar)
    t = (estimate - rhs) / np.sqrt(var_con)
    return {"Estimate": estimate, "Std. Error": float(np.sqrt(var_con)), "df": float(ddf),
            "t value": float(t), "Pr(>|t|)": float(2.0 * stats.t.sf(abs(t), ddf))}


def _fstat_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """lmerTest's ``get_Fstat_ddf``: combine the per-direction df of an F test."""
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(nu.mean())
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2.0)))
    return 2.0 * E / (E - nu.size)


def _f_row(F: float, ndf: float, ddf: float, sigma: float) -> dict[str, float]:
    ms = F * sigma**2
    return {"Sum Sq": ms * ndf, "Mean Sq": ms, "NumDF": ndf, "DenDF": ddf,
            "F value": F, "Pr(>F)": float(stats.f.sf(F, ndf, ddf))}


_SQRT_EPS = float(np.sqrt(np.finfo(float).eps))


def contest_md(fit, L: np.ndarray, eps: float = _SQRT_EPS) -> dict[str, float] | None:
    """lmerTest's ``contestMD``: F test of ``Lβ = 0`` with Satterthwaite's df.

    Returns ``None`` for an empty contrast (lmerTest returns no row).
    """
    L = np.atleast_2d(np.asarray(L, float))
    if L.shape[0] == 0:
        return None
    if L.shape[0] == 1:
        res = contest1d(fit, L[0])
        return _f_row(res["t value"] ** 2, 1, res["df"], fit.sigma)
    info = varpar_info(fit)
    beta = np.asarray(fit.fixef, float)
    values, P = np.linalg.eigh(L @ info.vcov_beta @ L.T)
    values, P = values[::-1], P[:, ::-1]  # R's eigen(): decreasing
    q = int(np.sum(values > max(eps * values[0], 0.0)))
    if q <= 0:
        return None
    PtL = (P.T @ L)[:q]
    if q == 1:
        res = contest1d(fit, PtL[0])
        return _f_row(res["t value"] ** 2, q, res["df"], fit.sigma)
    F = float(np.sum((PtL @ beta) ** 2 / values[:q]) / q)
    nu = np.array([
        2.0 * values[m] ** 2 / _qform(np.array([_qform(PtL[m], J) for J in info.jac]), info.vcov_varpar)
        for m in range(q)
    ])
    return _f_row(F, q, _fstat_ddf(nu), fit.sigma)


def coef_table(fit, ddf: str = "satterthwaite") -> pd.DataFrame:
    """lmerTest's ``summary(fit)$coefficients``: t tests with Satterthwaite's df.

    Parameters
    ----------
    fit : MixedResults
    ddf : {"Satterthwaite", "Kenward-Roger", "lme4"}
        Method for the degrees of freedom (any case, see ``normalize_ddf``).
        Kenward-Roger (REML fits only) also replaces the standard errors by
        those of pbkrtest's adjusted covariance, as ``summary(fit, ddf =
        "Kenward-Roger")`` does; ``"lme4"`` gives lme4's table, without df.

    Returns
    -------
    pandas.DataFrame
        Columns ``Estimate, Std. Error, df, t value, Pr(>|t|)``, one row per
        fixed effect (``Estimate, Std. Error, t value`` with ``"lme4"``).

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("diameter ~ 1 + (1|plate) + (1|sample)", mf.load_dataset("Penicillin"))
    >>> coef_table(fit)["df"].round(3).tolist()
    [5.487]
    """
    method = normalize_ddf(ddf)
    if method == "lme4":
        return pd.DataFrame({"Estimate": fit.fixef, "Std. Error": fit.bse, "t value": fit.tvalues})
    test = contest1d_kr if method == "Kenward-Roger" else contest1d
    p = len(fit.xnames)
    rows = [test(fit, np.eye(p)[i]) for i in range(p)]
    columns = ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    return pd.DataFrame(rows, index=list(fit.xnames), columns=columns)


# -- the term -> columns map -------------------------------------------------


@dataclass(frozen=True)
class FixedTerm:
    """One term of the fixed-effects formula, as far as its X columns show it.

    Attributes
    ----------
    label : str
        R's term label (``recipe:temp``).
    variables : tuple of str
        The deparsed variables of the term, in R's variable order.
    order : int
        The term's degree (number of variables).
    columns : list of int
        Positions of the term's columns in X (R's ``assign``).
    """

    label: str
    variables: tuple[str, ...]
    order: int
    columns: list[int]


def fixed_term_columns(fit) -> tuple[list[FixedTerm], bool, dict[str, list[str] | None]]:
    """R's fixed terms of a fit, the X columns of each, and each variable's kind.

    The Design keeps no ``assign`` vector, so it is rebuilt here from the
    formula (R's ``terms()``) and X's column names: R lays X out term by
    term, and a column of a term with variables (v₁, …, v_k) is named
    ``v₁<suffix>:…:v_k<suffix>`` (suffix empty for a numeric variable, a
    level for a factor).

    Returns
    -------
    terms : list of FixedTerm
    intercept : bool
    kinds : dict
        Variable → ``None`` for a numeric variable, or the factor's levels
        seen in X's column names.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("angle ~ recipe * temp + (1|recipe:replicate)", mf.load_dataset("cake"))
    >>> terms, intercept, kinds = fixed_term_columns(fit)
    >>> [(t.label, t.columns) for t in terms], kinds
    ([('recipe', [1, 2]), ('temp', [3]), ('recipe:temp', [4, 5])], {'recipe': ['B', 'C'], 'temp': None})
    """
    design = fit.model.design
    return map_term_columns(parse_formula(design.formula).fixed_terms, list(fit.xnames), design.formula)


def map_term_columns(mterms, names: list[str], formula: str = "") -> tuple[list[FixedTerm], bool, dict]:
    """Assign model-matrix columns to the terms of ``mterms`` by their names.

    R lays the columns out term by term, so they are read in order; a column
    goes to the first remaining term whose name pattern fits it best (the
    fewest characters left for level suffixes), so that a numeric ``x2`` is
    not taken for level ``2`` of a factor ``x``.

    Returns the same triple as ``fixed_term_columns``.
    """
    variables = [tuple(deparse(mterms.variables[i]) for i in term_variables(t)) for t in mterms.terms]
    pos = 1 if mterms.intercept and names[:1] == ["(Intercept)"] else 0
    columns: list[list[int]] = [[] for _ in variables]
    kinds: dict[str, list[str] | None] = {}
    current = 0
    while pos < len(names):
        best = _best_term(names[pos], variables, current)
        if best is None:
            raise ModelSpecError(f"cannot map the model-matrix column {names[pos]!r} to a term of "
                                 f"{formula!r}")
        current = best
        for var, suffix in zip(variables[best], _suffixes(names[pos], variables[best])):
            _record_kind(kinds, var, suffix)
        columns[best].append(pos)
        pos += 1
    for vs in variables:  # variables of terms left with no column (all dropped)
        for v in vs:
            kinds.setdefault(v, None)
    terms = [FixedTerm(":".join(vs), vs, len(vs), cols) for vs, cols in zip(variables, columns)]
    return terms, bool(mterms.intercept), kinds


def _best_term(column: str, variables: list[tuple[str, ...]], current: int) -> int | None:
    """The term (from ``current`` on) whose name pattern leaves the shortest suffixes."""
    best, best_len = None, None
    for j in range(current, len(variables)):
        suffixes = _suffixes(column, variables[j])
        if suffixes is not None:
            length = sum(map(len, suffixes))
            if best_len is None or length < best_len:
                best, best_len = j, length
    return best


def _suffixes(column: str, variables: tuple[str, ...]) -> list[str] | None:
    """The level suffix of each variable in an X column name, or None if it is not the term's."""
    pattern = ":".join(re.escape(v) + "(.*?)" for v in variables)
    match = re.fullmatch(pattern, column)
    return None if match is None else list(match.groups())


def _record_kind(kinds: dict, var: str, suffix: str) -> None:
    if suffix == "":
        kinds.setdefault(var, None)
        return
    levels = kinds.get(var) or []
    if suffix not in levels:
        levels.append(suffix)
    kinds[var] = levels


# -- Type III contrasts (lmerTest's extract_contrasts_type3) ----------------


def _cell_values(names: list[str], owners: list[tuple[str, ...]], grid: dict[str, np.ndarray]) -> np.ndarray:
    """Columns named like R's model matrix, evaluated on the synthetic grid."""
    n = len(next(iter(grid.values())))
    out = np.ones((n, len(names)))
    for j, (name, variables) in enumerate(zip(names, owners)):
        if name == "(Intercept)":
            continue
        for var, suffix in zip(variables, _suffixes(name, variables)):
            out[:, j] *= grid[var] if suffix == "" else (grid[var] == suffix)
    return out


def full_levels(terms: list[FixedTerm], intercept: bool, kinds: dict) -> dict[str, list[str] | None]:
    """Each factor's levels, with a ``"<baseline>"`` placeholder where X's names hide one.

    R codes a factor in a term by contrasts when the term without it is the
    intercept or an earlier term (``TermCode`` in R's model.c), and by one
    indicator per level otherwise; under treatment contrasts the first level
    then never appears in X's names.  Without an intercept the first factor
    of the first term holding one gets indicators.
    """
    seen: list[set[str]] = []
    indicator: set[str] = set()
    first_done = intercept
    for t in terms:
        for v in t.variables:
            if kinds[v] is None:
                continue
            rest = set(t.variables) - {v}
            coded = not rest or any(rest == s for s in seen)
            if not first_done:
                coded, first_done = False, True
            if not coded:
                indicator.add(v)
        seen.append(set(t.variables))
    return {v: (lev if lev is None or v in indicator else lev + ["<baseline>"])
            for v, lev in kinds.items()}


def _synthetic_grid(kinds: dict[str, list[str] | None]) -> dict[str, np.ndarray]:
    """Every combination of factor levels, with varied values of each numeric variable.

    ``ginv(X) %*% rdX`` expresses each column of the over-parameterized design
    in X's columns; with no missing cells that expression depends only on the
    levels, so a complete grid (the data are not kept by the fit) gives the
    same map.  The baseline level of a treatment-coded factor never appears in
    X's names; it is added as ``"<baseline>"``.
    """
    factors = {v: lev + ["<baseline>"] for v, lev in kinds.items() if lev is not None}
    numerics = [v for v, lev in kinds.items() if lev is None]
    cells = list(itertools.product(*factors.values())) or [()]
    reps = len(numerics) + 2
    rng = np.random.default_rng(20240501)
    grid = {v: np.repeat(np.array([c[k] for c in cells], dtype=object), reps)
            for k, v in enumerate(factors)}
    for v in numerics:
        grid[v] = rng.normal(size=len(cells) * reps)
    return grid


def _rdx_names(term: FixedTerm, kinds: dict) -> list[str]:
    """Columns of ``model.matrix(~ 0 + term)``: every cell of the term's factors."""
    choices = [[""] if kinds[v] is None else kinds[v] for v in term.variables]
    combos = itertools.product(*reversed(choices))  # the first variable varies fastest
    return [":".join(v + s for v, s in zip(term.variables, reversed(c))) for c in combos]


def _containment(terms: list[FixedTerm], kinds: dict) -> dict[str, list[str]]:
    """lmerTest's ``containment``: terms whose variables strictly include a term's.

    A term is contained in another only when both have the same numeric
    variables (so ``temp`` is in ``recipe:temp`` but ``recipe`` is not).
    """
    def numerics(t: FixedTerm) -> set[str]:
        return {v for v in t.variables if kinds[v] is None}

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
    levels = full_levels(terms, intercept, kinds)
    rd_names, rd_owners = (["(Intercept)"], [()]) if intercept else ([], [])
    for t in terms:
        names = _rdx_names(t, levels)
        rd_names += names
        rd_owners += [t.variables] * len(names)
    grid = _synthetic_grid(levels)
    Xg = _cell_values(xnames, x_owners, grid)
    rdX = _cell_values(rd_names, rd_owners, grid)
    L = zapsmall_array((np.linalg.pinv(Xg) @ rdX).T)  # rows: rdX columns; columns: X columns
    contains = _containment(terms, kinds)
    by_label = {t.label: t for t in terms}
    for t in sorted(terms, key=lambda t: -t.order):  # stable: highest order first
        if contains[t.label] and t.columns:
            x_cols = [j for u in contains[t.label] for j in by_label[u].columns]
            L[:, t.columns] = zapsmall_array(_residualize(L, x_cols, t.columns))
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


def anova_type3(fit, ddf: str = "satterthwaite") -> pd.DataFrame:
    """lmerTest's ``anova(fit)``: Type III F tests of the fixed terms, Satterthwaite's df.

    Parameters
    ----------
    fit : MixedResults
    ddf : {"Satterthwaite", "Kenward-Roger"}
        Any case (see ``normalize_ddf``).  Kenward-Roger (REML fits only)
        tests with pbkrtest's adjusted covariance and scaled F, as
        ``anova(fit, ddf = "Kenward-Roger")``.

    Returns
    -------
    pandas.DataFrame
        Columns ``Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F)``, one row per
        term; ``attrs["heading"]`` holds lmerTest's title.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("score ~ Machine + (1|Worker/Machine)", mf.load_dataset("Machines"))
    >>> anova_type3(fit)[["NumDF", "DenDF"]].round(3)
             NumDF  DenDF
    Machine    2.0   10.0
    """
    method = normalize_ddf(ddf)
    if method == "lme4":
        raise ModelSpecError("ddf='lme4' has no denominator degrees of freedom (lmerTest then "
                             "prints lme4's sequential table); use 'Satterthwaite' or "
                             "'Kenward-Roger' for the Type III tests")
    test = contest_md_kr if method == "Kenward-Roger" else contest_md
    columns = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
    rows, index, untestable = [], [], []
    for label, L in type3_contrasts(fit).items():
        row = test(fit, L)
        if row is None:
            untestable.append(label)
        else:
            rows.append(row)
            index.append(label)
    # lmerTest appends terms without a testable contrast as NA rows, last
    rows += [dict.fromkeys(columns, np.nan) for _ in untestable]
    table = pd.DataFrame(rows, index=index + untestable, columns=columns, dtype=float)
    table.attrs["heading"] = f"Type III Analysis of Variance Table with {method}'s method"
    return table


# -- Kenward-Roger (pbkrtest 0.5.2, through lmerTest) ----------------------------

_KR_MAX_NOBS = 5000  # the method works with dense n x n matrices


@dataclass(frozen=True)
class KenwardRoger:
    """pbkrtest's ``vcovAdj``: the adjusted covariance of β̂ and what its tests reuse.

    Attributes
    ----------
    phi : ndarray
        The unadjusted covariance of β̂ (``vcov``).
    phi_adj : ndarray
        Kenward and Roger's adjusted covariance (small-sample bias and the
        variability of the variance parameters).
    P : list of ndarray
        ``−Xᵀ Σ⁻¹ G_r Σ⁻¹ X`` per variance parameter.
    W : ndarray
        Twice the inverse expected information of the variance parameters.
    """

    phi: np.ndarray
    phi_adj: np.ndarray
    P: list[np.ndarray]
    W: np.ndarray


_KR_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _kr_covariance_basis(fit) -> tuple[list[np.ndarray], np.ndarray]:
    """pbkrtest's ``get_SigmaG``: Σ = Σ_r γ_r G_r over the VarCorr entries and σ².

    For each term and each entry (i ≥ j) of its covariance, ``G = Z (I ⊗ E_ij) Zᵀ``
    with ``E_ij`` symmetric, so ``G[a, b] = [same level] (z_a,i z_b,j + z_a,j z_b,i)``.
    """
    design = fit.model.design
    G, gamma = [], []
    for term, (_, _, cov) in zip(design.terms, fit.vc_blocks):
        same = term.codes[:, None] == term.codes[None, :]
        for j in range(term.size):
            for i in range(j, term.size):
                zi, zj = term.z[:, i], term.z[:, j]
                block = np.outer(zi, zj)
                if i != j:
                    block = block + block.T
                G.append(np.where(same, block, 0.0))
                gamma.append(cov[i, j])
    G.append(np.eye(design.nobs))
    gamma.append(fit.sigma**2)
    return G, np.asarray(gamma)


def kenward_roger(fit) -> KenwardRoger:
    """pbkrtest's ``vcovAdj`` for a REML fit (computed once per fit, then cached).

    Raises
    ------
    ModelSpecError
        For ML fits (lmerTest refuses them), weighted fits (pbkrtest ignores
        prior weights) and more than 5000 observations (dense n × n algebra).
    """
    try:
        return _KR_CACHE[fit]
    except (KeyError, TypeError):
        pass
    design = fit.model.design
    if not fit.reml:
        raise ModelSpecError("Kenward-Roger's method is only available for REML model fits")
    if design.weights is not None:
        raise ModelSpecError("Kenward-Roger's method is not available for fits with prior weights")
    if design.nobs > _KR_MAX_NOBS:
        raise ModelSpecError(f"Kenward-Roger's method needs dense {design.nobs} x {design.nobs} "
                             "matrices; use ddf='satterthwaite'")
    G, gamma = _kr_covariance_basis(fit)
    X, phi = design.X, fit.vcov.to_numpy()
    Sigma = sum(g * Gr for g, Gr in zip(gamma, G))
    Sinv = np.linalg.inv(np.linalg.cholesky(Sigma))
    Sinv = Sinv.T @ Sinv
    T = Sinv @ X
    H = [Gr @ Sinv for Gr in G]
    O = [Hr @ X for Hr in H]
    k = len(G)
    P = [_symmetric(-(Or.T @ T)) for Or in O]
    Q = {(r, s): O[r].T @ Sinv @ O[s] for r in range(k) for s in range(r, k)}
    info = np.empty((k, k))
    for r in range(k):
        phi_P = phi @ P[r]
        for s in range(r, k):
            ktrace = np.sum(H[r].T * H[s])
            info[r, s] = info[s, r] = (ktrace - 2.0 * np.sum(phi * Q[r, s])
                                       + np.sum(phi_P * (P[s] @ phi)))
    condition = np.min(np.abs(np.linalg.eigvalsh(info)))
    W = _symmetric(2.0 * (np.linalg.inv(info) if condition > 1e-10 else np.linalg.pinv(info)))
    U = np.zeros_like(phi)
    for r in range(k - 1):
        for s in range(r + 1, k):
            U += W[r, s] * (Q[r, s] - P[r] @ phi @ P[s])
    U = U + U.T
    for r in range(k):
        U += W[r, r] * (Q[r, r] - P[r] @ phi @ P[r])
    result = KenwardRoger(phi, phi + 2.0 * phi @ U @ phi, P, W)
    try:
        _KR_CACHE[fit] = result
    except TypeError:
        pass
    return result


def _symmetric(A: np.ndarray) -> np.ndarray:
    """Matrix's ``forceSymmetric``: the upper triangle mirrored."""
    return np.triu(A) + np.triu(A, 1).T


def _kr_a1_a2(kr: KenwardRoger, L: np.ndarray) -> tuple[float, float]:
    """The A₁, A₂ sums of Kenward and Roger (pbkrtest's ``Lb_ddf`` / ``.KR_adjust``)."""
    theta = L.T @ np.linalg.solve(L @ kr.phi @ L.T, L)
    theta_phi = theta @ kr.phi
    u = [theta_phi @ Pr @ kr.phi for Pr in kr.P]
    A1 = A2 = 0.0
    for r in range(len(u)):
        for s in range(r, len(u)):
            e = 1.0 if r == s else 2.0
            A1 += e * kr.W[r, s] * np.trace(u[r]) * np.trace(u[s])
            A2 += e * kr.W[r, s] * np.sum(u[r] * u[s].T)
    return A1, A2


def _kr_ddf(A1: float, A2: float, q: int) -> tuple[float, float]:
    """Kenward and Roger's denominator df and F scaling from A₁, A₂."""
    B = (A1 + 6.0 * A2) / (2.0 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    denom = 3.0 * q + 2.0 * (1.0 - g)
    c1, c2, c3 = g / denom, (q - g) / denom, (q + 2 - g) / denom
    V0 = 1.0 + c1 * B
    V0 = 0.0 if abs(V0) < 1e-10 else V0
    V1, V2 = 1.0 - c2 * B, 1.0 - c3 * B
    ratio = 1.0 if abs(1.0 - A2 / q) < 1e-14 and abs(V1) < 1e-14 else (1.0 - A2 / q) / V1
    rho = ratio**2 * V0 / (q * V2)
    df2 = 4.0 + (q + 2) / (q * rho - 1.0)
    scaling = 1.0 if abs(df2 - 2.0) < 0.01 else df2 * (1.0 - A2 / q) / (df2 - 2.0)
    return df2, scaling


def contest1d_kr(fit, L: np.ndarray) -> dict[str, float]:
    """lmerTest's ``contest1D`` with ``ddf = "Kenward-Roger"`` (pbkrtest's ``Lb_ddf``)."""
    kr = kenward_roger(fit)
    L = np.asarray(L, float).ravel()
    estimate = float(L @ np.asarray(fit.fixef, float))
    var_con = _qform(L, kr.phi_adj)
    ddf, _ = _kr_ddf(*_kr_a1_a2(kr, L[None, :]), 1)
    t = estimate / np.sqrt(var_con)
    return {"Estimate": estimate, "Std. Error": float(np.sqrt(var_con)), "df": float(ddf),
            "t value": float(t), "Pr(>|t|)": float(2.0 * stats.t.sf(abs(t), ddf))}


def contest_md_kr(fit, L: np.ndarray) -> dict[str, float] | None:
    """lmerTest's ``contestMD`` with ``ddf = "Kenward-Roger"`` (pbkrtest's ``KRmodcomp``)."""
    L = np.atleast_2d(np.asarray(L, float))
    if L.shape[0] == 0:
        return None
    kr = kenward_roger(fit)
    q = int(np.linalg.matrix_rank(L))
    ddf, scaling = _kr_ddf(*_kr_a1_a2(kr, L), q)
    Lb = L @ np.asarray(fit.fixef, float)
    wald = float(Lb @ np.linalg.solve(L @ kr.phi_adj @ L.T, Lb))
    row = _f_row(wald / q, q, ddf, fit.sigma)
    row["F value"] = wald / q * scaling
    row["Pr(>F)"] = float(stats.f.sf(row["F value"], q, ddf))
    return row
