"""mixedfit.tidy against broom.mixed's conventions and lme4's / lmerTest's numbers.

broom.mixed is not installed with R here, so its layout is taken from its
sources (``tidy.merMod``, ``ran_pars_name``, ``glance.merMod``): the
variance-parameter names are built from ``as.data.frame(VarCorr(fit))``'s
``var1``/``var2`` exactly as ``ran_pars_name`` builds them, and the numbers
are lme4's and lmerTest's from the fixtures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm, t as t_dist

import mixedfit as mf
from mixedfit.errors import MixedFitError, MixedFitWarning

FIXTURES = Path(__file__).parent / "lme4" / "fixtures"


def load(case: str) -> dict:
    return json.loads((FIXTURES / f"{case}.json").read_text(encoding="utf-8"))


def ran_pars_name(var1, var2) -> str:
    """broom.mixed's ``ran_pars_name`` with its default prefixes and ``sep1 = "__"``."""
    v = [x for x in (var1, var2) if x is not None] or ["Observation"]
    return ("sd", "cor")[len(v) - 1] + "__" + ".".join(v)


def fit_case(case: str):
    fx = load(case)
    data = mf.load_dataset(fx["dataset"])
    return fx, mf.mixed(fx["formula"], data, reml=fx["reml"])


@pytest.fixture(scope="module")
def sleep():
    return fit_case("sleepstudy_reml")


@pytest.mark.parametrize("case", ["sleepstudy_reml", "sleepstudy_uncorr", "penicillin", "machines_nested"])
def test_ran_pars_match_lme4_varcorr(case):
    fx, fit = fit_case(case)
    got = fit.tidy(effects="ran_pars")
    assert list(got.columns) == ["effect", "group", "term", "estimate"]
    expected = {(r["grp"], ran_pars_name(r["var1"], r["var2"])): r["sdcor"] for r in fx["varcorr"]}
    assert set(zip(got["group"], got["term"])) == set(expected)
    for group, term, est in zip(got["group"], got["term"], got["estimate"]):
        assert est == pytest.approx(expected[group, term], rel=2e-3, abs=2e-3)


def test_ran_pars_in_lower_tri_order():
    """The order of ``as.data.frame(VarCorr(fit), order = "lower.tri")``, as R printed it."""
    fit = mf.mixed("score ~ Machine + (Machine|Worker)", mf.load_dataset("Machines"))
    assert fit.tidy(effects="ran_pars")["term"].tolist() == [
        "sd__(Intercept)", "cor__(Intercept).MachineB", "cor__(Intercept).MachineC",
        "sd__MachineB", "cor__MachineB.MachineC", "sd__MachineC", "sd__Observation",
    ]


def test_fixed_is_lmertest_coefficient_table(sleep):
    fx, fit = sleep
    got = fit.tidy()
    assert list(got.columns) == ["effect", "group", "term", "estimate", "std.error", "statistic", "df", "p.value"]
    sat = fx["inference"]["satterthwaite"]
    assert got["term"].tolist() == sat["rownames"]
    assert (got["effect"] == "fixed").all() and got["group"].isna().all()
    for ours, theirs in [("estimate", "Estimate"), ("std.error", "Std. Error"), ("statistic", "t value"),
                         ("df", "df"), ("p.value", "Pr(>|t|)")]:
        np.testing.assert_allclose(got[ours], sat[theirs], rtol=2e-3)


def test_fixed_without_ddf_is_lme4_table(sleep):
    fx, fit = sleep
    got = fit.tidy(ddf=None)
    assert list(got.columns) == ["effect", "group", "term", "estimate", "std.error", "statistic"]
    np.testing.assert_allclose(got["std.error"], fx["se"], rtol=2e-3)


