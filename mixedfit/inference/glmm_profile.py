"""Likelihood profiles of GLMMs, as lme4's ``profile.merMod`` profiles a ``glmerMod``.

For a GLMM lme4 profiles glmer's own objective -- the Laplace (or quadrature)
deviance over (θ, β), PIRLS started where the fit's second stage starts it --
written on the (sd, cor) scale (``devfun2``): every parameter, β included,
is held at each grid value while all the others, β included, are
re-optimized.  There is no σ, and no offset trick for β as in the linear
profile.  The grid, the spline inversion and the intervals are those of
``.profile``; the row names those of ``confint(fit, oldNames = FALSE)``.

Like lme4, families with a scale parameter (Gamma, inverse Gaussian) and
``nAGQ = 0`` fits cannot be profiled.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..distributions import chi2_ppf
from ..errors import ModelSpecError, warn
from ..model import blas_controller
from ..progress import progress_bar
from .parameters import select_parm, varpar_names
from .profile import ProfileError, ProfileGrid, ProfileWarning, nloptwrap, profile_rows

__all__ = ["glmm_profile", "glmm_parameter_names", "glmm_estimates"]

# A point this little below the fit's deviance is a flat ridge or PIRLS's
# tolerance (it stops at a relative change of 1e-7), not a better optimum.
_RIDGE_DROP = 1e-6


def glmm_parameter_names(fit) -> list[str]:
    """confint's row names for a GLMM: ``sd_…|group``, ``cor_…|group``, then the fixed effects (no σ)."""
    return varpar_names(fit)[:-1] + list(fit.xnames)


def glmm_estimates(fit) -> pd.Series:
    """(sd, cor) of the random effects and β̂, named as ``glmm_parameter_names``."""
    sdcor = fit.model.layout.to_sdcor(fit.fitted.theta, 1.0)[:-1]
    return pd.Series(np.concatenate([sdcor, fit.fitted.beta]), index=glmm_parameter_names(fit))


class _Deviance:
    """glmer's deviance at (sd, cor, β) (lme4's ``devfun2`` of a GLMM)."""

    def __init__(self, model):
        self.model = model
        self.nvp = model.ntheta

    def __call__(self, par: np.ndarray) -> float:
        if not np.all(np.isfinite(par)):
            return math.inf
        theta = self.model.layout.from_sdcor(np.append(par[: self.nvp], 1.0))
        return self.model.objective(np.concatenate([theta, par[self.nvp:]]))


def _box(model) -> tuple[np.ndarray, np.ndarray]:
    """lme4's bounds: [0, ∞) for an sd, [−1, 1] for a correlation, (−∞, ∞) for β."""
    is_sd = np.isfinite(model.lower)
    free = np.full(model.p, np.inf)
    return (np.concatenate([np.where(is_sd, 0.0, -1.0), -free]),
            np.concatenate([np.where(is_sd, np.inf, 1.0), free]))


def glmm_profile(fit, which=None, alphamax: float = 0.01, maxpts: int = 100, delta: float | None = None,
                 delta_cutoff: float = 1 / 8, devtol: float = 1e-9, maxmult: float = 10,
                 progress: bool | None = None) -> pd.DataFrame:
    """Profile a GLMM's deviance over each parameter, as lme4's ``profile(fit, signames = FALSE)``.

    Parameters are those of ``mixedfit.inference.profile.profile``; the
    frame it returns has the same layout (``.zeta``, one column per
    parameter, ``.par``, ``.focal``; bounds in ``attrs``), without σ.

    Raises
    ------
    ModelSpecError
        For a family with a scale parameter or an ``nagq=0`` fit (lme4 cannot either).
    ProfileError
        Where a point's deviance is more than ``max(devtol, 1e-6)`` below
        the fit's (the fit is not at its optimum); a smaller drop only warns
        (lme4 raises beyond ``devtol``, but PIRLS's tolerance alone moves the
        deviance by up to ~1e-6).

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                mf.load_dataset("cbpp"), family="binomial")
    >>> prof = glmm_profile(fit, which="sd_(Intercept)|herd")
    >>> float(prof[".zeta"].abs().max()) > 3.0
    True
    """
    if fit.family.has_dispersion:
        raise ModelSpecError(f"profiling a GLMM of the {fit.family.name} family (it has a scale parameter) "
                             "is not possible, as in lme4; use confint(method='wald') or 'boot'")
    if fit.nagq == 0:
        raise ModelSpecError("an nagq=0 fit has no deviance in β to profile (lme4 cannot either); "
                             "refit with nagq=1")
    with blas_controller().limit(limits=1, user_api="blas"):
        return _profile(fit, which, alphamax, maxpts, delta, delta_cutoff, devtol, maxmult, progress)


