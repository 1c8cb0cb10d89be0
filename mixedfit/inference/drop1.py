"""Single-term deletions of the fixed part: ``drop1(fit)`` of lmerTest and of lme4.

Only the terms that marginality lets go are tested (R's ``drop.scope``: in
``a * b`` only ``a:b``).

* ``test="F"`` (lmerTest's ``drop1`` for an lmerTest fit, the default): an F
  test of each term's contrasts with Satterthwaite's (or Kenward-Roger's)
  denominator df, columns ``Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F)``.
  For a term no other term contains these are the Type III contrasts of
  ``anova_type3``, so nothing is refitted.
  When the fixed-effect matrix lost columns to rank deficiency, lmerTest
  tests instead what the term adds to the model without it (``get_Ldiffmat2``:
  the part of X that the reduced model matrix does not span); a term that
  adds nothing (``x`` beside ``2 * x``) gets a row of NA.
* ``test="Chisq"`` (lme4's ``drop1(fit, test = "Chisq")``): each term is
  removed and the model refitted; every model is refitted by maximum
  likelihood (lme4's ``extractAIC`` calls ``refitML``) and compared by
  ``AIC`` and a likelihood-ratio test, columns ``npar, AIC, LRT, Pr(Chi)``.

Examples
--------
>>> import mixedfit as mf
>>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
>>> print(drop1(fit))  # lmerTest prints the same
Single term deletions using Satterthwaite's method:
<BLANKLINE>
Model:
Reaction ~ Days + (Days | Subject)
     Sum Sq Mean Sq NumDF DenDF F value    Pr(>F)
Days  30031   30031     1    17  45.853 3.264e-06 ***
---
Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..distributions import chi2_sf
from ..errors import MixedFitError
from ..formula import parse_formula
from ..formula.update import update_formula
from ..rformat import zapsmall_array
from ..terms import as_dataframe, build_design
from ..update import call_of, update
from .lrt import AnovaTable, refit_ml
from .fixed_tests import anova_type3
from .kenward_roger import contest_md_kr
from .satterthwaite import contest_md, normalize_ddf

__all__ = ["drop1", "drop_scope"]


def drop_scope(fit) -> list[str]:
    """The fixed terms no other fixed term contains (R's ``drop.scope(terms(fit))``).

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("angle ~ recipe * temp + (1|recipe:replicate)", mf.load_dataset("cake"))
    >>> drop_scope(fit)
    ['recipe:temp']
    """
    return parse_formula(fit.formula).fixed_terms.drop_scope()


def drop1(fit, test: str = "F", ddf: str = "satterthwaite") -> AnovaTable:
    """Test dropping each marginal fixed term: lmerTest's (``test="F"``) or lme4's (``"Chisq"``) ``drop1``.

    Parameters
    ----------
    fit : MixedResults
    test : {"F", "Chisq"}
        F tests without refitting (lmerTest), or likelihood-ratio tests of
        models refitted without each term by maximum likelihood (lme4; needs
        a fit made by ``mixedfit.mixed``).
    ddf : {"Satterthwaite", "Kenward-Roger"}
        Denominator df of the F tests, any case (see
        ``normalize_ddf``).

    Returns
    -------
    AnovaTable
        It prints as R's table, heading included.
    """
    scope = drop_scope(fit)
    if test == "F":
        method = normalize_ddf(ddf)
        if method == "lme4":
            raise MixedFitError("ddf='lme4' has no denominator df; lme4's own drop1 test is "
                                "test='Chisq'")
        if fit.model.design.dropped_xnames:
            table = _drop1_rank_deficient(fit, scope, method)
        else:
            table = AnovaTable(anova_type3(fit, ddf=method).loc[scope])
        table.heading = [f"Single term deletions using {method}'s method:", "", "Model:", fit.formula]
        return table
    if test == "Chisq":
        return _drop1_chisq(fit, scope)
    raise MixedFitError(f"unknown drop1 test {test!r}; use 'F' (lmerTest) or 'Chisq' (lme4)")


def _drop1_chisq(fit, scope: list[str]) -> AnovaTable:
    fits = [fit] + [update(fit, f"~ . - {term}") for term in scope]
    ml = [refit_ml(f) for f in fits]
    npar = np.array([f.npar for f in ml], float)
    aic = np.array([f.aic for f in ml])
    deviance = aic - 2.0 * npar
    dfs = np.r_[np.nan, npar[0] - npar[1:]]
    lrt = np.r_[np.nan, deviance[1:] - deviance[0]]
    with np.errstate(invalid="ignore"):
        p = np.r_[np.nan, chi2_sf(lrt[1:], dfs[1:])]
    table = AnovaTable({"npar": dfs, "AIC": aic, "LRT": lrt, "Pr(Chi)": p},
                       index=["<none>"] + scope)
    table.heading = ["Single term deletions", "", "Model:", fit.formula]
    return table


def difference_contrasts(X0: np.ndarray, X: np.ndarray) -> np.ndarray:
    """lmerTest's ``get_Ldiffmat2``: contrasts of β for what X adds to the span of X0.

    Rows: an orthonormal basis of ``Xᵀ R``, R the residuals of X's columns on
    X0 (columns that vanish left out); no rows when X0 spans X.

    Examples
    --------
    >>> X = np.column_stack([np.ones(4), [0.0, 1, 2, 3]])
    >>> difference_contrasts(X[:, :1], X).shape, difference_contrasts(X, X).shape
    ((1, 2), (0, 2))
    """
    coef, *_ = np.linalg.lstsq(X0, X, rcond=None)
    R = X - X0 @ coef
    R = R[:, np.abs(R).sum(axis=0) > 1e-8]
    if R.shape[1] == 0:
        return np.zeros((0, X.shape[1]))
    Q, _ = np.linalg.qr(X.T @ R)
    return zapsmall_array(Q).T


def _drop1_rank_deficient(fit, scope: list[str], method: str) -> AnovaTable:
    """F tests of each term's added span, for a fit whose X lost columns."""
    call = call_of(fit)
    design = fit.model.design
    data = as_dataframe(call["data"]).loc[design.rows]
    test = contest_md_kr if method == "Kenward-Roger" else contest_md
    columns = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
    rows = []
    for term in scope:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the reduced matrix may be rank deficient too
            X0 = build_design(update_formula(call["formula"], f"~ . - {term}"), data).X
        row = test(fit, difference_contrasts(X0, design.X))
        rows.append(dict.fromkeys(columns, np.nan) if row is None else row)
    return AnovaTable(pd.DataFrame(rows, index=scope, columns=columns, dtype=float))
