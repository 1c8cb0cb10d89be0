"""R² and ICC against performance 0.10.2 (insight 0.19.0) on lmer fits.

Expected values come from ``tests/lme4/postfit_cases.R``
(``tests/lme4/fixtures/postfit_cases.json``, ``r2_icc``): random
intercepts, crossed and nested terms, correlated and uncorrelated slopes, a
factor slope, prior weights, and a singular fit (Dyestuff2).
"""

from __future__ import annotations

import math

import pytest

from mixedfit.errors import MixedFitWarning

from _postfit import at_theta, cases, fitted

CASES = cases("r2_icc")
FIELDS = {("r2", "conditional"): "r2_conditional", ("r2", "marginal"): "r2_marginal",
          ("icc", "adjusted"): "icc_adjusted", ("icc", "unadjusted"): "icc_unadjusted"}


@pytest.mark.parametrize("case", [c for c in CASES if not c["singular"]], ids=lambda c: c["name"])
def test_r2_and_icc_match_performance(case):
    # at lme4's θ: the variance split is checked apart from the optimizer (on
    # Machines' six-θ slope term mixedfit's optimum is 1.5e-7 lower than lme4's)
    fit = at_theta(fitted("r2_icc", case["name"]), case["theta"])
    values = {"r2": fit.r2(), "icc": fit.icc()}
    for (method, key), field in FIELDS.items():
        assert values[method][key] == pytest.approx(case[field], rel=1e-9, abs=1e-15), (method, key)


@pytest.mark.parametrize("case", [c for c in CASES if c["name"] in ("sleepstudy_reml", "penicillin")],
                         ids=lambda c: c["name"])
def test_r2_of_the_fit_itself(case):
    fit = fitted("r2_icc", case["name"])
    assert fit.r2()["conditional"] == pytest.approx(case["r2_conditional"], rel=1e-7)
    assert fit.icc()["adjusted"] == pytest.approx(case["icc_adjusted"], rel=1e-7)


@pytest.mark.parametrize("case", [c for c in CASES if c["singular"]], ids=lambda c: c["name"])
def test_singular_fit_has_no_random_variance(case):
    fit = fitted("r2_icc", case["name"])
    assert case["r2_conditional"] is None and case["icc_adjusted"] is None  # NA in R
    with pytest.warns(MixedFitWarning, match="singular"):
        r2 = fit.r2()
    assert math.isnan(r2["conditional"])
    assert r2["marginal"] == pytest.approx(case["r2_marginal"], abs=1e-12)
    with pytest.warns(MixedFitWarning, match="singular"):
        assert all(math.isnan(v) for v in fit.icc().values())


def test_singular_warning_points_at_the_callers_line():
    fit = fitted("r2_icc", "dyestuff2")
    with pytest.warns(MixedFitWarning) as caught:
        fit.icc()
    assert caught[0].filename == __file__
