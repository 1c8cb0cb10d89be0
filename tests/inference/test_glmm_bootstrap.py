"""GLMM parametric bootstrap and refit against lme4's ``bootMer``.

Reference: ``bootMer(fit, nsim = 1000, use.u = FALSE)`` of the cbpp fit in
``tests/lme4/fixtures/glmer_inference.json`` (``tests/lme4/glmer_inference_cases.R``).
Criterion as the linear ``test_bootstrap.py``: R's random numbers cannot be
reproduced, so each percentile bound must be within 3 Monte-Carlo standard
errors (from both samples' order statistics) of bootMer's.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

import mixedfit as mf
from mixedfit.inference.bootstrap import BootResult

from test_glmm_profile import fitted, fixture

SEED = 20240612
NSIM = 200  # ours; lme4's 1000 (each bound's Monte-Carlo error is estimated from both)
MC_SE = 3.0
# A refit starts from the fit's θ, a fresh fit from θ = 1: PIRLS then starts
# from another first-stage optimum, and the Laplace deviance it converges to
# (relative change 1e-7) moves with that start (GlmmModel._stage1).
LLF_ABS = 1e-5


@lru_cache(maxsize=None)
def booted() -> BootResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fitted("cbpp").bootstrap(NSIM, seed=SEED, progress=False)


def lme4_boot() -> BootResult:
    ref = fixture()["bootmer"]["cbpp"]
    return BootResult(t0=pd.Series(ref["t0"], index=ref["names"]),
                      t=pd.DataFrame(np.column_stack(ref["t"]), columns=ref["names"]))


def test_bootstrap_agrees_with_bootmer_within_monte_carlo_error():
    ours, theirs = booted(), lme4_boot()
    assert ours.n_failed == 0
    assert list(ours.t.columns) == list(theirs.t.columns)
    np.testing.assert_allclose(ours.t0.to_numpy(), theirs.t0.to_numpy(), rtol=2e-3, atol=1e-4)
    diff = ours.confint().to_numpy() - theirs.confint().to_numpy()
    se = np.hypot(ours.quantile_se().to_numpy(), theirs.quantile_se().to_numpy())
    assert np.all(np.abs(diff) <= MC_SE * se), pd.DataFrame(diff / se, index=ours.t.columns)


def test_confint_boot_is_the_bootstraps_percentile_interval():
    fit = fitted("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = fit.confint(method="boot", nsim=20, seed=3, progress=False, parm="theta_")
        same = fit.bootstrap(20, seed=3, progress=False).confint().iloc[:1]
    pd.testing.assert_frame_equal(ours, same)


def test_refit_to_the_own_response_reproduces_the_fit():
    fit = fitted("cbpp")
    again = fit.refit(fit.model.y * fit.model.trials)  # successes, simulate()'s scale
    assert again.llf == pytest.approx(fit.llf, abs=LLF_ABS)
    np.testing.assert_allclose(again.fixef.to_numpy(), fit.fixef.to_numpy(), rtol=1e-4, atol=1e-5)


def test_refit_to_a_simulated_response_is_a_fresh_fit_of_it():
    fit = fitted("cbpp")
    draw = fit.simulate(1, seed=5).iloc[:, 0]
    data = mf.load_dataset("cbpp").assign(incidence=draw.to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh = mf.mixed("cbind(incidence, size - incidence) ~ period + (1 | herd)", data, family="binomial")
        again = fit.refit(draw)
    assert again.llf == pytest.approx(fresh.llf, abs=LLF_ABS)
    np.testing.assert_allclose(again.fixef.to_numpy(), fresh.fixef.to_numpy(), rtol=1e-3, atol=1e-4)


def test_refit_refuses_bad_responses():
    fit = fitted("cbpp")
    with pytest.raises(mf.errors.DataError, match="values; the fit has 56"):
        fit.refit(np.ones(3))
    with pytest.raises(mf.errors.DataError, match="negative counts"):
        fit.refit(fit.model.trials + 1)  # more successes than trials


def test_simulated_weighted_proportions_are_proportions_of_the_weights():
    cbpp = mf.load_dataset("cbpp").assign(p=lambda d: d["incidence"] / d["size"])
    fit = mf.mixed("p ~ period + (1 | herd)", cbpp, family="binomial", weights="size")
    sims = fit.simulate(50, seed=2).to_numpy() * cbpp["size"].to_numpy()[:, None]
    np.testing.assert_allclose(sims, np.rint(sims), atol=1e-9)
    assert (sims > 1).any()  # not 0/1 draws
