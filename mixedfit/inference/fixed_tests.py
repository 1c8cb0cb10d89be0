"""lmerTest's tables of fixed-effect tests, by ``ddf`` method: the coefficient table and Type III ANOVA.

Each row is a test of a contrast of β̂ with Satterthwaite's degrees of
freedom (``.satterthwaite``, lmerTest's default) or Kenward–Roger's
(``.kenward_roger``); ``ddf="lme4"`` gives lme4's table without df.

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

import numpy as np
import pandas as pd

from ..errors import ModelSpecError
from .kenward_roger import contest1d_kr, contest_md_kr
from .satterthwaite import contest1d, contest_md, normalize_ddf
from .type3 import type3_contrasts

__all__ = ["coef_table", "anova_type3"]


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