def test_wald_intervals(sleep):
    fx, fit = sleep
    lme4 = fx["inference"]["confint_wald"]
    plain = fit.tidy(ddf=None, conf_int=True)
    np.testing.assert_allclose(plain[["conf.low", "conf.high"]], np.column_stack(
        [lme4["2.5 %"][-2:], lme4["97.5 %"][-2:]]), rtol=1e-4)
    # lmerTest fits: t quantiles with Satterthwaite's df (broom.mixed's cifun)
    tt = fit.tidy(conf_int=True, conf_level=0.9)
    half = t_dist.ppf(0.95, tt["df"]) * tt["std.error"]
    np.testing.assert_allclose(tt["conf.high"] - tt["estimate"], half)
    pars = fit.tidy(effects="ran_pars", conf_int=True)
    assert pars[["conf.low", "conf.high"]].isna().all().all()


def test_profile_intervals_match_lme4_and_reuse_a_profile(sleep, monkeypatch):
    fx, fit = sleep
    lme4 = fx["inference"]["confint_profile"]
    expected = np.column_stack([lme4["2.5 %"], lme4["97.5 %"]])
    got = fit.tidy(effects=["ran_pars", "fixed"], conf_int=True, conf_method="profile")
    assert got["effect"].tolist() == ["fixed"] * 2 + ["ran_pars"] * 4  # broom.mixed's order
    np.testing.assert_allclose(got[["conf.low", "conf.high"]], np.vstack([expected[4:], expected[:4]]),
                               rtol=2e-3, atol=2e-3)
    prof = fit.profile(progress=False)
    monkeypatch.setattr(type(fit), "confint", lambda *a, **k: pytest.fail("profiled again"))
    again = fit.tidy(effects=["fixed", "ran_pars"], conf_int=True, conf_method="profile", profile=prof)
    np.testing.assert_allclose(again[["conf.low", "conf.high"]], got[["conf.low", "conf.high"]])


def test_boot_intervals_come_from_one_bootstrap(sleep):
    _, fit = sleep
    got = fit.tidy(effects=["fixed", "ran_pars"], conf_int=True, conf_method="boot", nsim=40, seed=5,
                   progress=False)
    direct = fit.confint(method="boot", nsim=40, seed=5, progress=False)
    np.testing.assert_allclose(got[["conf.low", "conf.high"]].to_numpy(),
                               np.vstack([direct.to_numpy()[4:], direct.to_numpy()[:4]]))


def test_ran_vals_are_conditional_modes(sleep):
    fx, fit = sleep
    got = fit.tidy(effects="ran_vals", conf_int=True)
    assert list(got.columns) == ["effect", "group", "level", "term", "estimate", "std.error",
                                 "conf.low", "conf.high"]
    ref = fx["ranef"][0]
    modes = np.asarray(ref["values"])
    # as.data.frame(ranef(fit)): term by term, levels within
    assert got["level"].tolist() == ref["levels"] * 2
    assert got["term"].tolist() == ["(Intercept)"] * 18 + ["Days"] * 18
    np.testing.assert_allclose(got["estimate"], modes.ravel(order="F"), atol=2e-3 * 12)
    np.testing.assert_allclose(got["std.error"], np.asarray(ref["condsd"]).ravel(order="F"), rtol=2e-3)
    z = norm.ppf(0.975)
    np.testing.assert_allclose(got["conf.high"], got["estimate"] + z * got["std.error"])
    with pytest.raises(MixedFitError, match="Wald"):
        fit.tidy(effects="ran_vals", conf_int=True, conf_method="profile")


def test_ran_coefs_are_coef(sleep):
    fx, fit = sleep
    got = fit.tidy(effects="ran_coefs")
    assert list(got.columns) == ["effect", "group", "level", "term", "estimate"]
    np.testing.assert_allclose(got["estimate"], np.asarray(fx["coef"][0]["values"]).ravel(order="F"),
                               rtol=1e-3)
    with pytest.warns(MixedFitWarning, match="no intervals"):
        assert fit.tidy(effects="ran_coefs", conf_int=True)["conf.low"].isna().all()


def test_unknown_effect_is_an_error(sleep):
    with pytest.raises(MixedFitError, match="ran_modes"):
        sleep[1].tidy(effects=["fixed", "ran_modes"])


