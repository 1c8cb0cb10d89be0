"""The parameter bookkeeping that confidence intervals share.

lme4's ``confint(fit, oldNames = FALSE)`` has one row per parameter, named as
lme4 names them -- the standard deviations and correlations of the random
effects (``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``, ...),
the residual standard deviation ``sigma``, then the fixed effects -- and two
columns labelled as R labels percentiles (``"2.5 %"``, ``"97.5 %"``).  The
names, labels and row selection are here, for ``.profile``, ``.wald`` and
``.bootstrap`` alike; ``mixedfit.inference.confint.confint`` picks one of them.

θ's layout and its conversions to the (sd, cor, σ) scale on which lme4
profiles live in ``mixedfit.theta``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import MixedFitError

__all__ = ["format_perc", "varpar_names", "parameter_names", "select_parm", "level_labels", "estimates"]


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
    return fit.model.layout.sdcor_names(prefix) + [sigma]


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


def estimates(fit) -> pd.Series:
    """The parameters on ``confint``'s scale: (sd, cor, σ) then β, as lme4 names them."""
    v = fit.model.layout.to_sdcor(fit.theta.to_numpy(), fit.sigma)
    return pd.Series(np.concatenate([v, fit.fixef.to_numpy()]), index=parameter_names(fit))
