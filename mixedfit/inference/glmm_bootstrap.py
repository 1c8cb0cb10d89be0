"""Parametric bootstrap of a GLMM, as lme4's ``bootMer(fit, FUN, use.u = FALSE)`` of a glmer fit.

Each replicate draws a response from the fit (``.glmm_simulate``:
new random effects b* = Λ_θ̂ u*, then the family's draw at μ = g⁻¹(η*)) and
refits the same model to it (``glmm_refit``, from θ̂).  The
default statistic is confint's: (sd, cor) of the random effects and β̂,
with lme4's names; ``BootResult`` holds the replicates
and gives the percentile, basic and normal intervals.  NumPy's random
numbers, not R's: results agree with lme4's up to Monte-Carlo error.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import numpy as np

from ..errors import MixedFitError
from ..glmm import PirlsError
from .bootstrap import BootResult, collect_replicates, statistic_series
from .glmm_profile import glmm_estimates
from .glmm_simulate import glmm_refit, glmm_simulate
from .predict import random_generator

__all__ = ["glmm_bootstrap"]


def glmm_bootstrap(fit, n: int, seed: int | None = None, progress: bool | None = None,
                   statistic: Callable[[Any], Any] | None = None) -> BootResult:
    """Parametric bootstrap of a GLMM (lme4's ``bootMer(fit, FUN, nsim = n, use.u = FALSE)``).

    Parameters are those of ``mixedfit.inference.bootstrap.bootstrap``;
    ``statistic`` is called with the fit and with each refitted replicate
    (a ``GlmmResults``).  A replicate whose
    refit fails (PIRLS diverges on an extreme draw) is NaN and counted in
    ``n_failed``, with a warning, as bootMer does.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                mf.load_dataset("cbpp"), family="binomial")
    >>> b = glmm_bootstrap(fit, 5, seed=1, progress=False)
    >>> b.t.shape, list(b.t.columns[:2])
    ((5, 5), ['sd_(Intercept)|herd', '(Intercept)'])
    """
    n = int(n)
    if n < 1:
        raise MixedFitError(f"the number of bootstrap replicates must be positive, not {n}")
    rng = random_generator(seed)
    t0 = glmm_estimates(fit) if statistic is None else statistic_series(statistic(fit))
    draws = glmm_simulate(fit, nsim=n, seed=rng)

    def one(i: int, messages: Counter) -> np.ndarray:
        replicate = glmm_refit(fit, draws.iloc[:, i].to_numpy())
        messages.update(replicate.fitted.conv.messages + replicate.fitted.vcov_warnings)
        stat = glmm_estimates(replicate) if statistic is None else statistic(replicate)
        return statistic_series(stat, t0.index).to_numpy()

    return collect_replicates(n, t0, one, seed, progress,
                              errors=(PirlsError, np.linalg.LinAlgError, ValueError, FloatingPointError))
