"""Likelihood profiles and profile confidence intervals, as lme4's ``profile.merMod``.

What is profiled
----------------
lme4 profiles the *ML* deviance, also for a REML fit (``devfun2`` calls
``refitML`` first, so the profile and its intervals are those of the ML
fit; only ``wald_confint`` keeps the REML numbers).  The
deviance is written as a function of the variance parameters on the
(sd, cor, σ) scale, with β profiled out::

    dev(v) = log|L_θ|² − Σ log wᵢ + r²(θ)/σ² + n log(2πσ²),   θ = chol(Σ(v))/σ

For a parameter ``p`` the signed root

    ζ(p) = sign(p − p̂) · sqrt(dev_p(p) − dev(p̂))

is computed on a grid, where ``dev_p`` minimizes the deviance over the other
variance parameters (NLopt's BOBYQA within the box sd ≥ 0, −1 ≤ cor ≤ 1,
σ ≥ 0, as lme4's ``nloptwrap``).  A fixed effect is profiled by moving its
column into the offset and refitting θ (σ and the other β profiled out).

The grid is lme4's: from p̂ one step (1 % of p̂, or 0.001 from 0; for β,
δ standard errors), then steps of δ in ζ extrapolated from the last two
points (at most ``maxmult`` times the last step), until |ζ| exceeds
sqrt(χ²_{nptot}(1 − alphamax)) or a bound is reached; δ defaults to that
cutoff / 8.

Intervals
---------
``profile_confint`` fits lme4's interpolating natural cubic spline of ζ
on p (``splines::interpSpline``), inverts it as ``splines::backSpline`` does
(a Hermite cubic through the knots with slopes 1/ζ′), and evaluates it at
±``qnorm((1 + level)/2)``.  Where ζ never reaches a limit the interval ends
at the parameter's bound (0 for an sd or σ, ±1 for a correlation, +∞ for an
sd's upper end), NaN for a fixed effect -- exactly where lme4 does.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Callable, Sequence

import nlopt
import numpy as np
import pandas as pd
from scipy.linalg import lapack, solve_banded

from ..distributions import chi2_ppf, norm_ppf
from ..errors import MixedFitError, MixedFitWarning, warn
from ..model import MixedModel
from ..optimize import NLOPT_ERRORS, bobyqa_setup
from ..progress import progress_bar
from .lrt import refit_ml
from .parameters import (
    estimates,
    level_labels,
    parameter_names,
    select_parm,
    varpar_names,
)

__all__ = ["profile", "profile_confint", "natural_slopes", "ProfileError", "ProfileWarning", "ProfileGrid",
           "nloptwrap", "profile_rows"]


class ProfileError(MixedFitError):
    """Profiling found a deviance below the fit's: the fit was not at its optimum."""


class ProfileWarning(MixedFitWarning):
    """A profile is not monotonic, has NaNs, or needed a fall-back (lme4 warns too)."""


# -- the ML fit being profiled ---------------------------------------------------
class _VarparDeviance:
    """The ML deviance at (sd, cor, ..., σ) with β profiled out (lme4's ``devfun2``)."""

    def __init__(self, model: MixedModel):
        self.model = model

    def __call__(self, v: np.ndarray) -> float:
        # math's test on the few values: numpy's calls on arrays this small cost more than the values
        if not all(map(math.isfinite, v.tolist())):
            return math.inf
        return self.model.objective_at_sigma(self.model.layout.from_sdcor(v), v[-1])

    def beta(self, v: np.ndarray) -> np.ndarray:
        f = self.model.factor(self.model.layout.from_sdcor(v)) if v[-1] > 0 and np.all(np.isfinite(v)) else None
        if f is None:
            return np.full(self.model.cross.p, np.nan)
        return self.model.cross.beta(f)


