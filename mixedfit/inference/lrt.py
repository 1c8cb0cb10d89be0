"""Likelihood-ratio tests between nested fits: lme4's ``anova(fit1, fit2, ...)``.

The fits are sorted by their number of parameters; each is compared with the
one before it by ``Chisq = 2 Δlog-likelihood`` (floored at 0) on ``Df = Δnpar``
degrees of freedom.  As in lme4, REML fits are refitted by maximum
likelihood first (``refit=True``), starting from their REML θ, because REML
likelihoods of models with different fixed effects are not comparable.

lme4 announces the refit with ``message()``.  Here it is a
``MixedFitWarning``: a library should not write to
stdout, and a warning can be silenced, turned into an error or asserted in a
test with the standard ``warnings`` machinery.

Examples
--------
>>> import warnings
>>> import mixedfit as mf
>>> data = mf.load_dataset("sleepstudy")
>>> fit1 = mf.mixed("Reaction ~ 1 + (Days|Subject)", data, reml=False, data_name="sleepstudy")
>>> fit2 = mf.mixed("Reaction ~ Days + (Days|Subject)", data, reml=False, data_name="sleepstudy")
>>> table = anova(fit1, fit2)
>>> table["Chisq"].round(3).tolist()
[nan, 23.537]
>>> print(table)  # doctest: +NORMALIZE_WHITESPACE
Data: sleepstudy
Models:
fit1: Reaction ~ 1 + (Days | Subject)
fit2: Reaction ~ Days + (Days | Subject)
     npar    AIC    BIC  logLik deviance  Chisq Df Pr(>Chisq)
fit1    5 1785.5 1801.4 -887.74   1775.5
fit2    6 1763.9 1783.1 -875.97   1751.9 23.537  1  1.226e-06 ***
---
Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..distributions import chi2_sf
from ..errors import MixedFitWarning, ModelSpecError, require_bool, warn
from ..fitted import LinearFit
from ..model import MixedModel
from ..rformat import (
    R_DIGITS,
    SIGNIF_LEGEND,
    format_num,
    format_pval,
    format_str,
    print_char_matrix,
    r_round,
    zapsmall,
)

__all__ = ["AnovaTable", "anova", "refit_ml"]

REFIT_MESSAGE = "refitting model(s) with ML (instead of REML)"
_COLUMNS = ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]


class AnovaTable(pd.DataFrame):
    """A table of model comparisons that prints as R's ``anova`` object.

    A ``pandas.DataFrame`` (so it can be indexed, saved and compared as
    one) whose ``heading`` lines (``Data:``, ``Models:`` and the formulas)
    are printed above the table, with R's number formatting and
    significance stars.
    """

    _metadata = ["heading"]

    @property
    def _constructor(self):
        return AnovaTable

    def __str__(self) -> str:
        heading = getattr(self, "heading", None) or []
        text = "".join(line + "\n" for line in heading)
        return (text + print_anova_table(self)).rstrip("\n")

    def __repr__(self) -> str:
        return self.__str__()


def refit_ml(fit):
    """Refit a REML fit by maximum likelihood, from its REML θ (lme4's ``refitML``).

    An ML fit is returned unchanged; the refit is the numbers (``LinearFit``).
    """
    if not fit.reml:
        return fit
    # The cross products do not depend on the criterion: reuse them (a fit from
    # Dask data has no rows in memory to rebuild them from).
    model = MixedModel(fit.model.design, reml=False, blocks=fit.model.cross.blocks)
    return model.fit(result=LinearFit, start=np.asarray(fit.theta, float), data_name=fit.data_name,
                     weights_name=fit.weights_name, offset_name=fit.offset_name)


def _check_same_data(fits: Sequence, names: Sequence[str]) -> None:
    """lme4 requires one data set: same number of observations and the same response."""
    nobs = [f.nobs for f in fits]
    if len(set(nobs)) > 1:
        listing = ", ".join(f"{n} ({k})" for n, k in zip(names, nobs))
        raise ModelSpecError(f"models were not all fitted to the same size of dataset: {listing}")
    first = fits[0].model.design
    for name, fit in zip(names[1:], fits[1:]):
        design = fit.model.design
        same_y = design.response == first.response and np.array_equal(design.y, first.y)
        if not same_y:
            raise ModelSpecError(
                f"all models must be fit to the same data: the response of {name} "
                f"({design.response}) differs from that of {names[0]} ({first.response})")
    data_names = {f.data_name for f in fits if f.data_name is not None}
    if len(data_names) > 1:
        raise ModelSpecError("all models must be fit to the same data object: "
                             + ", ".join(sorted(data_names)))


def anova(*fits, refit: bool = True, names: Sequence[str] | None = None) -> AnovaTable:
    """Compare nested fits by likelihood-ratio tests, as lme4's ``anova(fit1, fit2, ...)``.

    Parameters
    ----------
    *fits : MixedResults
        Two or more fits to the same data.
    refit : bool, default True
        Refit REML fits by maximum likelihood first (warning once with lme4's
        message).  With ``refit=False`` REML criteria are compared as they
        are, which is valid only for models with the same fixed effects.
    names : sequence of str, optional
        Row names, one per fit, in the order given (default ``fit1``, ``fit2``, ...).

    Returns
    -------
    AnovaTable
        Rows sorted by ``npar``; columns ``npar, AIC, BIC, logLik, deviance,
        Chisq, Df, Pr(>Chisq)`` (NaN in the first row's test columns).

    Raises
    ------
    ModelSpecError
        Fewer than two fits, an argument that is not a fit, a wrong number of
        names, or fits to different data
        (different numbers of observations or responses).

    Warns
    -----
    MixedFitWarning
        ``refitting model(s) with ML (instead of REML)`` when REML fits are refitted.

    Examples
    --------
    >>> import mixedfit as mf
    >>> data = mf.load_dataset("sleepstudy")
    >>> a = mf.mixed("Reaction ~ Days + (Days|Subject)", data)
    >>> b = mf.mixed("Reaction ~ Days + (Days||Subject)", data)
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     table = anova(a, b, names=["corr", "uncorr"])
    >>> str(caught[0].message)
    'refitting model(s) with ML (instead of REML)'
    >>> table.index.tolist(), table["Df"].tolist()
    (['uncorr', 'corr'], [nan, 1.0])
    """
    if len(fits) < 2:
        raise ModelSpecError("anova() compares two or more fits; pass them as anova(fit1, fit2)")
    for position, fit in enumerate(fits, start=1):
        if not isinstance(fit, LinearFit):
            raise ModelSpecError(f"anova() compares fits made by mixedfit.mixed(); argument "
                                 f"{position} is a {type(fit).__name__} ({fit!r:.40})")
    names = [f"fit{i + 1}" for i in range(len(fits))] if names is None else [str(n) for n in names]
    if len(names) != len(fits):
        raise ModelSpecError(f"{len(names)} names given for {len(fits)} models")
    if len(set(names)) != len(names):
        raise ModelSpecError(f"model names must be distinct: {names}")
    _check_same_data(fits, names)
    fits = list(fits)
    if require_bool(refit, "refit"):
        if any(f.reml for f in fits):
            warn(REFIT_MESSAGE, MixedFitWarning)
        fits = [refit_ml(f) for f in fits]
    elif len({f.reml for f in fits}) > 1:
        warn("some models fit with REML = TRUE, some not", MixedFitWarning)
    order = sorted(range(len(fits)), key=lambda i: fits[i].npar)  # stable, as R's order()
    return _table([fits[i] for i in order], [names[i] for i in order])


def _table(fits: list, names: list[str]) -> AnovaTable:
    llk = np.array([f.llf for f in fits])
    npar = np.array([f.npar for f in fits], dtype=float)
    chisq = np.r_[np.nan, 2.0 * np.maximum(0.0, np.diff(llk))]
    df = np.r_[np.nan, np.diff(npar)]
    with np.errstate(invalid="ignore"):
        pvalue = np.where(df == 0, np.nan, chi2_sf(chisq, df))
    table = AnovaTable({
        "npar": npar,
        "AIC": [f.aic for f in fits],
        "BIC": [f.bic for f in fits],
        "logLik": llk,
        "deviance": -2.0 * llk,
        "Chisq": chisq,
        "Df": df,
        "Pr(>Chisq)": pvalue,
    }, index=names, columns=_COLUMNS)
    data = fits[0].data_name
    table.heading = [f"Data: {data if data is not None else '<data>'}", "Models:"] + [
        f"{name}: {fit.formula}" for name, fit in zip(names, fits)]
    return table


# -- printing (R's print.anova -> printCoefmat) -------------------------------


def _na_list(values) -> list:
    """Values for rformat: R's NA (None) where NaN."""
    return [None if (v is None or (isinstance(v, float) and math.isnan(v))) else float(v)
            for v in values]


def print_anova_table(table: pd.DataFrame, digits: int = max(R_DIGITS - 2, 3)) -> str:
    """R's ``print.anova`` of a table whose last column is a p-value (without the heading).

    ``printCoefmat`` with ``cs.ind = NULL``: test-statistic columns (``Chisq``,
    ``F``, ``* value``) rounded to ``digits − 1`` decimals, ``Df`` columns as
    they are, the others zapped; NA printed as blank; stars when any p < 0.1.
    """
    cols = list(table.columns)
    nc, nr = len(cols), len(table)
    tst = [j for j, c in enumerate(cols) if c[1:7] == " value" or c in ("F", "Cp", "Chisq")]
    dfs = [j for j, c in enumerate(cols) if c.endswith("Df")]
    zap = [j for j in range(nc - 1) if j not in tst and j not in dfs]
    xm = [_na_list(table.iloc[:, j].tolist()) for j in range(nc)]
    for j in zap:
        xm[j] = zapsmall(xm[j], digits)
    dig_tst = max(1, min(5, digits - 1))
    cf = [[""] * nr for _ in range(nc)]
    for j in range(nc - 1):
        if j in tst:
            cf[j] = format_num([r_round(v, dig_tst) if v is not None else None for v in xm[j]], digits=digits)
        else:
            cf[j] = format_num(xm[j], digits=digits)
    for j in range(nc - 1):
        if j in tst:
            continue
        for i in range(nr):  # non-zero values that print as zero get fewer digits
            v = xm[j][i]
            if v is not None and (v == 0) != (_as_float(cf[j][i]) == 0):
                cf[j][i] = format_num([v], digits=max(1, digits - 1))[0]
    for j in range(nc - 1):
        cf[j] = ["" if v is None else s for v, s in zip(xm[j], cf[j])]
    pv = xm[-1]
    ok = [i for i in range(nr) if pv[i] is not None]
    cf[-1] = [""] * nr
    for i, s in zip(ok, format_pval([pv[i] for i in ok], digits=dig_tst)):
        cf[-1][i] = s
    stars = bool(ok) and any(pv[i] < 0.1 for i in ok)
    labels = list(cols)
    if stars:
        cf.append(format_str([_star(p) for p in pv]))
        labels.append("")
    rows = [[cf[j][i] for j in range(len(cf))] for i in range(nr)]
    out = print_char_matrix(rows, list(map(str, table.index)), labels, right=True)
    if stars:
        out += "---\nSignif. codes:  " + SIGNIF_LEGEND + "\n"
    return out


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _star(p) -> str:
    """``symnum`` with printCoefmat's cut points; NA prints blank."""
    if p is None:
        return ""
    for cut, sym in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, "."), (1.0, " ")):
        if p <= cut:
            return sym
    return ""
