"""R² and ICC of a linear mixed model, as R's performance package reports them.

Nakagawa, Johnson and Schielzeth (2017) split the variance of a Gaussian
mixed model into a fixed, a random and a residual part:

* fixed: ``var(X β̂)``, the sample variance (n − 1) of the fixed-effect
  predictions (offset left out);
* random: for each random-effects term with covariance Σ, the mean over
  the observations of ``zᵢᵀ Σ zᵢ`` -- the "mean random-effect variance" of
  Johnson (2014), which for a random slope adds the slope's variance at each
  observation's covariate value.  As performance 0.10.2 (insight 0.19.0)
  computes it, ``zᵢ`` is taken from the *fixed-effect* model matrix (with
  an intercept column added), so a random-effect column that is not also a
  fixed-effect column (``MachineA`` of ``(0 + Machine | Worker)``) is left out,
  and of several terms on one grouping factor only the first counts
  (insight matches the covariance matrices to ``ranef()``'s groups by name:
  ``(Days || Subject)`` counts the intercept's variance, not the slope's);
* residual: σ̂² (for a weighted fit, the σ̂² of weight 1).

Then marginal R² = fixed / total, conditional R² = (fixed + random) / total,
adjusted ICC = random / (random + residual) and unadjusted ICC = random /
total.  On a singular fit (a diagonal θ below 1e-5) performance reports no
random variance: the conditional R² and both ICCs are NaN, the marginal R²
leaves the random part out, and a warning says so.

Examples
--------
>>> import mixedfit as mf
>>> fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"))
>>> {k: round(v, 4) for k, v in icc(fit).items()}
{'adjusted': 0.4185, 'unadjusted': 0.4185}
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import MixedFitWarning, warn

__all__ = ["variance_components", "r2", "icc"]

_SINGULAR_TOL = 1e-5  # performance's (insight's) default tolerance
_SINGULAR_MESSAGE = ("can't compute random effect variances: some variance components equal "
                     "zero (a singular fit); performance reports {what} as NA")


def _random_variance(fit) -> float:
    """Σ over terms of mean(zᵢᵀ Σ zᵢ), with z from the fixed-effect model matrix."""
    X = fit.model.design.X
    columns = {name: X[:, j] for j, name in enumerate(fit.xnames)}
    if not any(name.startswith("(Intercept)") for name in columns):
        columns = {"(Intercept)": np.ones(fit.nobs), **columns}
    total = 0.0
    seen: set[str] = set()
    for term, (_label, names, cov) in zip(fit.model.design.terms, fit.vc_blocks):
        group = term.group  # the factor's name; vc_blocks label a second term "Subject.1"
        if group in seen:
            continue
        seen.add(group)
        keep = [i for i, name in enumerate(names) if name in columns]
        Z = np.column_stack([columns[names[i]] for i in keep]) if keep else np.zeros((fit.nobs, 0))
        total += float(np.einsum("ni,ij,nj->", Z, cov[np.ix_(keep, keep)], Z)) / fit.nobs
    return total


def _is_singular(fit) -> bool:
    theta = fit.theta.to_numpy()
    return bool(np.any(np.abs(theta[fit.model.lower == 0]) < _SINGULAR_TOL))


def variance_components(fit) -> dict[str, float]:
    """The fixed, random and residual variances of Nakagawa et al. (insight's ``get_variance``).

    ``random`` is NaN for a singular fit, as insight leaves it out.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    >>> {k: round(v, 2) for k, v in variance_components(fit).items()}
    {'fixed': 908.95, 'random': 1698.08, 'residual': 654.94}
    """
    fitted = fit.model.design.X @ fit.fixef.to_numpy()
    return {
        "fixed": float(np.var(fitted, ddof=1)),
        "random": math.nan if _is_singular(fit) else _random_variance(fit),
        "residual": fit.sigma ** 2,
    }


def r2(fit) -> dict[str, float]:
    """Marginal and conditional R², as ``performance::r2_nakagawa(fit)``.

    Returns
    -------
    dict
        ``{"conditional": ..., "marginal": ...}``; the conditional R² is NaN
        on a singular fit (with a ``MixedFitWarning``).

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    >>> {k: round(v, 4) for k, v in r2(fit).items()}
    {'conditional': 0.7992, 'marginal': 0.2787}
    """
    v = variance_components(fit)
    if math.isnan(v["random"]):
        warn(_SINGULAR_MESSAGE.format(what="the conditional R² (the marginal R² "
                                      "leaves the random effects out)"), MixedFitWarning)
        return {"conditional": math.nan, "marginal": v["fixed"] / (v["fixed"] + v["residual"])}
    total = v["fixed"] + v["random"] + v["residual"]
    return {"conditional": (v["fixed"] + v["random"]) / total, "marginal": v["fixed"] / total}


def icc(fit) -> dict[str, float]:
    """Adjusted and unadjusted intraclass correlation, as ``performance::icc(fit)``.

    Returns
    -------
    dict
        ``{"adjusted": ..., "unadjusted": ...}``: the random variance over
        random + residual, and over fixed + random + residual.  Both NaN on a
        singular fit (with a ``MixedFitWarning``).

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    >>> {k: round(v, 4) for k, v in icc(fit).items()}
    {'adjusted': 0.7217, 'unadjusted': 0.5206}
    """
    v = variance_components(fit)
    if math.isnan(v["random"]):
        warn(_SINGULAR_MESSAGE.format(what="the ICC"), MixedFitWarning)
        return {"adjusted": math.nan, "unadjusted": math.nan}
    return {"adjusted": v["random"] / (v["random"] + v["residual"]),
            "unadjusted": v["random"] / (v["fixed"] + v["random"] + v["residual"])}
