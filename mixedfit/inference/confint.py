"""Confidence intervals for a fitted model: lme4's ``confint(fit, oldNames = FALSE)``.

One row per parameter, named as lme4 names them (``mixedfit.inference.parameters``),
the intervals from ``.profile`` (likelihood profile, the default), ``.wald``
(β̂ ± z·SE) or ``.bootstrap`` (parametric bootstrap).
"""

from __future__ import annotations

import pandas as pd

from ..errors import MixedFitError
from .bootstrap import bootstrap
from .parameters import parameter_names, select_parm, varpar_names
from .profile import profile, profile_confint
from .wald import wald_confint

__all__ = ["confint"]

_METHODS = ("profile", "wald", "boot")


def confint(fit, method: str = "profile", level: float = 0.95, parm=None, **kw) -> pd.DataFrame:
    """Confidence intervals for every parameter, as lme4's ``confint(fit, oldNames = FALSE)``.

    Parameters
    ----------
    fit : LinearFit
        A fitted model.
    method : {"profile", "wald", "boot"}
        ``"profile"`` (lme4's default): invert the likelihood-ratio statistic
        ζ, see ``mixedfit.inference.profile.profile``.  ``"wald"``:
        β̂ ± z·SE for fixed effects, NaN for variance parameters (as lme4).
        ``"boot"``: percentile intervals (``boot_type``) of a parametric
        bootstrap (``nsim`` replicates, ``seed``).
    level : float
        Confidence level; labels follow it as R writes them (``"5 %"``, ``"95 %"``).
    parm : str, int or list, optional
        Rows to return: names, 0-based positions, ``"theta_"`` (variance
        parameters) or ``"beta_"`` (fixed effects).  Default: all.
    **kw
        Passed on: to ``profile`` (``alphamax``, ``maxpts``,
        ``delta``, ...) or to ``bootstrap`` (``nsim``
        (default 500, lme4's), ``seed``, ``progress``, ``boot_type``).

    Returns
    -------
    pandas.DataFrame
        One row per selected parameter, columns the two percent labels.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"))
    >>> confint(fit, method="wald").round(2)
                            2.5 %   97.5 %
    sd_(Intercept)|Batch      NaN      NaN
    sigma                     NaN      NaN
    (Intercept)           1489.51  1565.49
    >>> confint(fit, level=0.9).round(2)
                              5 %     95 %
    sd_(Intercept)|Batch    16.77    72.87
    sigma                   39.73    64.07
    (Intercept)           1494.78  1560.22
    """
    key = method.lower()
    if key not in _METHODS:
        raise MixedFitError(f"unknown confidence interval method {method!r}; use one of {', '.join(_METHODS)}")
    names = parameter_names(fit)
    nvp = len(varpar_names(fit))
    rows = select_parm(parm, names, nvp)
    if key == "wald":
        return wald_confint(fit, level=level).iloc[rows]
    if key == "profile":
        prof = profile(fit, which=rows, **kw)
        return profile_confint(prof, level=level)
    boot_type = kw.pop("boot_type", "perc")
    nsim = kw.pop("nsim", 500)
    result = bootstrap(fit, nsim, **kw)
    return result.confint(kind=boot_type, level=level).iloc[rows]
