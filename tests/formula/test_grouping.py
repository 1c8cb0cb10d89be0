"""Grouping factors and factors of numbers read as R reads them.

Expected values come from ``tests/lme4/input_cases.R`` (R 4.2, lme4 1.1-31),
stored in ``tests/lme4/fixtures/input_cases.json``: R's ``factor()`` matches
``as.character()`` of numbers, so doubles that print alike at 15 significant
digits (``0.3`` and ``0.1 + 0.2``) are one level; a logical column with NA
is R's logical (column ``bTRUE``).  Integer ids beyond int64 keep their
exact values (R has no such integers, so the labels are the ids themselves).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfit as mf
from mixedfit.formula.grouping import interaction
from mixedfit.formula.rvalues import RFactor, as_factor

FIXTURE = Path(__file__).parents[1] / "lme4" / "fixtures" / "input_cases.json"
CASES = json.loads(FIXTURE.read_text(encoding="utf-8"))
FLOAT = CASES["float_groups"]
LOGICAL = CASES["logical_na"]
OBJ_REL = 1e-9  # objective: as tests/test_lme4_fixtures.py
REL = 1e-6  # θ, β, conditional modes of these well-conditioned fits


def fit(formula: str, **columns) -> mf.MixedResults:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.errors.MixedFitWarning)
        return mf.mixed(formula, mf.load_dataset("sleepstudy").assign(**columns))


def matches_lme4(ours: mf.MixedResults, ref: dict) -> None:
    assert ours.xnames == ref["beta_names"]
    assert ours.nobs == ref["nobs"] and ours.ngroups == ref["ngroups"]
    assert ours.optsummary.fmin - ref["objective"] <= OBJ_REL * abs(ref["objective"])
    np.testing.assert_allclose(ours.theta.to_numpy(), ref["theta"], rtol=REL)
    np.testing.assert_allclose(ours.fixef.to_numpy(), ref["beta"], rtol=REL)
    np.testing.assert_allclose(ours.sigma, ref["sigma"], rtol=REL)


def test_doubles_that_print_alike_are_one_level():
    factor = as_factor(np.array(FLOAT["values"]))
    assert factor.levels == FLOAT["levels"]
    assert len(set(FLOAT["values"])) == 2 * len(factor.levels)  # the data do differ


def test_categorical_of_doubles_that_print_alike_is_one_level():
    factor = as_factor(pd.Categorical(FLOAT["g"]))
    assert factor.levels == FLOAT["levels"]
    np.testing.assert_array_equal(factor.codes, as_factor(np.array(FLOAT["g"])).codes)


def test_float_grouping_factor_as_lme4():
    ours = fit(FLOAT["formula"], g=FLOAT["g"])
    matches_lme4(ours, FLOAT)
    ranef = ours.ranef()["g"]
    assert list(ranef.index) == FLOAT["ranef"]["rownames"]
    np.testing.assert_allclose(ranef["(Intercept)"], FLOAT["ranef"]["(Intercept)"], rtol=REL)


def test_float_fixed_factor_as_lme4():
    matches_lme4(fit(FLOAT["fixed_formula"], g=FLOAT["g"]), FLOAT["fixed"])


def test_predict_maps_each_double_to_its_printed_level():
    ours = fit(FLOAT["formula"], g=FLOAT["g"])
    new = pd.DataFrame({"Days": FLOAT["predict_days"], "g": FLOAT["values"]})
    np.testing.assert_allclose(ours.predict(new).to_numpy(), FLOAT["predict"], rtol=REL)


def test_uint64_ids_keep_their_exact_values():
    data = mf.load_dataset("sleepstudy")
    big = np.uint64(2**63) + data["Subject"].cat.codes.to_numpy().astype(np.uint64)
    ours = fit("Reaction ~ Days + (1 | id)", id=big)
    reference = fit("Reaction ~ Days + (1 | Subject)")
    expected = [str(2**63 + k) for k in range(18)]
    assert list(ours.ranef()["id"].index) == expected
    np.testing.assert_allclose(ours.theta.to_numpy(), reference.theta.to_numpy(), rtol=1e-10)
    new = pd.DataFrame({"Days": [0.0], "id": np.array([big[-1]], dtype=np.uint64)})
    np.testing.assert_allclose(ours.predict(new).to_numpy(),
                               reference.predict(data.iloc[[-1]].assign(Days=0.0)).to_numpy(),
                               rtol=1e-10)


@pytest.mark.parametrize("dtype", ["boolean", object])
def test_logical_predictor_with_missing_values_as_lme4(dtype):
    b = pd.Series(LOGICAL["b"], dtype=dtype)
    matches_lme4(fit(LOGICAL["formula"], b=b), LOGICAL)


def test_logical_grouping_factor_with_missing_values():
    b = pd.Series(LOGICAL["b"], dtype="boolean")
    ours = fit("Reaction ~ Days + (1 | b)", b=b)
    assert list(ours.ranef()["b"].index) == ["FALSE", "TRUE"]
    assert ours.nobs == LOGICAL["nobs"]
    # lme4: a missing grouping value is refused, or with allow.new.levels a new level
    new = pd.DataFrame({"Days": [1.0, 1.0], "b": pd.array([True, None], dtype="boolean")})
    with pytest.raises(mf.errors.DataError, match="NAs are not allowed"):
        ours.predict(new)
    population = ours.predict(new, re_form="~0").to_numpy()
    predicted = ours.predict(new, allow_new_levels=True).to_numpy()
    shift = [ours.ranef()["b"].loc["TRUE", "(Intercept)"], 0.0]
    np.testing.assert_allclose(predicted, population + shift, rtol=1e-12)


def test_nullable_integer_ids_with_missing_values_keep_their_exact_values():
    # as floats, 10**15 and 10**15 + 2 print alike at 15 digits (R would merge such
    # doubles): integer ids are integers, so every subject stays its own group
    data = mf.load_dataset("sleepstudy")
    ids = pd.array(10**15 + 2 * data["Subject"].cat.codes.to_numpy().astype(np.int64),
                   dtype="Int64")
    ids[3] = pd.NA
    ours = fit("Reaction ~ Days + (1 | id)", id=ids)
    assert list(ours.ranef()["id"].index) == [str(10**15 + 2 * k) for k in range(18)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.errors.MixedFitWarning)
        reference = mf.mixed("Reaction ~ Days + (1 | Subject)", data.drop(index=[3]))
    np.testing.assert_allclose(ours.theta.to_numpy(), reference.theta.to_numpy(), rtol=1e-10)
    assert ours.nobs == reference.nobs == 179


@pytest.mark.parametrize("seed", range(3))
def test_interaction_counts_as_the_sort_does(seed):
    """``a:b`` from counting the combinations (``distinct``) is the one from sorting them."""
    rng = np.random.default_rng(seed)
    a = RFactor(rng.integers(0, 40, 500), [f"a{i}" for i in range(40)])
    b = RFactor(rng.integers(0, 30, 500), [f"b{i}" for i in range(30)])  # 1,200 combinations: not all present
    present, codes = np.unique(a.codes * 30 + b.codes, return_inverse=True)
    ab = interaction(a, b)
    assert ab.levels == [f"a{c // 30}:b{c % 30}" for c in present]
    np.testing.assert_array_equal(ab.codes, codes)
