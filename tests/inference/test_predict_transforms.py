"""predict(newdata) of models with data-dependent transforms, against lme4 1.1-31.

Reference predictions: ``tests/lme4/fixtures/predict_transform_cases.json``,
written by ``tests/lme4/predict_transform_cases.R``: ``poly`` (orthogonal and
raw), ``scale``, ``log``, ``I()``, ``factor()``, ``ns`` and ``bs``, in the
fixed part, in random-effects terms and in interactions with a factor, on new
rows outside the training range and of new grouping levels.  lme4 transforms
new rows with what the transforms found on the data fitted (its ``predvars``);
so must we.
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
from mixedfit.errors import DataError, FormulaError
from mixedfit.inference.predict import fixed_matrix

FIXTURE = Path(__file__).parents[1] / "lme4" / "fixtures" / "predict_transform_cases.json"
CASES = json.loads(FIXTURE.read_text())["cases"]

# Our θ agrees with lme4's to 1e-8 or better on the random-intercept fits and
# to ~1e-4 on random_scale, random_poly and the glmer (their predictions then
# differ by up to 7e-6 and 2e-5); the transforms themselves are checked at
# lme4's own β, to rounding.
REL = {"random_scale": 1e-5, "random_poly": 1e-5, "glmer_scale_poly": 3e-5}
EXACT = 1e-10


@lru_cache(maxsize=None)
def fitted(name: str):
    case = CASES[name]
    kwargs = {"family": case["family"]} if case.get("family") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mf.mixed(case["formula"], mf.load_dataset(case["dataset"]), **kwargs)


def newdata(name: str) -> pd.DataFrame:
    return pd.DataFrame(CASES[name]["newdata"])


@pytest.mark.parametrize("name", list(CASES))
def test_columns_and_assign_are_lme4s(name):
    fit, case = fitted(name), CASES[name]
    assert list(fit.xnames) == case["xnames"]
    design = fit.model.design
    assert [design.assign[c] for c in fit.xnames] == case["assign"]


@pytest.mark.parametrize("name", list(CASES))
def test_new_rows_are_transformed_as_the_data_fitted(name):
    # X of the new rows times lme4's β is lme4's re.form = NA prediction
    fit, case = fitted(name), CASES[name]
    X = fixed_matrix(fit, newdata(name))
    beta = np.array([case["fixef"][c] for c in fit.xnames])
    np.testing.assert_allclose(X @ beta, case["fixed"]["values"], rtol=EXACT)


@pytest.mark.parametrize("name", list(CASES))
def test_predictions(name):
    fit, case, rel = fitted(name), CASES[name], REL.get(name, 1e-6)
    new = newdata(name)
    np.testing.assert_allclose(fit.predict(new, allow_new_levels=True).to_numpy(),
                               case["all"]["values"], rtol=rel)
    np.testing.assert_allclose(fit.predict(new, re_form="NA").to_numpy(), case["fixed"]["values"], rtol=rel)
    training = mf.load_dataset(case["dataset"])
    np.testing.assert_allclose(fit.predict(training).to_numpy(), case["training"]["values"], rtol=rel)
    np.testing.assert_allclose(fit.predict(training).to_numpy(), fit.predict().to_numpy(), rtol=1e-12)


def test_prediction_leaves_the_fit_and_the_data_unchanged():
    fit = fitted("factor_by_ns")
    state = repr(fit.model.design.transforms)
    new = newdata("factor_by_ns")
    before = new.copy()
    fit.predict(new, allow_new_levels=True)
    assert repr(fit.model.design.transforms) == state
    pd.testing.assert_frame_equal(new, before)


def test_an_unseen_level_of_a_factor_transform():
    new = pd.DataFrame({"Days": [1.0, 10.0], "Subject": ["308", "308"]})
    with pytest.raises(DataError, match=r"factor\(Days\).*new level\(s\) 10"):
        fitted("factor").predict(new)


def test_categories_where_the_fit_had_numbers():
    new = pd.DataFrame({"Days": ["a", "b"], "Subject": ["308", "308"]})
    with pytest.raises(DataError, match="'Days' holds numbers in the data fitted but categories"):
        fitted("I_square").predict(new)


def test_unknown_transform_stays_an_error():
    with pytest.raises(FormulaError, match="unknown function 'loess'"):
        mf.mixed("Reaction ~ loess(Days) + (1|Subject)", mf.load_dataset("sleepstudy"))


# -- predict takes what mixed takes --------------------------------------------------


def test_arrow_table_as_newdata():
    pa = pytest.importorskip("pyarrow")
    new = newdata("poly")
    table = pa.Table.from_pandas(new, preserve_index=False)
    np.testing.assert_allclose(fitted("poly").predict(table, allow_new_levels=True).to_numpy(),
                               CASES["poly"]["all"]["values"], rtol=1e-6)


def test_polars_frame_as_newdata():
    pl = pytest.importorskip("polars")
    new = pl.DataFrame(CASES["scale"]["newdata"])
    np.testing.assert_allclose(fitted("scale").predict(new, allow_new_levels=True).to_numpy(),
                               CASES["scale"]["all"]["values"], rtol=1e-6)
