"""The parameter bookkeeping that confidence intervals share.

lme4's ``confint(fit, oldNames = FALSE)`` has one row per parameter, named as
lme4 names them -- the standard deviations and correlations of the random
effects (``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``, ...),
the residual standard deviation ``sigma``, then the fixed effects -- and two
columns labelled as R labels percentiles (``"2.5 %"``, ``"97.5 %"``).  The
names, labels and row selection are here, for ``.profile``, ``.wald`` and
``.bootstrap`` alike; ``mixedfit.inference.intervals.confint`` picks one of them.

The helpers here convert between lme4's θ (column-major lower triangle of
each term's relative Cholesky factor) and the (sd, cor, σ) scale on which
lme4 profiles, exactly as lme4's ``Cv_to_Sv`` / ``Sv_to_Cv`` do.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from ..blocks import lower_template, template_positions
from ..errors import MixedFitError

__all__ = ["format_perc", "varpar_names", "parameter_names", "select_parm", "level_labels", "estimates",
           "theta_to_sdcor", "sdcor_to_theta"]


# -- names -------------------------------------------------------------------
def varpar_names(fit, prefix: tuple[str, str] = ("sd", "cor"), sigma: str = "sigma") -> list[str]:
    """lme4's names of the variance parameters (``tnames(fit, old = FALSE)`` then ``sigma``).

    Within a term the order is θ's: the lower triangle column by column, so a
    ``(Days|Subject)`` term gives ``sd_(Intercept)``, ``cor_Days.(Intercept)``,
    ``sd_Days``.  The group is the grouping factor as written, even when two
    terms share it (lme4 does not number repeats here).

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    >>> varpar_names(fit)
    ['sd_(Intercept)|Subject', 'cor_Days.(Intercept)|Subject', 'sd_Days|Subject', 'sigma']
    """
    names = []
    for term in fit.model.design.terms:
        cn = term.cnames
        for j in range(term.size):
            for i in range(j, term.size):
                if i == j:
                    names.append(f"{prefix[0]}_{cn[i]}|{term.group}")
                else:
                    names.append(f"{prefix[1]}_{cn[i]}.{cn[j]}|{term.group}")
    return names + [sigma]


def parameter_names(fit) -> list[str]:
    """All of ``confint``'s row names: variance parameters, then fixed effects."""
    return varpar_names(fit) + list(fit.xnames)


def select_parm(parm, names: Sequence[str], nvp: int) -> list[int]:
    """Positions selected by ``parm``, as lme4's ``get.which`` reads it.

    ``None`` selects all; integers are 0-based positions; strings are names,
    or ``"theta_"`` (every variance parameter) and ``"beta_"`` (every fixed
    effect).  The result is sorted, as lme4's is.

    Examples
    --------
    >>> select_parm(["beta_", "sigma"], ["sd_a|g", "sigma", "(Intercept)", "x"], 2)
    [1, 2, 3]
    """
    if parm is None:
        return list(range(len(names)))
    if isinstance(parm, (str, int, np.integer)):
        parm = [parm]
    chosen: set[int] = set()
    for p in parm:
        if isinstance(p, (int, np.integer)):
            if not 0 <= int(p) < len(names):
                raise MixedFitError(f"parameter position {p} out of range (0..{len(names) - 1})")
            chosen.add(int(p))
        elif p == "theta_":
            chosen.update(range(nvp))
        elif p == "beta_":
            chosen.update(range(nvp, len(names)))
        elif p in names:
            chosen.add(list(names).index(p))
        else:
            raise MixedFitError(f"unknown parameter {p!r}; parameters are: {', '.join(names)}")
    return sorted(chosen)


def format_perc(probs: Sequence[float], digits: int = 3) -> list[str]:
    """Percent labels as lme4's ``format.perc`` writes them (``"2.5 %"``, ``"97.5 %"``).

    R's ``format(100 * probs, digits = 3)`` shows all numbers with one common
    count of decimals: the most any of them needs to show ``digits``
    significant digits (trailing zeros dropped).

    Examples
    --------
    >>> format_perc([0.025, 0.975])
    ['2.5 %', '97.5 %']
    >>> format_perc([0.005, 0.995])
    ['0.5 %', '99.5 %']
    >>> format_perc([0.05, 0.95])
    ['5 %', '95 %']
    """
    values = [100.0 * float(p) for p in probs]
    decimals = max(_decimals_needed(v, digits) for v in values)
    return [f"{v:.{decimals}f} %" for v in values]


