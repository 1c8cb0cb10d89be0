"""No public entry point modifies the data it is given.

The data carry what tends to get modified in place: missing values, a
categorical with an unused category, text, integers, a non-default index and
``attrs``.  After each call the frame is compared with a deep copy taken
before (values, dtypes, index, categories, attrs).
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfit as mf
from mixedfit.cli import main
from mixedfit.errors import MixedFitWarning

FORMULA = "Reaction ~ Days + half + (1 | Subject)"


def make_data() -> pd.DataFrame:
    data = mf.load_dataset("sleepstudy")
    data["Subject"] = data["Subject"].cat.add_categories(["999"])
    data["half"] = np.where(data["Days"] < 5, "early", "late")
    data["count"] = np.arange(len(data), dtype=np.int64)
    data["w"] = 1.0 + data["Days"] % 3
    data.loc[[4, 9], "Reaction"] = np.nan
    data.index = pd.Index([f"r{i}" for i in range(len(data))], name="row")
    data.attrs["source"] = "lme4::sleepstudy"
    return data


def assert_unchanged(data: pd.DataFrame, before: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(data, before, check_exact=True, check_index_type=True,
                                  check_column_type=True, check_categorical=True,
                                  check_flags=True)
    assert data.attrs == before.attrs
    assert list(data["Subject"].cat.categories) == list(before["Subject"].cat.categories)


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return make_data()


@pytest.fixture(scope="module")
def fit(data) -> mf.MixedResults:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixedFitWarning)
        return mf.mixed(FORMULA, data, weights="w")


@pytest.fixture
def unchanged(data):
    """Check, after the test, that the shared data are as before it."""
    before = copy.deepcopy(data)
    yield
    assert_unchanged(data, before)


def test_mixed(unchanged):
    data = make_data()
    before = copy.deepcopy(data)
    mf.mixed(FORMULA, data, weights="w", offset=np.zeros(len(data)))
    assert_unchanged(data, before)


def test_mixed_with_a_dict_of_arrays(unchanged):
    columns = {name: values.to_numpy(copy=True) for name, values in make_data().items()}
    before = copy.deepcopy(columns)
    mf.mixed(FORMULA, columns)
    for name, values in columns.items():
        np.testing.assert_array_equal(values, before[name])
        assert values.dtype == before[name].dtype


def test_predict(fit, data, unchanged):
    newdata = data.iloc[:12].copy()
    newdata.loc["r0", "Subject"] = "999"
    before = copy.deepcopy(newdata)
    fit.predict(newdata, allow_new_levels=True)
    fit.predict(newdata, re_form="~0")
    assert_unchanged(newdata, before)


def test_confint_and_profile(fit, unchanged):
    fit.confint(method="wald")
    fit.confint(method="profile")
    fit.profile()


def test_bootstrap(fit, unchanged):
    fit.bootstrap(3, seed=1, progress=False)


def test_anova(fit, data, unchanged):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixedFitWarning)
        smaller = mf.mixed("Reaction ~ Days + (1 | Subject)", data, weights="w")
        mf.anova(smaller, fit)


def test_simulate_and_refit(fit, unchanged):
    new_y = fit.simulate(nsim=1, seed=3)["sim_1"]
    before = new_y.copy(deep=True)
    fit.refit(new_y)
    pd.testing.assert_series_equal(new_y, before, check_exact=True)


def test_cli(tmp_path, capsys, unchanged):
    path = tmp_path / "sleep.csv"
    make_data().to_csv(path)
    content = path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixedFitWarning)
        assert main(["fit", "Reaction ~ Days + (1 | Subject)", "--csv", str(path),
                     "--weights", "w"]) == 0
    assert "Number of obs: 178" in capsys.readouterr().out
    assert path.read_bytes() == content
