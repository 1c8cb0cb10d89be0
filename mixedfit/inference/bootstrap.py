"""Parametric bootstrap of a fitted model, as lme4's ``bootMer(fit, FUN, use.u = FALSE)``.

Each replicate simulates a new response from the fitted model, as lme4's
``simulate(fit, use.u = FALSE)`` does -- new random effects as well as new
noise::

    y* = Xβ̂ + offset + Z b* + ε*,   b* = σ̂ Λ_θ̂ u*,  u* ~ N(0, I),  ε* ~ N(0, σ̂² / w)

so b* ~ N(0, Σ̂) -- and refits the same model (REML or ML as the original)
from θ̂, as lme4's ``refit`` does.  The statistic recorded is the one
lme4's ``confint(fit, method = "boot")`` uses: (sd, cor, σ) and β̂ -- or,
like ``bootMer(fit, FUN)``, any function of the refitted model.

The random numbers come from NumPy's ``default_rng(seed)``: all u* for all
replicates first (level by level, term by term in lme4's order), then all ε*.
They cannot reproduce R's draws, so results agree with lme4's only up to
Monte-Carlo error; ``BootResult.quantile_se`` measures that error.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from ..distributions import norm_ppf
from ..errors import MixedFitError, warn
from ..model import MixedModel
from ..progress import progress_bar
from .parameters import estimates, level_labels
from .predict import random_generator

__all__ = ["bootstrap", "BootResult", "collect_replicates", "simulate_response", "statistic_series"]

_KINDS = ("perc", "basic", "norm")


@dataclasses.dataclass
class BootResult:
    """Replicates of a parametric bootstrap.

    Attributes
    ----------
    t0 : pandas.Series
        The statistic on the original fit: (sd, cor, σ) then β, lme4's names.
    t : pandas.DataFrame
        One row per replicate, NaN where the refit failed.
    seed : int or None
        The seed given to ``bootstrap``.
    messages : collections.Counter
        How often each convergence message (singular fit, ...) was seen.
    n_failed : int
        Refits that raised an error.
    """

    t0: pd.Series
    t: pd.DataFrame
    seed: int | None = None
    messages: Counter = dataclasses.field(default_factory=Counter)
    n_failed: int = 0

    @property
    def nsim(self) -> int:
        return len(self.t)

    @property
    def bias(self) -> pd.Series:
        """Mean of the replicates minus the original estimate."""
        return self.t.mean() - self.t0

    @property
    def std_error(self) -> pd.Series:
        """Standard deviation of the replicates (boot's ``sd(t)``)."""
        return self.t.std(ddof=1)

    def confint(self, kind: str = "perc", level: float = 0.95) -> pd.DataFrame:
        """Bootstrap intervals, as ``confint(bootMer(...), type = kind)`` (boot's ``boot.ci``).

        ``"perc"``: quantiles of the replicates, interpolated on the normal
        scale between order statistics as boot's ``norm.inter`` does;
        ``"basic"``: 2·t0 minus the opposite quantile; ``"norm"``:
        t0 − bias ∓ z·sd.  Non-finite replicates are left out per parameter.

        Examples
        --------
        >>> import mixedfit as mf
        >>> fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"))
        >>> b = bootstrap(fit, 200, seed=1, progress=False)
        >>> list(b.confint().columns), list(b.confint(level=0.9).index)
        (['2.5 %', '97.5 %'], ['sd_(Intercept)|Batch', 'sigma', '(Intercept)'])
        """
        if kind not in _KINDS:
            raise MixedFitError(f"unknown bootstrap interval type {kind!r}; use one of {', '.join(_KINDS)}")
        probs, labels = level_labels(level)
        rows = []
        for name in self.t.columns:
            t = self.t[name].to_numpy(float)
            t = t[np.isfinite(t)]
            t0 = float(self.t0[name])
            if t.size == 0:
                rows.append([np.nan, np.nan])
            elif kind == "perc":
                rows.append(list(norm_inter(t, probs)))
            elif kind == "basic":
                rows.append(list(2.0 * t0 - norm_inter(t, probs[::-1])))
            else:
                bias = t.mean() - t0
                merr = t.std(ddof=1) * norm_ppf((1.0 + level) / 2.0)
                rows.append([t0 - bias - merr, t0 - bias + merr])
        return pd.DataFrame(rows, index=list(self.t.columns), columns=labels)

    def quantile_se(self, level: float = 0.95) -> pd.DataFrame:
        """Monte-Carlo standard errors of the percentile bounds, from order statistics.

        The k-th order statistic of N draws estimates the q-quantile with
        k ~ Binomial(N, q), so the bound's standard error is about half the
        distance between the order statistics at Nq ± sqrt(Nq(1 − q)):
        no density estimate needed.

        Examples
        --------
        >>> import mixedfit as mf
        >>> fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"))
        >>> b = bootstrap(fit, 200, seed=1, progress=False)
        >>> se = b.quantile_se()
        >>> bool((se.drop("sd_(Intercept)|Batch") > 0).all().all())
        True

        Nine of these refits are singular (sd 0): the sd's lower bound lies in
        that point mass, where the order statistics agree and its error is 0.

        >>> float(se.loc["sd_(Intercept)|Batch", "2.5 %"]), int((b.t["sd_(Intercept)|Batch"] == 0).sum())
        (0.0, 9)
        """
        probs, labels = level_labels(level)
        rows = []
        for name in self.t.columns:
            t = np.sort(self.t[name].to_numpy(float))
            t = t[np.isfinite(t)]
            rows.append([_order_stat_se(t, q) for q in probs])
        return pd.DataFrame(rows, index=list(self.t.columns), columns=labels)


def _order_stat_se(t: np.ndarray, q: float) -> float:
    n = t.size
    if n < 2:
        return math.nan
    half = math.sqrt(n * q * (1.0 - q))
    lo = int(np.clip(math.floor(n * q - half), 1, n)) - 1
    hi = int(np.clip(math.ceil(n * q + half), 1, n)) - 1
    return float(t[hi] - t[lo]) / 2.0


def norm_inter(t: np.ndarray, alpha: Iterable[float]) -> np.ndarray:
    """boot's ``norm.inter``: quantiles of ``t`` interpolated on the normal scale.

    With R = len(t) and r = (R + 1)·α, an integer r gives the r-th order
    statistic; otherwise the value between the k-th and (k+1)-th (k = ⌊r⌋)
    where qnorm(α) falls between qnorm(k/(R+1)) and qnorm((k+1)/(R+1)).

    Examples
    --------
    >>> norm_inter(np.arange(1.0, 40.0), [0.05, 0.95]).tolist()
    [2.0, 38.0]
    >>> norm_inter(np.arange(1.0, 41.0), [0.05]).round(4).tolist()
    [2.0585]
    """
    t = np.sort(np.asarray(t, float)[np.isfinite(t)])
    R = t.size
    alpha = np.asarray(list(alpha), float)
    rk = (R + 1) * alpha
    if not np.all((rk > 1) & (rk < R)):
        warn("extreme order statistics used as endpoints")
    k = np.trunc(rk).astype(int)
    out = np.empty(alpha.size)
    for m, (a, r, kk) in enumerate(zip(alpha, rk, k)):
        if kk == 0:
            out[m] = t[0]
        elif kk >= R:
            out[m] = t[R - 1]
        elif kk == r:
            out[m] = t[kk - 1]
        else:
            z, z0, z1 = norm_ppf(a), norm_ppf(kk / (R + 1)), norm_ppf((kk + 1) / (R + 1))
            out[m] = t[kk - 1] + (z - z0) / (z1 - z0) * (t[kk] - t[kk - 1])
    return out


# -- simulation ------------------------------------------------------------------------
def simulate_response(fit, nsim: int, rng: np.random.Generator) -> np.ndarray:
    """Responses simulated from the fit, lme4's ``simulate(fit, nsim, use.u = FALSE)``.

    Returns an array of shape (nsim, n).

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"))
    >>> simulate_response(fit, 3, np.random.default_rng(0)).shape
    (3, 30)
    """
    model = fit.model
    design = model.design
    n = design.nobs
    sigma = fit.sigma
    mean = design.X @ fit.fixef.to_numpy()
    if design.offset is not None:
        mean = mean + design.offset
    theta = fit.theta.to_numpy()
    # all spherical random effects first, then all noise (lme4's order of draws)
    us = [rng.standard_normal((nsim, t.nlevels, t.size)) for t in design.terms]
    eps = rng.standard_normal((nsim, n))
    y = np.tile(mean, (nsim, 1))
    for term, T, u in zip(design.terms, model.layout.templates(theta), us):
        b = sigma * (u @ T.T)  # (nsim, ℓ, S)
        y += np.einsum("ns,kns->kn", term.z, b[:, term.codes, :])
    w = np.ones(n) if design.weights is None else np.asarray(design.weights, float)
    return y + sigma * eps / np.sqrt(w)


def _statistic(model: MixedModel, theta: np.ndarray) -> np.ndarray:
    """(sd, cor, σ) and β̂ of a model at θ."""
    f = model.factor(theta)
    if f is None:
        return None
    cross = model.cross
    r2 = cross.logdets(f)[2]
    sigma = math.sqrt(r2 / (cross.n - cross.p if model.reml else cross.n))
    beta = cross.beta(f)
    return np.concatenate([model.layout.to_sdcor(theta, sigma), beta])


def statistic_series(value: Any, names: Iterable | None = None) -> pd.Series:
    """A statistic's value as a Series: a number, a 1-D array, a dict or a Series.

    Unnamed values are named ``t1``, ``t2``, ... (boot's ``t1*``, ``t2*``).
    """
    if isinstance(value, (pd.Series, dict)):
        out = pd.Series(value, dtype=float)
    else:
        arr = np.asarray(value, dtype=float)
        if arr.ndim > 1:
            raise MixedFitError(f"the bootstrap statistic must return a number or a 1-D array, "
                                f"not an array of shape {arr.shape}")
        arr = arr.reshape(-1)
        out = pd.Series(arr, index=[f"t{i + 1}" for i in range(arr.size)])
    if names is not None and list(out.index) != list(names):
        raise MixedFitError(f"the bootstrap statistic returned {list(out.index)} on a replicate "
                            f"but {list(names)} on the fit")
    return out


def bootstrap(fit, n: int, seed: int | None = None, progress: bool | None = None,
              statistic: Callable[[Any], Any] | None = None) -> BootResult:
    """Parametric bootstrap of a fit (lme4's ``bootMer(fit, FUN, nsim = n, use.u = FALSE)``).

    Parameters
    ----------
    fit : MixedResults
        A fitted model; every replicate is refitted with the same formula,
        weights, offset and criterion (REML or ML), starting from θ̂.
    n : int
        Number of replicates.
    seed : int or numpy.random.Generator, optional
        Seed for ``numpy.random.default_rng`` (a non-negative integer).
    progress : bool, optional
        ``False``: silent.  ``None`` (default): a tqdm bar if tqdm is
        installed and stderr is a terminal.  ``True``: a tqdm bar if tqdm is
        installed.
    statistic : callable, optional
        bootMer's ``FUN``: called with the fit and with each refitted
        replicate (a ``MixedResults`` with the simulated
        response), it returns a number, a 1-D array, a dict or a Series;
        dict keys and Series labels name the columns of ``t``.  Default:
        (sd, cor, σ) and β̂.

    Returns
    -------
    BootResult

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"))
    >>> b = bootstrap(fit, 100, seed=42, progress=False)
    >>> b.t.shape, b.n_failed
    ((100, 3), 0)
    >>> bool(abs(b.t["(Intercept)"].mean() - 1527.5) < 10)
    True
    >>> own = bootstrap(fit, 20, seed=1, progress=False,
    ...                 statistic=lambda f: {"sigma": f.sigma, "logLik": f.llf})
    >>> own.t.shape, list(own.t.columns)
    ((20, 2), ['sigma', 'logLik'])
    """
    n = int(n)
    if n < 1:
        raise MixedFitError(f"the number of bootstrap replicates must be positive, not {n}")
    rng = random_generator(seed)
    t0 = estimates(fit) if statistic is None else statistic_series(statistic(fit))
    ystar = simulate_response(fit, n, rng)
    design, reml, start = fit.model.design, fit.reml, fit.theta.to_numpy()

    def one(i: int, messages: Counter) -> np.ndarray | None:
        model = MixedModel(dataclasses.replace(design, y=ystar[i]), reml=reml)
        opt = model.optimize(start)
        conv = model.convergence(opt)
        messages.update(conv.messages)
        if statistic is None:
            return _statistic(model, opt.final)
        replicate = type(fit)(model, opt, conv, data_name=fit.data_name)  # what was given: numbers or face
        return statistic_series(statistic(replicate), t0.index).to_numpy()

    return collect_replicates(n, t0, one, seed, progress)


def collect_replicates(n: int, t0: pd.Series, one: Callable[[int, Counter], np.ndarray | None], seed: Any,
                       progress: bool | None,
                       errors: tuple[type[BaseException], ...] = (np.linalg.LinAlgError, ValueError,
                                                                  FloatingPointError)) -> BootResult:
    """Run ``one(i, messages)`` for each replicate ``i`` and gather what it returns into a ``BootResult``.

    ``one`` returns the replicate's statistic (None when the refit has
    none) and counts its convergence messages into ``messages``; a refit
    raising one of ``errors`` counts as failed, its message kept, as
    bootMer keeps going.
    """
    out = np.full((n, t0.size), np.nan)
    messages: Counter = Counter()
    failed = 0
    with progress_bar(n, "bootstrap", progress) as bar:
        for i in range(n):
            try:
                stat = one(i, messages)
                if stat is not None:
                    out[i] = stat
                else:
                    failed += 1
            except errors as err:
                failed += 1
                messages[f"error: {err}"] += 1
            bar.update(1)
    if failed:
        warn(f"some bootstrap runs failed ({failed}/{n})")
    return BootResult(t0=t0, t=pd.DataFrame(out, columns=t0.index), seed=seed, messages=messages,
                      n_failed=failed)
