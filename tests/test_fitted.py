"""The fitted numbers (mixedfit.fitted) lose nothing: pickling, the JSON record, and fitting twice.

* ``pickle`` gives back a fit with the same estimates and the same summary;
* :meth:`MixedResults.to_dict` holds every estimate and is strict JSON;
* fitting the same data twice gives bit-identical results.
"""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfit as mf
from mixedfit.errors import MixedFitWarning

MODELS = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "sleepstudy", {}),
    "weights_offset_na": ("Reaction ~ Days + (Days || Subject)", "sleepstudy",
                          {"weights": "w", "offset": "off"}),
    "crossed_ml": ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", {"reml": False}),
    "singular": ("Yield ~ 1 + (1 | Batch)", "Dyestuff2", {}),
    "rank_deficient_factor": ("score ~ Machine + (0 + Machine | Worker)", "Machines", {}),
}


def data_for(name: str) -> pd.DataFrame:
    formula, dataset, _ = MODELS[name]
    data = mf.load_dataset(dataset)
    if name == "weights_offset_na":
        data["w"] = 1.0 + data["Days"] % 3
        data["off"] = 0.5 * data["Days"]
        data.loc[[3, 17], "Reaction"] = np.nan
    return data


def fit_model(name: str) -> mf.MixedResults:
    formula, dataset, kwargs = MODELS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixedFitWarning)
        return mf.mixed(formula, data_for(name), data_name=dataset, **kwargs)


@pytest.fixture(scope="module", params=list(MODELS))
def model(request) -> tuple[str, mf.MixedResults]:
    return request.param, fit_model(request.param)


@pytest.fixture
def fit(model) -> mf.MixedResults:
    return model[1]


def assert_identical(a: mf.MixedResults, b: mf.MixedResults) -> None:
    """Exactly equal estimates, random effects and printed summaries."""
    for what in ("theta", "fixef", "bse", "fittedvalues"):
        pd.testing.assert_series_equal(getattr(a, what), getattr(b, what), check_exact=True)
    pd.testing.assert_frame_equal(a.vcov, b.vcov, check_exact=True)
    pd.testing.assert_frame_equal(a.varcorr, b.varcorr, check_exact=True)
    for group, frame in a.ranef(condvar=True).items():
        other = b.ranef(condvar=True)[group]
        pd.testing.assert_frame_equal(frame, other, check_exact=True)
        pd.testing.assert_frame_equal(frame.attrs["condsd"], other.attrs["condsd"],
                                      check_exact=True)
    assert (a.sigma, a.llf, a.optsummary.fmin, a.optsummary.feval) == \
        (b.sigma, b.llf, b.optsummary.fmin, b.optsummary.feval)
    assert a.convergence_messages == b.convergence_messages
    assert str(a.summary()) == str(b.summary()) and str(a) == str(b)


def test_pickle_round_trip(fit):
    again = pickle.loads(pickle.dumps(fit))
    assert_identical(fit, again)
    assert again.to_dict() == fit.to_dict()


def test_refitting_the_same_data_is_bit_identical(model):
    name, fit = model
    assert_identical(fit, fit_model(name))


def test_to_dict_is_strict_json_and_holds_every_estimate(fit):
    record = json.loads(json.dumps(fit.to_dict(), allow_nan=False))
    assert record["formula"] == fit.formula and record["reml"] == fit.reml
    assert record["nobs"] == fit.nobs and record["n_dropped"] == fit.n_dropped
    assert record["ngroups"] == fit.ngroups
    assert record["theta"] == fit.theta.to_dict()
    assert list(record["beta"]) == fit.xnames and record["beta"] == fit.fixef.to_dict()
    assert record["se"] == fit.bse.to_dict()
    assert record["vcov"]["names"] == fit.xnames
    np.testing.assert_array_equal(record["vcov"]["values"], fit.vcov.to_numpy())
    assert (record["sigma"], record["logLik"], record["AIC"], record["BIC"]) == \
        (fit.sigma, fit.llf, fit.aic, fit.bic)
    assert len(record["varcorr"]) == len(fit.varcorr)
    assert [row["grp"] for row in record["varcorr"]] == list(fit.varcorr["grp"])
    for group, frame in fit.ranef(condvar=True).items():
        entry = record["ranef"][group]
        assert entry["levels"] == [str(v) for v in frame.index]
        assert entry["columns"] == list(frame.columns)
        np.testing.assert_array_equal(entry["values"], frame.to_numpy())
        np.testing.assert_array_equal(entry["condsd"], frame.attrs["condsd"].to_numpy())
    optimizer = record["optimizer"]
    assert (optimizer["name"], optimizer["feval"], optimizer["fmin"]) == \
        (fit.optimizer_name, fit.optsummary.feval, fit.optsummary.fmin)
    assert record["convergence"]["messages"] == fit.convergence_messages
    assert record["convergence"]["is_singular"] == fit.is_singular


def test_to_dict_writes_undefined_numbers_as_null():
    record = fit_model("sleepstudy").to_dict()
    assert record["optimizer"]["lower"] == [0.0, None, 0.0]  # θ's off-diagonal is unbounded
    assert record["REML_criterion"] is not None
    ml = fit_model("crossed_ml").to_dict()
    assert ml["REML_criterion"] is None and ml["deviance"] == -2 * ml["logLik"]


def test_singular_fit_records_lme4s_message():
    record = fit_model("singular").to_dict()
    assert record["convergence"]["messages"] == ["boundary (singular) fit: see help('isSingular')"]
    assert record["convergence"]["is_singular"] is True
