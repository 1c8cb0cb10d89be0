"""Satterthwaite's degrees of freedom for t and F tests of fixed effects (lmerTest).

A port of lmerTest 3.1-3 (``as_lmerModLT``, ``contest1D``, ``contestMD``,
``get_Fstat_ddf``).  The variance parameters are ``varpar = (θ, σ)``; lmerTest

1. takes the Hessian of its ``devfun_vp`` (the ML deviance or REML criterion
   as a function of θ *and* σ, not profiled over σ) at the optimum, by
   ``numDeriv::hessian`` (Richardson extrapolation, relative step 0.1), and
   sets ``vcov_varpar = 2 H⁻¹`` (a pseudo-inverse over eigenvalues > 1e-8);
2. takes the Jacobian of ``vcov(β) = σ² (R_X R_Xᵀ)⁻¹`` with respect to
   varpar by ``numDeriv::jacobian`` (Richardson, relative step 1e-4);
3. for a contrast ``l``: ``df = 2 (lᵀVl)² / (gᵀ vcov_varpar g)`` with
   ``g_i = lᵀ (∂V/∂varpar_i) l``.

The finite differences below reproduce numDeriv's steps and extrapolation
exactly, so the degrees of freedom agree with lmerTest to many digits.  Also
here: the ``ddf`` names (``normalize_ddf``) and the map from fixed terms to X's
columns that the Type III contrasts (``.type3``) and ``emmeans`` read.
Kenward–Roger is ``.kenward_roger``; the tables that pick one by ``ddf`` are
``.fixed_tests``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from ..distributions import f_sf, t_sf
from ..errors import ConvergenceWarning, ModelSpecError, warn
from ..formula.deparse import deparse
from ..formula.rterms import term_variables
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
    "f_test_row",
    "fixed_term_columns",
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
            "t value": float(t), "Pr(>|t|)": float(2.0 * t_sf(abs(t), ddf))}


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


def f_test_row(F: float, ndf: float, ddf: float, sigma: float) -> dict[str, float]:
    """A row of lmerTest's ANOVA table for the F statistic *F* on (ndf, ddf) degrees of freedom."""
    ms = F * sigma**2
    return {"Sum Sq": ms * ndf, "Mean Sq": ms, "NumDF": ndf, "DenDF": ddf,
            "F value": F, "Pr(>F)": float(f_sf(F, ndf, ddf))}


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
        return f_test_row(res["t value"] ** 2, 1, res["df"], fit.sigma)
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
        return f_test_row(res["t value"] ** 2, q, res["df"], fit.sigma)
    F = float(np.sum((PtL @ beta) ** 2 / values[:q]) / q)
    nu = np.array([
        2.0 * values[m] ** 2 / _qform(np.array([_qform(PtL[m], J) for J in info.jac]), info.vcov_varpar)
        for m in range(q)
    ])
    return f_test_row(F, q, _fstat_ddf(nu), fit.sigma)


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

    The terms are the Design's (``design.parsed``), their columns R's
    ``assign`` (``design.assign``), and the kinds what each variable adds to
    its name in their columns' names (``design.suffixes``: nothing for a
    number, a level or contrast for a factor).

    Returns
    -------
    terms : list of FixedTerm
    intercept : bool
    kinds : dict
        Variable → ``None`` for a numeric variable (a number, or a numeric
        matrix such as ``poly(x, 2)``, whose columns are numbers too), or the
        factor's levels seen in X's column names.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("angle ~ recipe * temp + (1|recipe:replicate)", mf.load_dataset("cake"))
    >>> terms, intercept, kinds = fixed_term_columns(fit)
    >>> [(t.label, t.columns) for t in terms], kinds
    ([('recipe', [1, 2]), ('temp', [3]), ('recipe:temp', [4, 5])], {'recipe': ['B', 'C'], 'temp': None})
    """
    design = fit.model.design
    mterms = design.parsed.fixed_terms
    xnames = list(fit.xnames)
    terms: list[FixedTerm] = []
    kinds: dict[str, list[str] | None] = {}
    for j, term in enumerate(mterms.terms):
        variables = tuple(deparse(mterms.variables[i]) for i in term_variables(term))
        columns = [k for k, name in enumerate(xnames) if design.assign[name] == j + 1]
        for k in columns:
            for var, suffix in zip(variables, design.suffixes[xnames[k]]):
                _record_kind(kinds, var, "" if _matrix_column(design, var, suffix) else suffix)
        for var in variables:  # a term whose columns were all dropped
            kinds.setdefault(var, None)
        terms.append(FixedTerm(":".join(variables), variables, len(variables), columns))
    return terms, bool(mterms.intercept), kinds


def _matrix_column(design, var: str, suffix: str) -> bool:
    """Whether *suffix* numbers a column of a numeric matrix (``poly(x, 2)2``), not a level.

    A factor's levels may be digits too (``factor(x)2``); a factor is in ``xlevels``.
    """
    return suffix.isdigit() and var not in design.xlevels


def _record_kind(kinds: dict, var: str, suffix: str) -> None:
    if suffix == "":
        kinds.setdefault(var, None)
        return
    levels = kinds.get(var) or []
    if suffix not in levels:
        levels.append(suffix)
    kinds[var] = levels
