"""Responses and predictors with a large mean, against lme4 (issue "Reliability").

``tests/lme4/shift_cases.R`` fits one simulated data set with y shifted by up
to 1e12, and a predictor by up to 1e8 (and made epoch seconds), each shifted
value exact in double precision: every shifted data set is the unshifted one,
exactly.  Its truth is lme4's fit of the unshifted data (``reference``) with
the intercept moved; lme4's own fits of the shifted data drift from it (at
y + 1e12 its objective is off by 4.5e-4 and 7.5e-3), so mixedfit is held to
the reference, with the project's tolerances (tests/test_lme4_fixtures.py):

* the objective *function* at the reference θ equals the reference objective
  to 1e-9 relative, both ways (a cross-product engine that loses r² gave a
  REML criterion far below the optimum);
* the fit's objective is not above the reference's by more than 1e-9
  relative; θ within 2e-3 (lme4 stops BOBYQA at a tolerance), σ within 0.2 %,
  β within 0.002 standard errors after the shift is mapped back;
* lme4's starting θ, the same on shifted data (from the group means' variances);
* no refusal (``exact linear function``) and no warning that the unshifted
  data do not give.

Where lme4's rank check finds the shifted predictor collinear with the
intercept and drops it (x + 1e8), mixedfit drops it too and reaches lme4's
optimum of that model.
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfit as mf
from mixedfit.errors import MixedFitWarning

FIXTURE = json.loads((Path(__file__).parent / "lme4" / "fixtures" / "shift_cases.json").read_text())
CASES = FIXTURE["fits"]
OBJ_REL = 1e-9  # tests/test_lme4_fixtures.py
REL = 2e-3  # σ: 0.2 %
BETA_SE = 2e-3  # β: 0.002 SE
THETA_TOL = 2e-3  # θ: lme4 stops its optimizer at a tolerance (tests/test_errors.py's hard cases)


def _id(case: dict) -> str:
    parts = [case["formula"].replace(" ", ""), "REML" if case["reml"] else "ML"]
    if case["shift_y"]:
        parts.append(f"y+{case['shift_y']:g}")
    if case["scale_x"] != 1 or case["shift_x"]:
        parts.append(f"x*{case['scale_x']:g}+{case['shift_x']:g}")
    if case["weights"]:
        parts.append("weighted, offset")
    return " ".join(parts)


def data(case: dict) -> pd.DataFrame:
    d = FIXTURE["data"]
    x = np.asarray(d["x"], float)
    return pd.DataFrame({"g": d["g"], "x": x, "y": np.asarray(d["y0"], float) + case["shift_y"],
                         "xs": x * case["scale_x"] + case["shift_x"], "w": d["w"], "off": d["off"]})


@lru_cache(maxsize=None)
def fitted(index: int):
    case = CASES[index]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = mf.mixed(case["formula"], data(case), reml=case["reml"], weights=case["weights"],
                       offset=case["offset"])
    return fit, caught


def truth(case: dict) -> dict:
    """lme4's fit of the unshifted data, mapped to the shifted data (same model); else lme4's own."""
    ref = case["reference"]
    if ref["beta_names"] != case["beta_names"]:  # lme4 dropped the shifted predictor
        return case
    slope = np.asarray(ref["beta"][1:], float) / case["scale_x"]
    intercept = ref["beta"][0] + case["shift_y"] - slope.sum() * case["shift_x"]
    se = np.asarray(ref["se"], float)
    return {**ref, "beta": np.r_[intercept, slope], "se": np.r_[np.nan, se[1:] / case["scale_x"]]}


INDICES = pytest.mark.parametrize("index", range(len(CASES)), ids=[_id(c) for c in CASES])


@INDICES
def test_objective_function_is_exact_at_the_reference_theta(index):
    case, (fit, _) = CASES[index], fitted(index)
    true = truth(case)
    at_reference = fit.model.objective(np.asarray(true["theta"], float))
    assert abs(at_reference - true["objective"]) <= OBJ_REL * abs(true["objective"]), at_reference


@INDICES
def test_fit_reaches_the_reference_optimum(index):
    case, (fit, _) = CASES[index], fitted(index)
    true = truth(case)
    assert fit.xnames == case["beta_names"]
    assert fit.optsummary.fmin - true["objective"] <= OBJ_REL * abs(true["objective"])
    np.testing.assert_allclose(fit.llf, -0.5 * fit.optsummary.fmin)
    np.testing.assert_allclose(fit.theta.to_numpy(), true["theta"], rtol=THETA_TOL, atol=THETA_TOL)
    np.testing.assert_allclose(fit.sigma, true["sigma"], rtol=REL)
    # β within 0.002 SE; the intercept's SE moves with the predictor's shift: ours is the scale
    se = np.where(np.isnan(true["se"]), fit.bse.to_numpy(), true["se"])
    np.testing.assert_array_less(np.abs(fit.fixef.to_numpy() - true["beta"]), BETA_SE * se)


@INDICES
def test_start_is_lme4s_unshifted_start(index):
    case, (fit, _) = CASES[index], fitted(index)
    np.testing.assert_allclose(fit.optsummary.initial, truth(case)["start_theta"], rtol=1e-9)


@INDICES
def test_no_warning_the_unshifted_data_do_not_give(index):
    case, (_, caught) = CASES[index], fitted(index)
    assert all(issubclass(w.category, MixedFitWarning) for w in caught), [str(w.message) for w in caught]
    # lme4 warns of the predictors' scales on the epoch seconds, and mixedfit with it.
    expected = [w for w in case["warnings"] if "rescaling" in w]
    assert [str(w.message) for w in caught if "rank deficient" not in str(w.message)] == expected


def test_a_predictor_lme4_finds_collinear_with_the_intercept_is_dropped_as_lme4_drops_it():
    (index,) = [i for i, c in enumerate(CASES) if c["beta_names"] != c["reference"]["beta_names"]]
    fit, caught = fitted(index)
    assert fit.xnames == ["(Intercept)"] and fit.model.design.dropped_xnames == ["xs"]
    assert any("rank deficient so dropping 1 column" in str(w.message) for w in caught)


# -- everything computed from the fit follows the shift ------------------------------
# Against mixedfit's own fit of the unshifted data (held to lme4's by the tests
# above and tests/test_lme4_fixtures.py).  What depends on θ alone agrees to
# ~1e-9 (the two optimizers stop within that of each other); fitted values,
# residuals and predictions carry y's own rounding at the shift (ulp(1e12) =
# 1.2e-4), and bootstrap replicates that of the simulated responses.
DOWNSTREAM_RTOL = 1e-8


def _unshifted_and_shifted(formula: str, reml: bool, shift: float, **kwargs):
    base = data({"shift_y": 0.0, "scale_x": 1.0, "shift_x": 0.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (mf.mixed(formula, base, reml=reml, **kwargs),
                mf.mixed(formula, base.assign(y=base["y"] + shift), reml=reml, **kwargs))


@pytest.mark.parametrize("formula, reml, kwargs", [
    ("y ~ x + (x|g)", True, {}),
    ("y ~ x + (1|g)", False, {"weights": "w", "offset": "off"}),
])
@pytest.mark.parametrize("shift", [1e8, 1e12])
def test_estimates_tables_and_predictions_follow_the_shift(formula, reml, kwargs, shift):
    f0, f1 = _unshifted_and_shifted(formula, reml, shift, **kwargs)
    close = dict(rtol=DOWNSTREAM_RTOL, atol=0)
    np.testing.assert_allclose(f1.theta, f0.theta, **close)
    np.testing.assert_allclose([f1.sigma, f1.llf, f1.deviance], [f0.sigma, f0.llf, f0.deviance], **close)
    np.testing.assert_allclose(f1.fixef.to_numpy() - [shift, 0.0], f0.fixef.to_numpy(),
                               rtol=DOWNSTREAM_RTOL, atol=4 * np.spacing(shift))
    np.testing.assert_allclose(f1.vcov, f0.vcov, **close)
    r0, r1 = f0.ranef(condvar=True)["g"], f1.ranef(condvar=True)["g"]
    np.testing.assert_allclose(r1, r0, rtol=0, atol=DOWNSTREAM_RTOL * np.abs(r0.to_numpy()).max())
    np.testing.assert_allclose(r1.attrs["condsd"], r0.attrs["condsd"], **close)
    rounding = DOWNSTREAM_RTOL * f0.sigma + 4 * np.spacing(shift)
    np.testing.assert_allclose(f1.fittedvalues - shift, f0.fittedvalues, rtol=0, atol=rounding)
    np.testing.assert_allclose(f1.resid, f0.resid, rtol=0, atol=rounding)
    new = data({"shift_y": 0.0, "scale_x": 1.0, "shift_x": 0.0}).iloc[::17]
    np.testing.assert_allclose(f1.predict(new) - shift, f0.predict(new), rtol=0, atol=rounding)
    t0, t1 = f0.coef_table(), f1.coef_table()  # lmerTest's Satterthwaite table
    np.testing.assert_allclose(t1[["Std. Error", "df"]], t0[["Std. Error", "df"]], **close)
    np.testing.assert_allclose(t1["t value"].iloc[1:], t0["t value"].iloc[1:], **close)


def test_profile_bootstrap_refit_and_likelihood_ratio_follow_the_shift():
    shift = 1e8
    f0, f1 = _unshifted_and_shifted("y ~ x + (1|g)", False, shift)
    moved = np.array([0.0, 0.0, shift, 0.0])[:, None]  # rows: sd, sigma, (Intercept), x
    np.testing.assert_allclose(f1.confint() - moved, f0.confint(), rtol=1e-7)  # profile: BOBYQA's tolerance
    np.testing.assert_allclose(f1.confint(method="wald") - moved, f0.confint(method="wald"), rtol=DOWNSTREAM_RTOL)
    b0, b1 = f0.bootstrap(4, seed=3, progress=False), f1.bootstrap(4, seed=3, progress=False)
    # the simulated responses round to ulp(1e8) = 1.5e-8: their fits agree to that
    np.testing.assert_allclose(b1.t - np.array([0.0, 0.0, shift, 0.0]), b0.t, rtol=1e-6)
    again0, again1 = f0.refit(f0.model.design.y[::-1]), f1.refit(f1.model.design.y[::-1])
    np.testing.assert_allclose(again1.theta, again0.theta, rtol=DOWNSTREAM_RTOL)
    g0, g1 = _unshifted_and_shifted("y ~ x + (x|g)", False, shift)
    np.testing.assert_allclose(mf.anova(f1, g1).to_numpy(float), mf.anova(f0, g0).to_numpy(float),
                               rtol=DOWNSTREAM_RTOL, equal_nan=True)