@pytest.mark.parametrize("case, column", [("sleepstudy_reml", "REMLcrit"), ("sleepstudy_ml", "deviance")])
def test_glance(case, column):
    fx, fit = fit_case(case)
    got = fit.glance()
    assert list(got.columns) == ["nobs", "sigma", "logLik", "AIC", "BIC", column, "df.residual"]
    crit = fx["REMLcrit"] if fx["reml"] else fx["deviance_ML"]
    expected = [fx["nobs"], fx["sigma"], fx["logLik"], fx["AIC"], fx["BIC"], crit, fx["df_resid"]]
    np.testing.assert_allclose(got.iloc[0].to_numpy(float), expected, rtol=1e-6)
    assert got["nobs"].dtype.kind == "i" and len(got) == 1


# -- GLMMs: broom.mixed's layout for a glmerMod, z statistics, checked against the fit itself ------
def _glmm(family="binomial"):
    cbpp = mf.load_dataset("cbpp")
    if family == "binomial":
        return mf.mixed("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    return mf.mixed("size ~ period + (1 | herd)", cbpp, family=mf.family("Gamma", link="log"))


def test_glmm_tidy_fixed_has_z_statistics_and_no_df():
    fit = _glmm()
    out = fit.tidy()
    assert list(out.columns) == ["effect", "group", "term", "estimate", "std.error", "statistic", "p.value"]
    assert list(out["term"]) == list(fit.xnames)
    np.testing.assert_allclose(out["estimate"], fit.fixef.to_numpy(), rtol=1e-15)
    np.testing.assert_allclose(out["std.error"], fit.bse.to_numpy(), rtol=1e-15)
    np.testing.assert_allclose(out["statistic"], (fit.fixef / fit.bse).to_numpy(), rtol=1e-15)
    np.testing.assert_allclose(out["p.value"], 2 * norm.sf(np.abs(out["statistic"])), rtol=1e-12)
    with pytest.raises(mf.errors.ModelSpecError, match="Wald z tests"):
        fit.tidy(ddf="satterthwaite")


def test_glmm_tidy_ran_pars_and_wald_limits():
    fit = _glmm()
    out = fit.tidy(effects=["fixed", "ran_pars"], conf_int=True)
    pars = out[out["effect"] == "ran_pars"]
    assert list(pars["term"]) == ["sd__(Intercept)"]  # no Residual row for a binomial fit
    np.testing.assert_allclose(pars["estimate"], fit.varcorr["sdcor"].to_numpy(), rtol=1e-15)
    assert pars[["conf.low", "conf.high"]].isna().all().all()  # lme4's Wald: NA for variance parameters
    fixed = out[out["effect"] == "fixed"]
    z = norm.ppf(0.975)
    np.testing.assert_allclose(fixed["conf.low"], fixed["estimate"] - z * fixed["std.error"], rtol=1e-12)
    np.testing.assert_allclose(fixed["conf.high"], fixed["estimate"] + z * fixed["std.error"], rtol=1e-12)


def test_glmm_with_a_scale_has_a_residual_row():
    fit = _glmm("Gamma")
    pars = fit.tidy(effects="ran_pars")
    assert list(pars["group"]) == list(fit.varcorr["grp"]) == ["herd", "Residual"]
    np.testing.assert_allclose(pars["estimate"], fit.varcorr["sdcor"].to_numpy(), rtol=1e-15)
    assert pars["estimate"].iloc[-1] == fit.sigma


def test_glmm_glance_is_the_fits_statistics():
    fit = _glmm()
    row = fit.glance().iloc[0]
    assert list(fit.glance().columns) == ["nobs", "sigma", "logLik", "AIC", "BIC", "deviance", "df.residual"]
    assert (row["nobs"], row["df.residual"]) == (fit.nobs, fit.df_resid)
    np.testing.assert_allclose(row[["sigma", "logLik", "AIC", "BIC", "deviance"]].to_numpy(float),
                               [fit.sigma, fit.llf, fit.aic, fit.bic, fit.deviance], rtol=1e-15)