def nloptwrap(fn: Callable[[np.ndarray], float], start, lower, upper) -> tuple[np.ndarray, float] | None:
    """lme4's ``nloptwrap``: BOBYQA in a box, xtol_abs = ftol_abs = 1e-8, maxeval = 1e5.

    Returns (x, f), the best point seen if NLopt stops on round-off (as
    nloptr returns its last solution), or None where lme4's call errors.

    A start within a rounding error of a bound is put on it (``_on_bounds``).
    """
    start = _on_bounds(np.asarray(start, float), np.asarray(lower, float), np.asarray(upper, float))
    best = [np.inf, start.copy()]

    def f(x: np.ndarray, grad: np.ndarray) -> float:
        val = fn(x)
        if val < best[0]:
            best[0], best[1] = val, x.copy()
        return val

    opt, x0 = bobyqa_setup(f, start, np.asarray(lower, float), np.asarray(upper, float))
    try:
        x = opt.optimize(x0)
        return np.asarray(x, float), float(fn(x))
    except nlopt.RoundoffLimited:
        return (best[1], float(best[0])) if np.isfinite(best[0]) else None
    except NLOPT_ERRORS:
        return None


def _on_bounds(start: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``start`` with each entry within a rounding error (1e-12 of its scale) of a bound set on that bound.

    NLopt's first step along a parameter is 0.75 of its distance to a bound
    it starts near: a correlation of a singular fit, −1 + 1e-16 as its
    standard deviations give it, then never moves (a profile of a flat ridge
    kept it and its deviance rose too fast: a 95% bound 0.11 where lme4's is
    0.18), where from the bound itself the first step is a quarter of the box.

    Examples
    --------
    >>> _on_bounds(np.array([-1.0 + 2**-52, 0.5]), np.array([-1.0, 0.0]), np.array([1.0, np.inf])).tolist()
    [-1.0, 0.5]
    """
    near = 1e-12 * np.maximum(1.0, np.abs(start))
    start = np.where(np.abs(start - lower) <= near, lower, start)
    return np.where(np.abs(upper - start) <= near, upper, start)


# -- the grid -------------------------------------------------------------------
@dataclasses.dataclass
class ProfileGrid:
    """lme4's stepping rule (``nextpar``/``fillmat``) for one parameter."""

    delta: float
    cutoff: float
    maxmult: float
    maxpts: int

    def next_value(self, mat: np.ndarray, cc: int, i: int, lower: float, upper: float) -> float:
        pvals = mat[i - 1 : i + 1, cc]
        zeta = mat[i - 1 : i + 1, 0]
        num = pvals[1] - pvals[0]
        denom = zeta[1] - zeta[0]
        if np.isnan(denom) or denom == 0:
            warn("Last two rows have identical or NA .zeta values: using minstep", ProfileWarning)
            step = 1e-6
        else:
            step = self.delta * num / denom
            if step < 0:
                warn("unexpected decrease in profile: using minstep", ProfileWarning)
                step = 1e-6
            elif abs(step) > abs(self.maxmult * num):
                step = math.copysign(abs(self.maxmult * num), step)
        return min(upper, max(lower, pvals[1] + np.sign(num) * step))

    def fill(self, mat, lower, upper, zetafun, cc) -> np.ndarray:
        """Extend rows 0–1 of ``mat`` until |ζ| passes the cutoff or a bound (lme4's ``fillmat``)."""
        i = 1
        while i < self.maxpts - 1 and lower < mat[i, cc] < upper:
            z = abs(mat[i, 0])
            if not (np.isnan(z) or z <= self.cutoff):
                break
            value = self.next_value(mat, cc, i, lower, upper)
            mat[i + 1] = zetafun(value, mat[i])
            i += 1
        return mat


def profile_rows(opt_row, first, zetafun, grid: ProfileGrid, cc: int, lower: float, upper: float, down: bool):
    """Rows of one parameter's profile: up from the optimum, then (if ``down``) down from it."""
    pres = np.tile(opt_row, (grid.maxpts, 1))
    nres = pres.copy()
    pres[1] = nres[0] = first
    up = grid.fill(pres, lower, upper, zetafun, cc)
    dn = grid.fill(nres, lower, upper, zetafun, cc) if down else nres
    rows = np.vstack([up, dn])
    _, keep = np.unique(rows, axis=0, return_index=True)  # R's unique(): first of each
    rows = rows[np.sort(keep)]
    return rows[np.argsort(rows[:, cc], kind="stable")]


def profile(
    fit,
    which=None,
    alphamax: float = 0.01,
    maxpts: int = 100,
    delta: float | None = None,
    delta_cutoff: float = 1 / 8,
    devtol: float = 1e-9,
    maxmult: float = 10,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Profile the deviance over each parameter, as lme4's ``profile(fit, signames = FALSE)``.

    Parameters
    ----------
    fit : MixedResults
        A fitted model; a REML fit is profiled through its ML refit, as lme4 does.
    which : str, int or list, optional
        Parameters to profile (names, 0-based positions, ``"theta_"``, ``"beta_"``).
    alphamax : float
        The profile extends to |ζ| = sqrt(χ²_k(1 − alphamax)), k all parameters.
    maxpts : int
        Most points on each side of the optimum.
    delta : float, optional
        Step in ζ between points (default: that cutoff × ``delta_cutoff``).
    delta_cutoff, devtol, maxmult : float
        lme4's ``delta.cutoff``, ``devtol`` and ``maxmult``.
    progress : bool, optional
        A tqdm bar over the parameters: ``None`` (default) when stderr is a
        terminal, ``True`` always, ``False`` never (see ``mixedfit.progress``).

    Returns
    -------
    pandas.DataFrame
        lme4's ``as.data.frame(profile(fit))``: ``.zeta``, one column per
        parameter (every parameter's value at that point), ``.par`` (the
        parameter profiled) and ``.focal`` (its value).  ``attrs`` hold the
        bounds used for intervals (``"lower"``, ``"upper"``, by name), the ML
        ``"base_deviance"`` and the ``"cutoff"``.

    Raises
    ------
    ProfileError
        If a point has a deviance more than ``devtol`` below the fit's, as in
        lme4 -- except a drop of at most 1e-6 (a flat ridge, where lme4's
        optimizer stops elsewhere): then the ML fit is refitted from that
        point, with a ``ProfileWarning``, and profiled again (at most
        three times).

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"), reml=False)
    >>> prof = profile(fit)
    >>> sorted(prof[".par"].unique())
    ['(Intercept)', 'sd_(Intercept)|Batch', 'sigma']
    >>> row = prof[(prof[".par"] == "sigma") & (prof[".zeta"] == 0)]
    >>> row[["sd_(Intercept)|Batch", "sigma", "(Intercept)"]].round(3).to_numpy().tolist()
    [[37.26, 49.51, 1527.5]]
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a singular ML refit is profiled all the same
        ml = refit_ml(fit)
    settings = dict(which=which, alphamax=alphamax, maxpts=maxpts, delta=delta, delta_cutoff=delta_cutoff,
                    devtol=devtol, maxmult=maxmult, progress=progress)
    for _ in range(_MAX_REFITS):
        try:
            return _profile_ml(ml, **settings)
        except _NewMinimum as new:
            ml = _refit_from(ml, new)
            warn(f"profiling found a deviance {new.drop:.3g} below the fit's: profiled from a refit "
                          "there",
                 ProfileWarning)
    return _profile_ml(ml, **settings)


# A profile point this little below the fit's deviance (|ζ| < 1e-3) is the fit
# stopping early on a flat ridge: the fit is refitted from there and profiled
# again, at most _MAX_REFITS times.  A larger drop means the fit is not at its
# optimum, and raises as in lme4.
_RIDGE_DROP = 1e-6
_MAX_REFITS = 3


class _NewMinimum(ProfileError):
    """A profile point with a deviance below the fit's; ``theta`` is where."""

    def __init__(self, deviance: float, base: float, theta: np.ndarray):
        super().__init__(
            f"profiling detected new, lower deviance: {deviance:.10g} at θ = {np.round(theta, 6).tolist()}, "
            f"{base - deviance:.3g} below the fit's {base:.10g}; refit from there"
        )
        self.deviance, self.theta, self.drop = deviance, theta, base - deviance


def _refit_from(ml, new: _NewMinimum):
    """The ML fit refitted from the lower point, as a fit from a better start would be.

    Raises ``new`` when the drop is more than a flat ridge's, or the refit
    ends no lower than ``ml``.
    """
    if new.drop > _RIDGE_DROP:
        raise new
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular, as the fit it replaces
        refit = ml.model.fit(result=type(ml), start=np.maximum(new.theta, ml.model.lower),
                             data_name=ml.data_name, weights_name=ml.weights_name,
                             offset_name=ml.offset_name)
    if not refit.optsummary.fmin < ml.optsummary.fmin:
        raise new
    return refit


def _profile_ml(ml, which, alphamax, maxpts, delta, delta_cutoff, devtol, maxmult, progress) -> pd.DataFrame:
    """``profile`` of an ML fit; raises ``_NewMinimum`` where it finds a lower deviance."""
    model = ml.model
    dev = _VarparDeviance(model)
    base = ml.optsummary.fmin
    opt = estimates(ml)
    names = parameter_names(ml)
    nvp = len(varpar_names(ml))
    p = len(names) - nvp
    rows = select_parm(which, names, nvp)
    cutoff = math.sqrt(chi2_ppf(1.0 - alphamax, len(names)))
    grid = ProfileGrid(delta=cutoff * delta_cutoff if delta is None else float(delta), cutoff=cutoff,
                 maxmult=maxmult, maxpts=maxpts)
    lower, upper = _varpar_box(model)
    if not math.isclose(dev(opt.to_numpy()[:nvp]), base, rel_tol=1e-5):
        raise ProfileError("profiling over σ is not numerically consistent with the fit's deviance")

    frames = []
    with progress_bar(len(rows), "profile", progress) as bar:
        for w in (r for r in rows if r < nvp):
            frames.append(_profile_varpar(dev, base, opt.to_numpy(), w, nvp, lower, upper, grid, devtol))
            bar.update(1)
        for j in (r - nvp for r in rows if r >= nvp):
            frames.append(_profile_fixef(ml, base, opt.to_numpy(), j, nvp, grid))
            bar.update(1)
    out = pd.DataFrame(np.vstack(frames) if frames else np.empty((0, len(names) + 1)),
                       columns=[".zeta"] + names)
    out[".par"] = np.concatenate([[names[r]] * len(fr) for r, fr in zip(_order(rows, nvp), frames)])
    idx = out[".par"].map({nm: k for k, nm in enumerate(names)}).to_numpy()
    out[".focal"] = out[names].to_numpy()[np.arange(len(out)), idx]
    out.attrs.update(
        lower={names[r]: float(lower[r]) for r in rows if r < nvp},
        upper={names[r]: float(upper[r]) for r in rows if r < nvp},
        base_deviance=base,
        cutoff=cutoff,
        nvarpar=nvp,
        nfixef=p,
    )
    return out


def _order(rows: Sequence[int], nvp: int) -> list[int]:
    """Profiled parameters in the order their frames are built: variance ones first."""
    return [r for r in rows if r < nvp] + [r for r in rows if r >= nvp]


def _varpar_box(model: MixedModel) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on (sd, cor, σ): [0, ∞) for an sd or σ, [−1, 1] for a correlation."""
    is_sd = np.isfinite(model.lower)
    lower = np.append(np.where(is_sd, 0.0, -1.0), 0.0)
    upper = np.append(np.where(is_sd, np.inf, 1.0), np.inf)
    return lower, upper


def _profile_varpar(dev, base, opt, w, nvp, lower, upper, grid: ProfileGrid, devtol) -> np.ndarray:
    """Profile rows for variance parameter ``w`` (the others re-optimized at each point)."""
    pw = opt[w]
    others = np.delete(np.arange(nvp), w)

    def at(xx, rest):
        v = np.empty(nvp)
        v[w] = xx
        v[others] = rest
        return v

    def zetafun(xx, prev_row):
        start = prev_row[1 : nvp + 1][others]
        res = nloptwrap(lambda x: dev(at(xx, x)), start, lower[others], upper[others])
        if res is None or not np.isfinite(res[1]):
            warn("NAs detected in profiling", ProfileWarning)
            v = at(xx, np.full(others.size, np.nan))
            return np.concatenate([[np.nan], v, np.full(opt.size - nvp, np.nan)])
        devdiff = res[1] - base
        if devdiff < -devtol:
            v = at(xx, res[0])
            raise _NewMinimum(res[1], base, dev.model.layout.from_sdcor(v))
        if devdiff < 0:
            warn(f"slightly lower deviances (diff={devdiff:g}) detected", ProfileWarning)
        v = at(xx, res[0])
        zeta = np.sign(xx - pw) * math.sqrt(max(0.0, devdiff))
        return np.concatenate([[zeta], v, dev.beta(v)])

    opt_row = np.concatenate([[0.0], opt])
    shift = 0.001 if pw == 0 else pw * 1.01
    first = zetafun(shift, opt_row)
    return profile_rows(opt_row, first, zetafun, grid, w + 1, lower[w], upper[w], down=pw > lower[w])


class _HeldFixedEffect:
    """The ML deviance with β_j held at a value and θ free, off the full model's factor.

    lme4 profiles β_j by moving x_j into the offset and refitting the model
    without it.  At a θ, the penalized residual sum of squares over β is
    r² + (β − β̂)ᵀV⁻¹(β − β̂), with V = (R_XᵀR_X)⁻¹ in β's coordinates; held
    at β_j = f its minimum is r² + (f − β̂_j)²/V_jj, reached at
    β = β̂ + V_{·j}(f − β̂_j)/V_jj, and log|L_Z|² does not involve X.  So the
    reduced model's deviance is the full model's with that minimum for r²:
    every point of the profile factors the fitted model, and builds none
    (InstEval's (Intercept) built 19 models, 107 ms each).  With β = T(γ + b)
    (``Frame``), β_j = tᵀ(γ + b) for T's row t, and V_jj and β̂_j take one
    triangular solve, w = L_X⁻¹t: V_jj = wᵀw and tᵀγ̂ = wᵀc_X, where
    ``[L_X 0; c_Xᵀ r]`` is the factor's trailing block.
    """

    def __init__(self, model: MixedModel, j: int):
        frame = model.cross.frame
        t = np.zeros(model.cross.p)
        t[j] = 1.0
        if frame.intercept == j:  # β_k = (γ + b)_k − cᵀ(γ + b), with c_k = 0
            t -= frame.centers
        self.model, self.j, self._t, self._tb = model, j, t, float(t @ frame.beta)

    def _held(self, theta: np.ndarray, fw: float) -> tuple | None:
        """(factor, log|L_Z|², the held minimum r², (fw − β̂_j)/V_jj) at θ; None where θ gives no factor."""
        f = self.model.factor(theta)
        if f is None:
            return None
        cross = self.model.cross
        p = cross.p
        logdet_z, _, r2 = cross.logdets(f)
        trailing = f.trailing(p + 1)
        w = lapack.dtrtrs(trailing[:p, :p], self._t, lower=1)[0]
        gap = fw - self._tb - float(w @ trailing[p, :p])
        step = gap / float(w @ w)
        return f, logdet_z, r2 + step * gap, step

    def deviance(self, theta: np.ndarray, fw: float) -> float:
        held = self._held(theta, fw)
        if held is None:
            return np.inf
        _, logdet_z, r2, _ = held
        cross = self.model.cross
        return float(logdet_z - cross.sum_log_w + cross.n * (1.0 + np.log(2.0 * np.pi * r2 / cross.n)))

    def sigma_and_beta(self, theta: np.ndarray, fw: float) -> tuple[float, np.ndarray]:
        """σ̂ and β̂ (β_j = fw exactly) at θ."""
        f, _, r2, step = self._held(theta, fw)
        cross = self.model.cross
        Q = cross.rx_inverse(f)
        beta = cross.beta(f) + step * (Q.T @ Q[:, self.j])
        beta[self.j] = fw
        return math.sqrt(r2 / cross.n), beta


def _profile_fixef(ml, base, opt, j, nvp, grid: ProfileGrid) -> np.ndarray:
    """Profile rows for fixed effect ``j``: β_j held at each point, θ refitted (``_HeldFixedEffect``)."""
    model = ml.model
    est, std = opt[nvp + j], float(ml.bse.iloc[j])
    theta_opt = ml.theta.to_numpy()
    held = _HeldFixedEffect(model, j)
    upper = np.full(model.ntheta, np.inf)

    def zetafun(fw, prev_row=None):
        res = nloptwrap(lambda theta: held.deviance(theta, fw), theta_opt, model.lower, upper)
        if res is None:
            warn("NAs detected in profiling", ProfileWarning)
            return np.full(opt.size + 1, np.nan)
        theta, fv = res
        sig, beta = held.sigma_and_beta(theta, fw)
        with np.errstate(invalid="ignore"):
            zeta = np.sign(fw - est) * np.sqrt(fv - base)  # NaN below the optimum, as R's sqrt
        return np.concatenate([[zeta], model.layout.to_sdcor(theta, sig), beta])

    opt_row = np.concatenate([[0.0], opt])
    first = zetafun(est + grid.delta * std)
    return profile_rows(opt_row, first, zetafun, grid, nvp + 1 + j, -np.inf, np.inf, down=True)


# -- splines and intervals ----------------------------------------------------------
def natural_slopes(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The slopes at its knots of the natural cubic spline through (x, z) (``splines::interpSpline``).

    The spline's second derivative is continuous at each inner knot and zero
    at the ends: a tridiagonal system in the slopes, as scipy's
    ``CubicSpline(x, z, bc_type="natural")`` solves it (scipy.interpolate
    took 0.1 s to import, in a process's first profile intervals).

    Examples
    --------
    >>> x = np.array([0.0, 1.0, 3.0, 4.0])
    >>> natural_slopes(x, 2.0 * x + 1.0).tolist()  # a line is its own natural spline
    [2.0, 2.0, 2.0, 2.0]
    """
    dx = np.diff(x)
    secant = np.diff(z) / dx
    bands = np.zeros((3, x.size))
    bands[0, 1] = dx[0]
    bands[0, 2:] = dx[:-1]
    bands[1, 0], bands[1, 1:-1], bands[1, -1] = 2.0 * dx[0], 2.0 * (dx[:-1] + dx[1:]), 2.0 * dx[-1]
    bands[2, :-2] = dx[1:]
    bands[2, -2] = dx[-1]
    rhs = np.empty(x.size)
    rhs[0], rhs[-1] = 3.0 * (z[1] - z[0]), 3.0 * (z[-1] - z[-2])
    rhs[1:-1] = 3.0 * (dx[1:] * secant[:-1] + dx[:-1] * secant[1:])
    return solve_banded((1, 1), bands, rhs, check_finite=False)


class _BackSpline:
    """``splines::backSpline`` of an interpolating natural cubic spline: p as a function of ζ."""

    def __init__(self, x: np.ndarray, z: np.ndarray):
        if x.size < 4:
            raise ValueError("must have at least 'ord'=4 points")
        if np.any(np.diff(x) <= 0):
            raise ValueError("values of 'x' must be distinct")
        slope = natural_slopes(x, z)
        kdiff = np.diff(x)
        adiff = np.diff(z)
        if np.all(adiff < 0):
            reverse = True
        elif np.all(adiff > 0):
            reverse = False
        else:
            raise ValueError("spline must be monotone")
        nk = x.size
        c = np.zeros((nk, 4))
        c[:, 0] = x
        c[:, 1] = 1.0 / slope
        for i in range(nk - 1):
            a = np.array([[adiff[i] ** 2, adiff[i] ** 3], [2 * adiff[i], 3 * adiff[i] ** 2]])
            b = np.array([kdiff[i] - adiff[i] * c[i, 1], c[i + 1, 1] - c[i, 1]])
            c[i, 2:4] = np.linalg.solve(a, b)
        c[nk - 1, 1:] = np.nan
        if nk > 2:
            c[0, 3] = c[nk - 2, 3] = 0.0
            a = np.array([[adiff[0], adiff[0] ** 2], [1.0, 2 * adiff[0]]])
            c[0, 1:3] = np.linalg.solve(a, np.array([kdiff[0], 1.0 / slope[1]]))
            c[nk - 2, 2] = (kdiff[-1] - adiff[-1] * c[nk - 2, 1]) / adiff[-1] ** 2
        if c[0, 2] > 0:
            c[0, 2], c[0, 1] = 0.0, kdiff[0] / adiff[0]
        if c[nk - 2, 2] < 0:
            c[nk - 2, 2], c[nk - 2, 1] = 0.0, kdiff[-1] / adiff[-1]
        self.knots, self.coef = (z[::-1], c[::-1]) if reverse else (z, c)

    def __call__(self, zeta: np.ndarray) -> np.ndarray:
        """``predict.polySpline``: NaN outside the knots (R's ``cut`` gives NA there)."""
        zeta = np.atleast_1d(np.asarray(zeta, float))
        k = self.knots
        i = np.searchsorted(k, zeta, side="left") - 1
        i[zeta == k[0]] = 0
        ok = (i >= 0) & (i < k.size - 1) & np.isfinite(zeta)
        out = np.full(zeta.shape, np.nan)
        ii = i[ok]
        d = zeta[ok] - k[ii]
        c = self.coef[ii]
        out[ok] = c[:, 0] + d * (c[:, 1] + d * (c[:, 2] + d * c[:, 3]))
        return out


def _interval(rows: pd.DataFrame, name: str, zeta: np.ndarray, non_mono_tol: float) -> tuple[np.ndarray, bool]:
    """(p at the two ζ, whether the profile is unusable), as lme4's ``confint.thpr``."""
    x = rows[name].to_numpy(float)
    z = rows[".zeta"].to_numpy(float)
    keep = np.isfinite(x) & np.isfinite(z)
    try:
        return _BackSpline(x[keep], z[keep])(zeta), False
    except (ValueError, np.linalg.LinAlgError):
        pass
    warn(f"non-monotonic profile for {name}", ProfileWarning)
    if np.all(np.isnan(z)):
        warn(f"bad profile for {name}", ProfileWarning)
        return np.full(2, np.nan), True
    dz = np.diff(z)
    dz = dz[np.isfinite(dz)]
    if dz.size == 0 or np.all(dz < -non_mono_tol):
        warn(f"non-monotonic profile for {name}", ProfileWarning)
        return np.full(2, np.nan), True
    warn(f"bad spline fit for {name}: falling back to linear interpolation", ProfileWarning)
    return _approx(z[keep], x[keep], zeta), False


def _approx(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """R's ``approxfun(x, y)(at)``: ties averaged, NaN outside the range."""
    ux, inv = np.unique(x, return_inverse=True)
    uy = np.bincount(inv, weights=y) / np.bincount(inv)
    out = np.interp(at, ux, uy)
    out[(at < ux[0]) | (at > ux[-1])] = np.nan
    return out


def profile_confint(prof: pd.DataFrame, level: float = 0.95, non_mono_tol: float = 1e-2) -> pd.DataFrame:
    """Profile intervals from a ``profile`` frame, as lme4's ``confint(profile(fit))``.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff2"))
    >>> profile_confint(profile(fit)).round(3)
                          2.5 %  97.5 %
    sd_(Intercept)|Batch  0.000   2.084
    sigma                 2.893   4.816
    (Intercept)           4.312   7.019
    """
    probs, labels = level_labels(level)
    zeta = norm_ppf(probs)
    lower, upper = prof.attrs.get("lower", {}), prof.attrs.get("upper", {})
    names = list(dict.fromkeys(prof[".par"]))
    out = np.full((len(names), 2), np.nan)
    for k, name in enumerate(names):
        p, bad = _interval(prof[prof[".par"] == name], name, zeta, non_mono_tol)
        if not bad:
            # lme4 ends the interval at the parameter's bound (NaN for β) where ζ stops short
            p[0] = lower.get(name, np.nan) if np.isnan(p[0]) else p[0]
            p[1] = upper.get(name, np.nan) if np.isnan(p[1]) else p[1]
        out[k] = p
    return pd.DataFrame(out, index=names, columns=labels)
