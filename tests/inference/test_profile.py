"""Profile likelihood intervals against lme4's ``confint(fit, method = "profile")``.

Reference numbers: ``tests/lme4/fixtures/inference_profile.json``, written by
``tests/lme4/inference_cases.R`` (lme4 1.1-31) from the bundled data files.

Tolerances
----------
* interval bounds: within 0.5 % of the interval's width of lme4's (a bound
  that lme4 puts on a parameter's limit -- 0 for an sd -- must be that limit);
* the profile itself (``as.data.frame(profile(fit))``): the same points per
  parameter; where |ζ| ≤ qnorm(0.995) -- all that any interval up to 99 % reads
  -- ζ within 2e-3 and every parameter within 0.5 % of its interval width.
  (Further out, where a correlation reaches ±1, the re-optimized parameters
  sit on a flat ridge and both optimizers stop at different points of it.)
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import mixedfit as mf
from mixedfit.inference.confint import confint
from mixedfit.inference.lrt import refit_ml as ml_refit
from mixedfit.inference.parameters import format_perc, parameter_names
from mixedfit.inference.profile import (ProfileError, ProfileWarning, _HeldFixedEffect, natural_slopes, profile,
                                       profile_confint)
from mixedfit.model import Convergence, MixedModel
from mixedfit.results import MixedResults
from mixedfit.terms import build_design

from _cases import CASES, fitted, fixture

CRASH_FIXTURE = Path(__file__).parents[1] / "lme4" / "fixtures" / "crash_cases.json"
BOUND_TOL = 5e-3  # fraction of lme4's interval width


@lru_cache(maxsize=None)
def profiled(case: str) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return profile(fitted(case))


def _num(v) -> float:
    """A fixture number: null is NaN, "Inf"/"-Inf" are infinities."""
    if v is None:
        return math.nan
    return float(v)


def reference(case: str, key: str) -> pd.DataFrame:
    rec = fixture()["cases"][case][key]
    values = np.column_stack([[_num(v) for v in rec["lower"]], [_num(v) for v in rec["upper"]]])
    return pd.DataFrame(values, index=rec["rownames"], columns=rec["colnames"])


def assert_bounds_close(ours: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert list(ours.index) == list(ref.index)
    assert list(ours.columns) == list(ref.columns)
    width = (ref.iloc[:, 1] - ref.iloc[:, 0]).to_numpy()
    for k in range(2):
        o, r = ours.iloc[:, k].to_numpy(), ref.iloc[:, k].to_numpy()
        same_nan = np.isnan(o) == np.isnan(r)
        assert same_nan.all(), (ours, ref)
        ok = ~np.isnan(r)
        err = np.abs(o[ok] - r[ok]) / width[ok]
        assert np.all(err <= BOUND_TOL), pd.DataFrame({"ours": o, "lme4": r, "rel_to_width": np.abs(o - r) / width})


@pytest.mark.parametrize("level", [0.95, 0.9])
@pytest.mark.parametrize("case", CASES)
def test_profile_intervals_match_lme4(case, level):
    ours = profile_confint(profiled(case), level=level)
    assert_bounds_close(ours, reference(case, f"profile_{round(100 * level):02d}"))


def test_confint_entry_point_profiles_by_default():
    fit = fitted("dyestuff_ml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = confint(fit)
    assert_bounds_close(ours, reference("dyestuff_ml", "profile_95"))


@pytest.mark.parametrize(
    "parm, expected",
    [
        ("theta_", ["sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject", "sd_Days|Subject", "sigma"]),
        ("beta_", ["(Intercept)", "Days"]),
        (["Days", "sigma"], ["sigma", "Days"]),  # lme4 keeps its own order
        ([0, 5], ["sd_(Intercept)|Subject", "Days"]),
    ],
)
def test_parm_selects_rows_as_lme4(parm, expected):
    fit = fitted("sleepstudy_ml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = confint(fit, method="profile", parm=parm)
    assert list(ours.index) == expected
    assert_bounds_close(ours, reference("sleepstudy_ml", "profile_95").loc[expected])


def test_singular_fit_interval_starts_at_the_bound():
    ours = profile_confint(profiled("dyestuff2"))
    ref = reference("dyestuff2", "profile_95")
    assert ours.loc["sd_(Intercept)|Batch"].iloc[0] == ref.loc["sd_(Intercept)|Batch"].iloc[0] == 0.0
    prof = profiled("dyestuff2")
    sd = prof[prof[".par"] == "sd_(Intercept)|Batch"]
    assert (sd["sd_(Intercept)|Batch"] >= 0).all()  # never profiled below the bound


def test_reml_fit_is_profiled_through_its_ml_refit():
    reml, ml = fitted("sleepstudy_reml"), fitted("sleepstudy_ml")
    refit = ml_refit(reml)
    assert not refit.reml
    np.testing.assert_allclose(refit.optsummary.fmin, ml.optsummary.fmin, rtol=1e-10)
    np.testing.assert_allclose(refit.theta.to_numpy(), ml.theta.to_numpy(), rtol=0, atol=1e-4)


def test_profile_frame_matches_lme4():
    pf = fixture()["profile_frame"]
    case = pf["case"]
    ours = profiled(case)
    assert list(ours.columns) == pf["columns"]
    ref = pd.DataFrame(pf["values"])
    ref[".par"] = pf["par"]
    names = [c for c in pf["columns"] if not c.startswith(".")]
    ci = reference(case, "profile_95")
    width = (ci.iloc[:, 1] - ci.iloc[:, 0]).to_dict()
    cut = norm.ppf(0.995)
    assert list(dict.fromkeys(ours[".par"])) == list(dict.fromkeys(pf["par"]))
    for par in dict.fromkeys(pf["par"]):
        o = ours[ours[".par"] == par].sort_values(par).reset_index(drop=True)
        r = ref[ref[".par"] == par].sort_values(par).reset_index(drop=True)
        assert len(o) == len(r), par
        inner = (r[".zeta"].abs() <= cut).to_numpy()
        assert inner.sum() >= 4
        np.testing.assert_allclose(o[".zeta"][inner], r[".zeta"][inner], atol=2e-3, err_msg=par)
        for col in names:
            err = np.abs(o[col] - r[col]).to_numpy()[inner] / width[col]
            assert err.max() <= BOUND_TOL, (par, col, err.max())
        np.testing.assert_array_equal(o[".focal"], o[par])


def test_profile_is_zero_at_the_estimate_and_increasing():
    prof = profiled("penicillin")
    fit = ml_refit(fitted("penicillin"))
    for par in dict.fromkeys(prof[".par"]):
        rows = prof[prof[".par"] == par].sort_values(par)
        assert (np.diff(rows[".zeta"].to_numpy()) > 0).all(), par
        at_opt = rows[rows[".zeta"] == 0]
        assert len(at_opt) == 1
    assert prof.attrs["base_deviance"] == fit.optsummary.fmin


def test_which_profiles_only_the_chosen_parameters():
    fit = fitted("sleepstudy_ml")
    prof = profile(fit, which=["sigma", "beta_"])
    assert list(dict.fromkeys(prof[".par"])) == ["sigma", "(Intercept)", "Days"]
    assert list(prof.columns[1:-2]) == parameter_names(fit)


def test_non_optimal_fit_raises_like_lme4():
    # an ML fit moved off its optimum: profiling finds a lower deviance
    fit = fitted("dyestuff_ml")
    opt = fit.optsummary
    moved = type(opt)(**{**opt.__dict__, "final": opt.final * 1.3, "fmin": fit.model.objective(opt.final * 1.3)})
    off = MixedResults(fit.model, moved, Convergence([], 0))
    with pytest.raises(ProfileError, match="lower deviance") as err:
        profile(off, which="theta_")
    # the message gives the drop, not two numbers printed equal
    drop = float(re.search(r"(\S+) below the fit's", str(err.value)).group(1))
    assert 0 < drop < off.optsummary.fmin - fit.optsummary.fmin + 1e-6


@lru_cache(maxsize=None)
def crash_case(case: str) -> tuple[MixedResults, dict]:
    """A singular random-slope fit of tests/lme4/crash_cases.R, and lme4's record of it."""
    rec = json.loads(CRASH_FIXTURE.read_text())["profiles"][case]
    data = pd.DataFrame({"y": rec["data"]["y"], "x": rec["data"]["x"],
                         "g": pd.Categorical(rec["data"]["g"], categories=rec["data"]["g_levels"])})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mf.mixed(rec["formula"], data, reml=rec["reml"]), rec