def _decimals_needed(x: float, digits: int) -> int:
    """Decimals R's formatReal shows for ``x`` at ``digits`` significant digits."""
    if x == 0 or not math.isfinite(x):
        return 0
    mantissa, exponent = f"{abs(x):.{digits - 1}e}".split("e")
    sig = mantissa.replace(".", "").rstrip("0") or "0"
    return max(0, len(sig) - 1 - int(exponent))


def level_labels(level: float) -> tuple[np.ndarray, list[str]]:
    """The two tail probabilities of a two-sided interval and their column labels."""
    if not 0.0 < level < 1.0:
        raise MixedFitError(f"level must be between 0 and 1, not {level!r}")
    a = (1.0 - level) / 2.0
    probs = np.array([a, 1.0 - a])
    return probs, format_perc(probs)


# -- θ <-> (sd, cor, σ) --------------------------------------------------------
def theta_to_sdcor(model, theta: np.ndarray, sigma: float) -> np.ndarray:
    """lme4's ``Cv_to_Sv``: θ and σ to (sd, cor, ..., σ), θ's order, σ last.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    >>> theta_to_sdcor(fit.model, fit.theta.to_numpy(), fit.sigma).round(3).tolist()
    [24.741, 0.066, 5.922, 25.592]
    """
    out = []
    for term, sl in zip(model.design.terms, model.theta_slices):
        T = lower_template(np.asarray(theta[sl], float), term.size)
        cov = (T @ T.T) * sigma**2
        sd = np.sqrt(np.diag(cov))
        with np.errstate(divide="ignore", invalid="ignore"):
            m = cov / np.outer(sd, sd)
        m[~np.isfinite(m)] = 0.0  # lme4's cov2sdcor turns NA correlations into 0
        m[np.diag_indices(term.size)] = sd
        out.append(_lower_colmajor(m))
    return np.concatenate(out + [[sigma]])


def sdcor_to_theta(model, sdcor: np.ndarray) -> np.ndarray:
    """lme4's ``Sv_to_Cv``: (sd, cor, ..., σ) to θ, through a safe Cholesky factor.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    >>> v = theta_to_sdcor(fit.model, fit.theta.to_numpy(), fit.sigma)
    >>> np.allclose(sdcor_to_theta(fit.model, v), fit.theta.to_numpy())
    True
    """
    sdcor = np.asarray(sdcor, float)
    sigma = sdcor[-1]
    out = []
    for term, sl in zip(model.design.terms, model.theta_slices):
        m = _from_lower_colmajor(sdcor[sl], term.size)
        sd = np.diag(m).copy()
        cov = m.copy()
        cov[np.diag_indices(term.size)] = 1.0
        cov = cov * np.outer(sd, sd) / sigma**2
        out.append(_lower_colmajor(_safe_chol(cov)))
    return np.concatenate(out)


def _lower_colmajor(m: np.ndarray) -> np.ndarray:
    """The lower triangle of ``m`` column by column (θ's layout)."""
    return m[template_positions(m.shape[0])]


def _from_lower_colmajor(v: np.ndarray, size: int) -> np.ndarray:
    """The symmetric matrix whose lower triangle (column major) is ``v``."""
    T = lower_template(v, size)
    return T + np.tril(T, -1).T


def _safe_chol(m: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a covariance matrix that may be singular (lme4's ``safe_chol``).

    A positive semi-definite matrix that LAPACK refuses (a correlation of ±1)
    is factored column by column with zero pivots giving zero columns; any
    lower-triangular L with LLᵀ = m gives the same deviance.
    """
    if m.shape[0] == 1:
        return np.sqrt(m)
    if np.all(m == 0) or np.any(np.isnan(m)):
        return m.copy()
    if np.count_nonzero(m - np.diag(np.diag(m))) == 0:
        return np.diag(np.sqrt(np.diag(m)))
    try:
        return np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        pass
    k = m.shape[0]
    L = np.zeros_like(m)
    for j in range(k):
        d = m[j, j] - L[j, :j] @ L[j, :j]
        if d <= 1e-14 * max(1.0, abs(m[j, j])):
            continue  # a zero pivot: this column of L is zero
        L[j, j] = math.sqrt(d)
        L[j + 1 :, j] = (m[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
    return L


def estimates(fit) -> pd.Series:
    """The parameters on ``confint``'s scale: (sd, cor, σ) then β, as lme4 names them."""
    v = theta_to_sdcor(fit.model, fit.theta.to_numpy(), fit.sigma)
    return pd.Series(np.concatenate([v, fit.fixef.to_numpy()]), index=parameter_names(fit))
