"""fit.update() against R's update(fit, ...): formula, criterion and estimates.

Expected values come from ``tests/lme4/postfit_cases.R``
(``tests/lme4/fixtures/postfit_cases.json``, ``update_fits``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mixedfit as mf
from mixedfit.errors import ModelSpecError

FIXTURE = Path(__file__).parent / "lme4" / "fixtures" / "postfit_cases.json"
FITS = {c["label"]: c for c in json.loads(FIXTURE.read_text(encoding="utf-8"))["update_fits"]}

# the R call of each fixture: update(fit, formula., REML = ...)
EDITS = {
    "minus_days": (". ~ . - Days", {}),
    "one_sided": ("~ . + I(Days^2)", {}),
    "log_response": ("log(.) ~ .", {}),
    "random_intercept": (". ~ . - (Days | Subject) + (1 | Subject)", {}),
    "ml": (None, {"reml": False}),
    "formula_and_ml": (". ~ . - Days", {"reml": False}),
    "uncorrelated_minus_days": (". ~ . - Days", {}),
}


@pytest.fixture(scope="module")
def sleep_fit():
    return mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))


@pytest.mark.parametrize("label", list(EDITS))
def test_update_matches_r(label):
    case = FITS[label]
    fit = mf.mixed(case["case"]["formula"], mf.load_dataset(case["case"]["dataset"]), reml=case["case"]["reml"])
    formula, changes = EDITS[label]
    new = fit.update(formula, **changes)
    assert new.formula == case["formula"]
    assert new.reml == case["reml"]
    assert new.nobs == case["nobs"]
    np.testing.assert_allclose(new.fixef[list(case["fixef"])], list(case["fixef"].values()), rtol=1e-7)
    np.testing.assert_allclose(new.llf, case["loglik"], rtol=1e-9)


def test_update_data_replaces_the_data_and_its_name():
    data = mf.load_dataset("sleepstudy")
    fit = mf.mixed("Reaction ~ Days + (Days|Subject)", data, data_name="sleepstudy")
    half = data[data["Days"] < 5]
    new = fit.update(data=half)
    assert new.nobs == len(half) and new.data_name is None
    assert fit.update(data=half, data_name="half").data_name == "half"


def test_update_refuses_unknown_arguments_and_fits_without_data(sleep_fit):
    with pytest.raises(ModelSpecError, match="REML"):
        sleep_fit.update(REML=False)
    with pytest.raises(ModelSpecError, match="mixedfit.mixed"):
        sleep_fit.refit(sleep_fit.model.design.y).update(reml=False)