@pytest.mark.parametrize("case", ["singular_slope", "flat_ridge"])
def test_singular_slope_profiles_as_lme4(case):
    # singular_slope: the correlation is -1 a rounding error beyond its bound, which
    # NLopt 2.11 refused (nlopt.invalid_argument); flat_ridge: profiling finds
    # deviances 5e-9 below the fit's, where lme4 finishes
    fit, rec = crash_case(case)
    np.testing.assert_allclose(fit.optsummary.fmin, rec["deviance"], rtol=1e-10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = profile_confint(profile(fit))
    ref = rec["profile_95"]
    ref = pd.DataFrame(np.column_stack([[_num(v) for v in ref["lower"]], [_num(v) for v in ref["upper"]]]),
                       index=ref["rownames"], columns=ref["colnames"])
    assert_bounds_close(ours, ref)
    assert set(rec["warnings"]) <= {str(w.message) for w in caught}


def test_a_flat_ridge_is_profiled_from_the_refit():
    """A fit stopped short on the flat ridge: profiling finds the lower deviance, warns, and profiles from a refit.

    Whether BOBYQA itself stops short here, as lme4 does (5e-9 above the
    ridge's lowest point), depends on the last bits of the BLAS kernels: it did
    with OpenBLAS's Haswell kernels and does not with its SkylakeX ones.  So
    the fit is set 1e-4 off in θ₁ (1.6e-7 above, within the ridge's 1e-6).
    """
    fit, _ = crash_case("flat_ridge")
    theta = fit.optsummary.final + np.array([1e-4, 0.0, 0.0])
    opt = dataclasses.replace(fit.optsummary, final=theta, fmin=fit.model.objective(theta))
    short = MixedResults(fit.model, opt, fit.model.convergence(opt))
    with pytest.warns(ProfileWarning, match="profiling found a deviance .* below the fit's: profiled from a refit"):
        prof = profile(short, which="theta_")
    base = prof.attrs["base_deviance"]
    assert 0 < short.optsummary.fmin - base < 1e-6
    assert base <= fit.optsummary.fmin + 1e-12  # the refit reaches the ridge's lowest point, or the fit's


@pytest.mark.parametrize("k", range(9))
def test_percent_labels_as_lme4(k):
    rec = fixture()["format_perc"]
    level = rec["levels"][k]
    a = (1 - level) / 2
    assert format_perc([a, 1 - a]) == rec["labels"][k]


def test_natural_slopes_are_scipys_natural_cubic_spline():
    # the back-spline's slopes at the knots, once from scipy.interpolate (its import cost the first profile 0.1 s)
    from scipy.interpolate import CubicSpline

    rng = np.random.default_rng(7)
    prof = profiled("sleepstudy_ml")
    cases = [(prof.loc[prof[".par"] == name, name].to_numpy(float), prof.loc[prof[".par"] == name, ".zeta"].to_numpy(float))
             for name in dict.fromkeys(prof[".par"])]
    for n in (4, 5, 12, 40):
        x = np.cumsum(rng.uniform(1e-3, 2.0, n)) * 10.0 ** rng.integers(-6, 6)
        cases.append((x, np.cumsum(rng.normal(0.0, 1.0, n))))
    assert len(cases) == 10
    for x, z in cases:
        x, z = x[np.isfinite(x) & np.isfinite(z)], z[np.isfinite(x) & np.isfinite(z)]
        theirs = CubicSpline(x, z, bc_type="natural")(x, 1)
        np.testing.assert_allclose(natural_slopes(x, z), theirs, rtol=1e-12, atol=1e-12 * np.abs(theirs).max())


@pytest.mark.parametrize("column", ["(Intercept)", "Days", "big"])
def test_a_held_fixed_effect_gives_the_reduced_models_deviance_sigma_and_beta(column):
    # lme4 profiles β_j by refitting without x_j, moved to the offset; the profile reads the same deviance off
    # the full model's factor.  ``big`` (mean 1000, SD 1) is centered along the intercept (Frame), so that
    # the intercept's β is a combination of the engine's coefficients.
    rng = np.random.default_rng(4)
    data = mf.load_dataset("sleepstudy").assign(w=rng.uniform(0.5, 2.0, 180), o=rng.normal(0.0, 3.0, 180),
                                                g=rng.integers(0, 9, 180).astype(str),
                                                big=1000.0 + rng.normal(0.0, 1.0, 180))
    design = build_design("Reaction ~ Days + big + (Days|Subject) + (1|g)", data, weights="w", offset="o")
    model = MixedModel(design, reml=False)
    assert model.cross.frame.centers.any()
    j = design.xnames.index(column)
    held = _HeldFixedEffect(model, j)
    for f in (0.0, 7.5, -240.0):
        reduced = MixedModel(dataclasses.replace(design, X=np.delete(design.X, j, axis=1), offset=design.offset
                                                 + f * design.X[:, j], xnames=[n for n in design.xnames
                                                                                if n != column]), reml=False)
        for theta in (np.array([0.9, 0.1, 0.3, 0.5]), np.array([2.0, -0.4, 0.0, 1.5])):
            assert held.deviance(theta, f) == pytest.approx(reduced.objective(theta), rel=1e-12)
            fac = reduced.factor(theta)
            sigma, beta = held.sigma_and_beta(theta, f)
            assert sigma == pytest.approx(np.sqrt(reduced.cross.logdets(fac)[2] / design.nobs), rel=1e-10)
            np.testing.assert_allclose(np.delete(beta, j), reduced.cross.beta(fac), rtol=1e-9)
            assert beta[j] == f
