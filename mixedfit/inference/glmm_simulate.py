"""Responses simulated from a fitted GLMM, and the GLMM refitted to a new response.

lme4's ``simulate(fit, nsim, seed, use.u)`` and ``refit(fit, newresp)`` of a
glmer fit, which ``GlmmResults.simulate`` / ``GlmmResults.refit`` show and
``.glmm_bootstrap`` repeats.  A refit is the same kind of object as the fit
it refits (``type(fit)``), built from the GLMM engine.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..errors import ModelSpecError
from ..glmm import GlmmModel
from .predict import new_response, simulated_linear_predictors

__all__ = ["glmm_simulate", "glmm_refit"]


def glmm_simulate(fit, nsim: int = 1, seed=None, use_u: bool = False) -> pd.DataFrame:
    """Responses simulated from *fit*, one column per simulation (``sim_1``, ...).

    Random effects drawn afresh (or, with ``use_u``, held at their modes),
    then responses from the family at μ = g⁻¹(η); see ``GlmmResults.simulate``.
    """
    rng = np.random.default_rng(seed)
    m = fit.model
    columns = {}
    etas = simulated_linear_predictors(fit, nsim, rng, use_u, fit.fitted.state.eta)
    for j, eta in enumerate(etas):
        columns[f"sim_{j + 1}"] = _draw(fit, rng, m.family.linkinv(eta))
    out = pd.DataFrame(columns, index=m.design.rows)
    out.attrs["seed"] = seed
    return out


def _draw(fit, rng: np.random.Generator, mu: np.ndarray) -> np.ndarray:
    """One response per row from the family at mean μ (R's ``family$simulate``)."""
    m, name = fit.model, fit.family.name
    if name == "binomial" and _counts_response(fit):
        return rng.binomial(np.rint(m.trials).astype(np.int64), mu).astype(float)
    if name == "binomial":  # R: rbinom(n, wts, μ) / wts, a proportion of the prior weights
        size = np.rint(m.weights).astype(np.int64)
        return rng.binomial(size, mu) / np.where(size > 0, size, 1)
    if name == "poisson":
        return rng.poisson(mu).astype(float)
    dispersion = fit.sigma**2
    if name == "Gamma":
        return rng.gamma(1.0 / dispersion, mu * dispersion)
    if name == "inverse.gaussian":
        return rng.wald(mu, m.weights / dispersion)
    raise ModelSpecError(f"simulate() is not implemented for the {name} family")


def _counts_response(fit) -> bool:
    """Whether the response is ``cbind(successes, failures)`` (trials other than one)."""
    return fit.model.design.trials is not None and bool(np.any(fit.model.trials != 1))


def glmm_refit(fit, new_y):
    """*fit*'s model fitted to ``new_y`` from its θ, without ``glmer``'s warnings (the caller
    gives them, or the bootstrap counts them); see ``GlmmResults.refit``."""
    m = fit.model
    y = new_response(m.design, new_y)
    if _counts_response(fit):
        y, _, _ = fit.family.initialize(np.column_stack([y, m.trials - y]), None, "new_y")
    else:
        fit.family.initialize(y, None, "new_y")  # R's checks: the range, non-integer counts
    model = GlmmModel(dataclasses.replace(m.design, y=y), fit.family, nagq=fit.nagq)
    model.start = np.maximum(fit.fitted.theta, model.lower)
    return type(fit)(model, model.optimize(), data_name=fit.data_name, weights_name=fit.weights_name,
                     offset_name=fit.offset_name)
