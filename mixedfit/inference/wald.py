"""Wald intervals, and the information-matrix covariance of the variance parameters.

``wald_confint`` is lme4's ``confint(fit, method = "Wald")``: β̂ ± z·SE
with the fit's own (REML or ML) standard errors, and NaN rows for the
variance parameters, where lme4 gives no Wald interval.

``vcov_varpar`` is the asymptotic covariance matrix of the variance
parameters: twice the inverse Hessian of the objective the fit minimized --
the deviance −2 log L (ML) or the REML criterion −2 log L_R (REML) -- written
as a function of (θ, σ), (sd, cor, σ) or (var, cov, σ²) with β profiled out.
Profiling β out leaves the inverse Hessian's variance-parameter block
unchanged, so this is the observed-information covariance of those
parameters.  On the θ scale it is lmerTest's ``vcov_varpar`` (what its
Satterthwaite degrees of freedom use): the Hessian is numDeriv's Richardson
extrapolation (four central differences, relative step 0.1 halved each time)
and the inverse keeps only eigenvalues above 1e-8, so a fit on the boundary
gives a pseudo-inverse instead of an error.  ``varpar_wald_confint``
turns it into estimate ± z·SE intervals on the chosen scale -- symmetric,
and poor for a standard deviation near 0; prefer the profile intervals.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd

from ..distributions import norm_ppf
from ..errors import MixedFitError
from .numderiv import richardson_hessian
from .parameters import level_labels, parameter_names, varpar_names

__all__ = ["wald_confint", "vcov_varpar", "varpar_wald_confint"]

_SCALES = ("theta", "sd", "var")


def wald_confint(fit, level: float = 0.95) -> pd.DataFrame:
    """Wald intervals β̂ ± z·SE (lme4's ``confint(fit, method = "Wald")``).

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    >>> wald_confint(fit).round(3).tail(2)
                   2.5 %   97.5 %
    (Intercept)  238.029  264.781
    Days           7.438   13.497
    """
    probs, labels = level_labels(level)
    z = norm_ppf(probs)
    nvp = len(varpar_names(fit))
    fixed = fit.fixef.to_numpy()[:, None] + np.outer(fit.bse.to_numpy(), z)
    values = np.vstack([np.full((nvp, 2), np.nan), fixed])
    return pd.DataFrame(values, index=parameter_names(fit), columns=labels)


# -- the deviance in the variance parameters --------------------------------------
def _objective_vp(fit) -> Callable[[np.ndarray, float], float]:
    """The fit's objective at (θ, σ), β profiled out: −2 log L or −2 log L_R (NaN off the domain)."""

    def f(theta: np.ndarray, sigma: float) -> float:
        value = fit.model.objective_at_sigma(theta, sigma)
        return value if math.isfinite(value) else math.nan

    return f


def _on_scale(fit, scale: str) -> tuple[Callable[[np.ndarray], float], np.ndarray, list[str]]:
    """The objective as a function of one vector on ``scale``, its value at the fit, and names."""
    model = fit.model
    f = _objective_vp(fit)
    sdcor = model.layout.to_sdcor(fit.theta.to_numpy(), fit.sigma)
    if scale == "theta":
        x0 = np.append(fit.theta.to_numpy(), fit.sigma)
        return (lambda x: f(x[:-1], x[-1])), x0, list(fit.theta.index) + ["sigma"]
    if scale == "sd":
        return (lambda x: f(model.layout.from_sdcor(x), x[-1])), sdcor, varpar_names(fit)
    if scale == "var":
        x0 = model.layout.to_varcov(sdcor)

        def g(x: np.ndarray) -> float:
            if not x[-1] > 0:
                return math.nan
            v = model.layout.from_varcov(x)
            return f(model.layout.from_sdcor(v), v[-1]) if np.all(np.isfinite(v)) else math.nan

        return g, x0, varpar_names(fit, prefix=("var", "cov"), sigma="sigma^2")
    raise MixedFitError(f"unknown scale {scale!r}; use one of {', '.join(_SCALES)}")


def vcov_varpar(fit, scale: str = "theta", tol: float = 1e-8) -> pd.DataFrame:
    """Asymptotic covariance of the variance parameters: 2 × (Hessian of the objective)⁻¹.

    Parameters
    ----------
    fit : MixedResults
        A fitted model; the objective is its REML criterion for a REML fit,
        its deviance for an ML fit.
    scale : {"theta", "sd", "var"}
        The parameters: (θ, σ) as lmerTest's ``vcov_varpar``; (sd, cor, σ) as
        lme4 profiles them; or (var, cov, σ²).
    tol : float
        Eigenvalues of the Hessian at or below ``tol`` are dropped from the
        inverse (lmerTest's pseudo-inverse), e.g. for a variance at 0.

    Returns
    -------
    pandas.DataFrame
        Square, labelled by the parameters' names on that scale.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"))
    >>> vcov_varpar(fit, scale="sd").round(1)
                          sd_(Intercept)|Batch  sigma
    sd_(Intercept)|Batch                 290.9  -12.0
    sigma                                -12.0   51.1
    """
    if scale not in _SCALES:
        raise MixedFitError(f"unknown scale {scale!r}; use one of {', '.join(_SCALES)}")
    f, x0, names = _on_scale(fit, scale)
    H = richardson_hessian(f, x0)
    if not np.all(np.isfinite(H)):
        return pd.DataFrame(np.full(H.shape, np.nan), index=names, columns=names)
    values, vectors = np.linalg.eigh(H)
    keep = values > tol
    inv = (vectors[:, keep] / values[keep]) @ vectors[:, keep].T
    return pd.DataFrame(2.0 * inv, index=names, columns=names)


def varpar_wald_confint(fit, level: float = 0.95, scale: str = "sd") -> pd.DataFrame:
    """Information-matrix (Wald) intervals for the variance parameters: estimate ± z·SE.

    SEs from ``vcov_varpar`` on ``scale``.  lme4 gives none; these are
    symmetric on the chosen scale and can cross a bound.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"))
    >>> varpar_wald_confint(fit).round(2)
                          2.5 %  97.5 %
    sd_(Intercept)|Batch   8.57   75.43
    sigma                 35.50   63.52
    """
    probs, labels = level_labels(level)
    cov = vcov_varpar(fit, scale=scale)
    f, x0, names = _on_scale(fit, scale)
    se = np.sqrt(np.diag(cov.to_numpy()))
    return pd.DataFrame(x0[:, None] + np.outer(se, norm_ppf(probs)), index=names, columns=labels)
