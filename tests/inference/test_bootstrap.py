"""Parametric bootstrap against lme4's ``bootMer`` and its profile intervals.

References (``tests/lme4/fixtures/inference_profile.json``, written by
``tests/lme4/inference_cases.R``): boot's interval arithmetic on fixed
replicates; ``bootMer(fit, nsim = 1000, use.u = FALSE)`` replicates and
percentile intervals for Dyestuff and sleepstudy (REML); lme4's profile
intervals.

Criteria (R's random numbers cannot be reproduced, so the bootstrap is
compared up to Monte-Carlo error):

* interval arithmetic (perc / basic / norm): 1e-12 relative to boot's;
* against lme4's own bootstrap, which estimates the same interval: each
  percentile bound within 3 × sqrt(se_ours² + se_lme4²), se the Monte-Carlo
  standard error of a quantile estimated from the order statistics
  (:meth:`BootResult.quantile_se`);
* against lme4's profile interval, which is a different interval (the
  profile is of the ML fit, the bootstrap refits REML; percentile intervals
  carry the estimator's bias), so Monte-Carlo error alone cannot bound the
  difference -- lme4's own bootMer is up to 17 % of the width away from its
  profile bounds here.  Required: the percentile interval covers the profile
  interval's centre, and each bound is within 3 Monte-Carlo standard errors
  plus 20 % of the profile interval's width.

The two 1000-replicate bootstraps take about 2 s (Dyestuff) and 8 s
(sleepstudy).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from scipy.stats import expon

from mixedfit.inference.bootstrap import BootResult, bootstrap, simulate_response
from mixedfit.inference.confint import confint
from mixedfit.inference.parameters import estimates

from _cases import fitted, fixture

SEED = 20240611
NSIM = 1000
MC_SE = 3.0
PROFILE_WIDTH_ALLOWANCE = 0.20


@lru_cache(maxsize=None)
def booted(case: str) -> BootResult:
    return bootstrap(fitted(case), NSIM, seed=SEED, progress=False)


def lme4_boot(case: str) -> BootResult:
    ref = fixture()["bootmer"][case]
    t = pd.DataFrame(np.column_stack(ref["t"]), columns=ref["names"])
    return BootResult(t0=pd.Series(ref["t0"], index=ref["names"]), t=t)


def table(rec) -> pd.DataFrame:
    values = np.column_stack([np.asarray(rec["lower"], float), np.asarray(rec["upper"], float)])
    return pd.DataFrame(values, index=rec["rownames"], columns=rec["colnames"])


@pytest.mark.parametrize("R", ["999", "1000"])
def test_interval_arithmetic_matches_boot(R):
    rec = fixture()["boot_arithmetic"][R]
    n = rec["R"]
    k = np.arange(1, n + 1)
    t = expon.ppf(((k * rec["multiplier"]) % (n + 1)) / (n + 1))  # the R script's replicates
    result = BootResult(t0=pd.Series([rec["t0"]], index=["x"]), t=pd.DataFrame({"x": t}))
    for conf, ref in rec["levels"].items():
        for kind in ("perc", "basic", "norm"):
            ours = result.confint(kind, float(conf)).to_numpy()[0]
            np.testing.assert_allclose(ours, ref[kind], rtol=1e-12, err_msg=f"{kind} {conf}")


def test_lme4_percentile_intervals_are_recomputed_from_its_replicates():
    # our percentile arithmetic on lme4's replicates gives lme4's own intervals
    for case in fixture()["bootmer"]:
        ours = lme4_boot(case).confint("perc", 0.95)
        ref = table(fixture()["bootmer"][case]["perc_95"])
        np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("case", ["dyestuff_reml", "sleepstudy_reml"])
def test_bootstrap_agrees_with_bootmer_within_monte_carlo_error(case):
    ours, theirs = booted(case), lme4_boot(case)
    assert ours.n_failed == 0
    assert list(ours.t.columns) == list(theirs.t.columns)
    np.testing.assert_allclose(ours.t0.to_numpy(), theirs.t0.to_numpy(), rtol=1e-3, atol=1e-6)
    diff = ours.confint().to_numpy() - theirs.confint().to_numpy()
    se = np.hypot(ours.quantile_se().to_numpy(), theirs.quantile_se().to_numpy())
    # a bound with no spread in either sample (a variance at 0) must agree exactly
    assert np.all(np.abs(diff) <= MC_SE * se + 1e-12), pd.DataFrame(diff / se, index=ours.t.columns)


@pytest.mark.parametrize("case", ["dyestuff_reml", "sleepstudy_reml"])
def test_bootstrap_percentile_interval_against_profile(case):
    ours = booted(case)
    perc = ours.confint()
    se = ours.quantile_se()
    prof = table(fixture()["cases"][case]["profile_95"])
    centre = prof.mean(axis=1)
    width = prof.iloc[:, 1] - prof.iloc[:, 0]
    assert ((perc.iloc[:, 0] <= centre) & (centre <= perc.iloc[:, 1])).all(), pd.concat([perc, centre], axis=1)
    for k in range(2):
        gap = (perc.iloc[:, k] - prof.iloc[:, k]).abs()
        allowed = MC_SE * se.iloc[:, k] + PROFILE_WIDTH_ALLOWANCE * width
        assert (gap <= allowed).all(), pd.DataFrame({"gap": gap, "allowed": allowed})


def test_simulation_has_the_fitted_moments():
    # y* ~ N(Xβ̂, σ̂²I + ZΣ̂Zᵀ): within-batch covariance sd_batch², variance sd_batch² + σ̂²
    fit = fitted("dyestuff_reml")
    y = simulate_response(fit, 20_000, np.random.default_rng(SEED))
    codes = fit.model.design.terms[0].codes
    sd_b, sigma = fit.varcorr["sdcor"].iloc[0], fit.sigma
    cov = np.cov(y, rowvar=False)
    same = (codes[:, None] == codes[None, :]) & ~np.eye(len(codes), dtype=bool)
    other = codes[:, None] != codes[None, :]
    mc_se = np.sqrt((sd_b**2 + sigma**2) / y.shape[0])
    np.testing.assert_allclose(y.mean(axis=0), fit.model.design.X @ fit.fixef.to_numpy(), atol=4 * mc_se)
    np.testing.assert_allclose(np.diag(cov).mean(), sd_b**2 + sigma**2, rtol=0.02)
    np.testing.assert_allclose(cov[same].mean(), sd_b**2, rtol=0.03)
    assert abs(cov[other].mean()) < 0.03 * sd_b**2


def test_seed_reproduces_and_progress_false_is_silent(capsys):
    fit = fitted("dyestuff_ml")
    a = bootstrap(fit, 20, seed=7, progress=False)
    b = bootstrap(fit, 20, seed=7, progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    pd.testing.assert_frame_equal(a.t, b.t)
    assert list(a.t.columns) == list(estimates(fit).index)
    assert not bootstrap(fit, 20, seed=8, progress=False).t.equals(a.t)


def test_confint_boot_entry_point():
    fit = fitted("dyestuff_ml")
    out = confint(fit, method="boot", nsim=50, seed=3, progress=False, level=0.9, parm="beta_")
    assert list(out.index) == ["(Intercept)"]
    assert list(out.columns) == ["5 %", "95 %"]
    direct = bootstrap(fit, 50, seed=3, progress=False).confint("perc", 0.9).loc[["(Intercept)"]]
    pd.testing.assert_frame_equal(out, direct)


@pytest.mark.parametrize("kind", ["basic", "norm"])
def test_other_interval_types_are_centred_on_the_estimate(kind):
    result = booted("dyestuff_reml")
    ci = result.confint(kind)
    beta = ci.loc["(Intercept)"]
    t0 = result.t0["(Intercept)"]
    assert beta.iloc[0] < t0 < beta.iloc[1]


# -- statistic=: bootMer's FUN --------------------------------------------------------

def test_statistic_is_called_on_each_refit():
    """Replicate i's statistic is that of the model refitted to the i-th simulated response
    (lme4's refit is matched against R in test_predict.py)."""
    fit = fitted("sleepstudy_reml")
    stat = lambda f: {"r2": f.r2()["conditional"], "days": f.fixef["Days"]}  # noqa: E731
    boot = bootstrap(fit, 3, seed=7, progress=False, statistic=stat)
    assert list(boot.t.columns) == ["r2", "days"] and boot.t0["days"] == fit.fixef["Days"]
    ystar = simulate_response(fit, 3, np.random.default_rng(7))
    for i in range(3):
        again = fit.refit(ystar[i])
        np.testing.assert_allclose(boot.t.iloc[i].to_numpy(),
                                   [again.r2()["conditional"], again.fixef["Days"]], rtol=1e-7)


def test_statistic_of_the_default_estimates_gives_the_default_replicates():
    fit = fitted("dyestuff_reml")
    default = bootstrap(fit, 5, seed=3, progress=False)
    same = bootstrap(fit, 5, seed=3, progress=False, statistic=estimates)
    pd.testing.assert_frame_equal(same.t, default.t, rtol=1e-7)


def test_unnamed_statistics_are_numbered_and_shapes_checked():
    from mixedfit.errors import MixedFitError

    fit = fitted("dyestuff_reml")
    assert list(fit.bootstrap(2, seed=1, progress=False, statistic=lambda f: f.sigma).t.columns) == ["t1"]
    two = fit.bootstrap(2, seed=1, progress=False, statistic=lambda f: np.array([f.sigma, f.llf]))
    assert list(two.t.columns) == ["t1", "t2"]
    with pytest.raises(MixedFitError, match="1-D"):
        fit.bootstrap(2, seed=1, progress=False, statistic=lambda f: np.eye(2))
