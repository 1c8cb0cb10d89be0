"""The reference distributions of tests and intervals: normal, t, χ² and F.

scipy.stats computes these probabilities and quantiles with the functions
of scipy.special used here, behind its layer of argument handling; but
importing scipy.stats takes 0.4–0.7 s, which a user's first p-value,
interval or profile paid in each new process (``coef_table()``,
``confint()``, a GLMM's summary).  The values here equal scipy.stats' to the
bit, with its rules at the edges, which scipy.special alone does not follow
(its χ² and F survival functions are NaN below zero, Student's quantile is
+∞ at 0): a probability beyond the support is 1 below and 0 above, a
quantile at 0 or 1 is the support's end, and invalid parameters (a df that
is not positive) or arguments give NaN.  ``tests/test_distributions.py``
compares them with scipy.stats.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np

__all__ = ["norm_sf", "norm_ppf", "t_sf", "t_ppf", "chi2_sf", "chi2_ppf", "f_sf", "special"]


def special() -> ModuleType:
    """scipy.special, imported at its first use.

    It was over a quarter of ``import mixedfit`` in a fresh process that had
    imported pandas (320 ms with it, 232 without, 2026-12-07), and a linear
    fit and its summary never call it.

    Examples
    --------
    >>> float(special().ndtr(0.0))
    0.5
    """
    import scipy.special

    return scipy.special


def _valid(params: tuple) -> np.ndarray:
    """Where every parameter (a degrees of freedom) is positive: scipy.stats' check of them."""
    valid = np.array(True)
    for p in params:
        valid = valid & (np.asarray(p, float) > 0)
    return valid


def _sf(function: Callable, x, lower: float, *params):
    """A survival function: ``function(*params, x)`` inside the support (``lower``, ∞), scipy.stats' rules elsewhere."""
    x = np.asarray(x, float)
    with np.errstate(invalid="ignore"):
        value = function(*params, x)
        bad = ~_valid(params) | np.isnan(x)
        return np.select([bad, x <= lower, x == np.inf], [np.nan, 1.0, 0.0], value)[()]


def _ppf(function: Callable, p, lower: float, *params):
    """A quantile function: ``function(*params, p)`` for 0 < p < 1, the support's ends at 0 and 1, else NaN."""
    p = np.asarray(p, float)
    with np.errstate(invalid="ignore"):
        value = function(*params, p)
        bad = ~_valid(params) | ~((p >= 0.0) & (p <= 1.0))
        return np.select([bad, p == 0.0, p == 1.0], [np.nan, lower, np.inf], value)[()]


def norm_sf(x):
    """The standard normal's upper tail probability, P(Z > x), as ``scipy.stats.norm.sf``.

    Examples
    --------
    >>> round(float(2.0 * norm_sf(1.96)), 10)  # R: 2 * pnorm(-1.96)
    0.0499957903
    """
    return _sf(lambda x: special().ndtr(-x), x, -np.inf)


def norm_ppf(p):
    """The standard normal's quantiles, as ``scipy.stats.norm.ppf``.

    Examples
    --------
    >>> [round(float(q), 10) for q in norm_ppf([0.025, 0.5, 1.0])]  # R: qnorm(c(0.025, 0.5, 1))
    [-1.9599639845, 0.0, inf]
    """
    return _ppf(special().ndtri, p, -np.inf)


def t_sf(x, df):
    """Student's t upper tail probability, as ``scipy.stats.t.sf``.

    Examples
    --------
    >>> round(float(2.0 * t_sf(2.2, 17.0)), 10)  # R: 2 * pt(-2.2, 17)
    0.0419246564
    """
    return _sf(lambda df, x: special().stdtr(df, -x), x, -np.inf, df)


def t_ppf(p, df):
    """Student's t quantiles, as ``scipy.stats.t.ppf``.

    Examples
    --------
    >>> round(float(t_ppf(0.975, 17.0)), 10)  # R: qt(0.975, 17)
    2.1098155778
    """
    return _ppf(special().stdtrit, p, -np.inf, df)


def chi2_sf(x, df):
    """The χ² upper tail probability, as ``scipy.stats.chi2.sf``.

    Examples
    --------
    >>> round(float(chi2_sf(3.84, 1.0)), 10), float(chi2_sf(-1.0, 2.0))  # R: pchisq(c(3.84, -1), c(1, 2), lower = FALSE)
    (0.0500435212, 1.0)
    """
    return _sf(special().chdtrc, x, 0.0, df)


def chi2_ppf(p, df):
    """The χ² quantiles, as ``scipy.stats.chi2.ppf``.

    Examples
    --------
    >>> round(float(chi2_ppf(0.95, 1.0)), 10)  # R: qchisq(0.95, 1)
    3.8414588207
    """
    return _ppf(lambda df, p: 2.0 * special().gammaincinv(df / 2.0, p), p, 0.0, df)


def f_sf(x, dfn, dfd):
    """The F distribution's upper tail probability, as ``scipy.stats.f.sf``.

    Examples
    --------
    >>> round(float(f_sf(4.45, 1.0, 17.0)), 10)  # R: pf(4.45, 1, 17, lower = FALSE)
    0.0500303771
    """
    return _sf(special().fdtrc, x, 0.0, dfn, dfd)