def _profile(fit, which, alphamax, maxpts, delta, delta_cutoff, devtol, maxmult, progress) -> pd.DataFrame:
    model = fit.model
    dev = _Deviance(model)
    names = glmm_parameter_names(fit)
    nvp = model.ntheta
    opt = glmm_estimates(fit).to_numpy()
    base = -2.0 * fit.llf
    if not math.isclose(dev(opt), base, rel_tol=1e-5):
        raise ProfileError("the deviance on the (sd, cor, β) scale is not numerically consistent with the fit's")
    rows = select_parm(which, names, nvp)
    cutoff = math.sqrt(chi2_ppf(1.0 - alphamax, len(names)))
    grid = ProfileGrid(delta=cutoff * delta_cutoff if delta is None else float(delta), cutoff=cutoff,
                 maxmult=maxmult, maxpts=maxpts)
    lower, upper = _box(model)
    frames = []
    with progress_bar(len(rows), "profile", progress) as bar:
        for w in rows:
            frames.append(_profile_one(dev, base, opt, w, lower, upper, grid, devtol))
            bar.update(1)
    out = pd.DataFrame(np.vstack(frames), columns=[".zeta"] + names)
    out[".par"] = np.concatenate([[names[r]] * len(fr) for r, fr in zip(rows, frames)])
    idx = out[".par"].map({nm: k for k, nm in enumerate(names)}).to_numpy()
    out[".focal"] = out[names].to_numpy()[np.arange(len(out)), idx]
    out.attrs.update(lower={names[r]: float(lower[r]) for r in rows},
                     upper={names[r]: float(upper[r]) for r in rows},
                     base_deviance=base, cutoff=cutoff, nvarpar=nvp, nfixef=model.p)
    return out


def _profile_one(dev, base, opt, w, lower, upper, grid: ProfileGrid, devtol: float) -> np.ndarray:
    """Rows for parameter ``w``: held at each grid value, all others re-optimized from the previous point."""
    pw = opt[w]
    others = np.delete(np.arange(opt.size), w)

    def at(xx, rest):
        v = np.empty(opt.size)
        v[w], v[others] = xx, rest
        return v

    def zetafun(xx, prev_row):
        res = nloptwrap(lambda x: dev(at(xx, x)), prev_row[1:][others], lower[others], upper[others])
        if res is None or not np.isfinite(res[1]):
            warn("NAs detected in profiling", ProfileWarning)
            return np.concatenate([[np.nan], at(xx, np.full(others.size, np.nan))])
        devdiff = res[1] - base
        if devdiff < -max(devtol, _RIDGE_DROP):
            raise ProfileError(f"profiling detected new, lower deviance: {res[1]:.10g}, {-devdiff:.3g} below "
                               f"the fit's {base:.10g} at {np.round(at(xx, res[0]), 6).tolist()}")
        if devdiff < 0:
            warn(f"slightly lower deviances (diff={devdiff:g}) detected", ProfileWarning)
        zeta = np.sign(xx - pw) * math.sqrt(max(0.0, devdiff))
        return np.concatenate([[zeta], at(xx, res[0])])

    opt_row = np.concatenate([[0.0], opt])
    first = zetafun(0.001 if pw == 0 else pw * 1.01, opt_row)
    return profile_rows(opt_row, first, zetafun, grid, w + 1, lower[w], upper[w], down=pw > lower[w])
