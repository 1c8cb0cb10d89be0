"""Likelihood-ratio tests of the random-effects terms: lmerTest's ``ranova(fit)``.

Each random-effects term of the fit (as lme4's ``findbars`` expands them:
``(x || g)`` is two terms, ``(1 | a/b)`` two) is reduced in turn and the
model refitted, with the same criterion (REML or ML) and data:

* a term with covariates on its left, ``(Days | Subject)``, loses each
  term of its left side that marginality lets go (R's ``drop.scope``), and
  a term left with none becomes ``(1 | Subject)`` -- row
  ``"Days in (Days | Subject)"``; lmerTest does so for ``(0 + Days | Subject)``
  too;
* a term ``(1 | g)`` is removed -- row ``"(1 | g)"``; with no random
  term left, the model is a linear model fitted by least squares, whose
  log-likelihood is R's ``logLik.lm`` (restricted, for a REML fit).

The table has lmerTest's columns ``npar, logLik, AIC, LRT, Df, Pr(>Chisq)``:
``LRT = 2 (logLik(fit) − logLik(reduced))`` on ``Df`` = the difference in
parameters.

Examples
--------
>>> import mixedfit as mf
>>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
>>> print(ranova(fit))  # lmerTest prints the same
ANOVA-like table for random-effects: Single term deletions
<BLANKLINE>
Model:
Reaction ~ Days + (Days | Subject)
                         npar  logLik    AIC    LRT Df Pr(>Chisq)
<none>                      6 -871.81 1755.6
Days in (Days | Subject)    4 -893.23 1794.5 42.837  2   4.99e-10 ***
---
Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1
"""

from __future__ import annotations

import math

import numpy as np

from ..distributions import chi2_sf
from ..errors import ModelSpecError
from ..formula import parse_formula
from ..formula.bars import Bar
from ..formula.deparse import deparse
from ..formula.rterms import model_terms
from ..formula.update import update_formula
from ..update import update
from .lrt import AnovaTable

__all__ = ["ranova", "lm_loglik", "likelihood_ratio_table"]

_COLUMNS = ["npar", "logLik", "AIC", "LRT", "Df", "Pr(>Chisq)"]


def _reductions(bar: Bar) -> dict[str, str]:
    """lmerTest's ``get_newforms``: row name -> update of the formula, for one term."""
    label = bar.label
    terms = model_terms(None, bar.lhs)
    labels = terms.labels()
    scope = terms.drop_scope()
    if not labels or not scope:
        return {f"({label})": f"~ . - ({label})"}
    out = {}
    for term in scope:
        if set(labels) == {term}:
            lhs = "1"
        else:
            lhs = update_formula(f"~ {deparse(bar.lhs)}", f"~ . - {term}").replace("~", "", 1)
        out[f"{term} in ({label})"] = f"~ . - ({label}) + ({lhs} | {bar.group_label})"
    return out


def lm_loglik(fit, reml: bool) -> tuple[float, int]:
    """Log-likelihood and its df of the fit's fixed part as a linear model (R's ``logLik.lm``).

    Least squares of y − offset on X with the prior weights; with ``reml``
    the restricted log-likelihood, as ``logLik(lm_fit, REML = TRUE)``.
    """
    design = fit.model.design
    w = np.ones(design.nobs) if design.weights is None else np.asarray(design.weights, float)
    y = design.y if design.offset is None else design.y - design.offset
    sw = np.sqrt(w)
    q, r = np.linalg.qr(design.X * sw[:, None])
    res = sw * y - q @ (q.T @ (sw * y))
    n, p = design.X.shape
    N = n - p if reml else n
    value = 0.5 * (np.sum(np.log(w)) - N * (math.log(2 * math.pi) + 1 - math.log(N)
                                            + math.log(np.sum(res ** 2))))
    if reml:
        value -= np.sum(np.log(np.abs(np.diag(r))))
    return float(value), p + 1


def likelihood_ratio_table(rows: list[str], loglik: list[float], npar: list[int]) -> AnovaTable:
    """lmerTest's ``mk_LRtab``: each row tested against the first."""
    ll, k = np.asarray(loglik, float), np.asarray(npar, float)
    lrt = np.r_[np.nan, 2.0 * (ll[0] - ll[1:])]
    df = np.r_[np.nan, k[0] - k[1:]]
    with np.errstate(invalid="ignore"):
        p = np.where(df > 0, chi2_sf(lrt, np.where(df > 0, df, 1.0)), np.nan)
    return AnovaTable({"npar": k.astype(int), "logLik": ll, "AIC": -2.0 * ll + 2.0 * k,
                       "LRT": lrt, "Df": df, "Pr(>Chisq)": p}, index=rows, columns=_COLUMNS)


def ranova(fit) -> AnovaTable:
    """lmerTest's ``ranova(fit)``: a likelihood-ratio test for each random-effects term.

    Parameters
    ----------
    fit : MixedResults
        A fit made by ``mixedfit.mixed`` (the reduced models are refitted
        from its data).

    Returns
    -------
    AnovaTable
        Rows ``"<none>"`` (the fit) and one per reduction, named as lmerTest
        names them; columns ``npar, logLik, AIC, LRT, Df, Pr(>Chisq)``.  It
        prints as lmerTest's table; ``attrs["formulae"]`` holds the reduced
        models' formulas.

    Raises
    ------
    ModelSpecError
        When a reduced model uses a different number of rows (missing
        values in a variable only the fit uses), as lmerTest refuses it.
    """
    formula = fit.formula  # formula(model), as lmerTest reads it
    parsed = parse_formula(formula)
    bars = " + ".join(f"({bar.label})" for bar in parsed.bars)
    full = update_formula(formula, f". ~ {deparse(parsed.fixed)} + {bars}")
    edits: dict[str, str] = {}
    for bar in parsed.bars:
        edits.update(_reductions(bar))
    rows, loglik, npar, formulae = ["<none>"], [fit.llf], [fit.npar], {}
    for name, edit in edits.items():
        reduced = update_formula(full, edit)
        formulae[name] = reduced
        if parse_formula(reduced).bars:
            refit = update(fit, reduced)
            if refit.nobs != fit.nobs:
                raise ModelSpecError(f"number of rows in use has changed ({fit.nobs} -> "
                                     f"{refit.nobs}) for {reduced}: remove missing values?")
            ll, k = refit.llf, refit.npar
        else:
            ll, k = lm_loglik(fit, fit.reml)
        rows.append(name)
        loglik.append(ll)
        npar.append(k)
    table = likelihood_ratio_table(rows, loglik, npar)
    table.heading = ["ANOVA-like table for random-effects: Single term deletions", "",
                     "Model:", full]
    table.attrs["formulae"] = formulae
    return table
