"""R's ``splines::ns`` and ``splines::bs`` (mixedfit.formula.splines) against R 4.2.

Reference bases: the ``bases`` section of
``tests/lme4/fixtures/predict_transform_cases.json``, written by
``tests/lme4/predict_transform_cases.R``.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from mixedfit.formula.splines import bs, ns

FIXTURE = Path(__file__).parents[1] / "lme4" / "fixtures" / "predict_transform_cases.json"
BASES = json.loads(FIXTURE.read_text())["bases"]
X = np.array([np.nan if v is None else v for v in BASES["x"]])
OUTSIDE = np.array(BASES["outside"], float)
EXACT = 1e-12


@pytest.mark.parametrize(("name", "spline", "kwargs"), [
    ("ns_df4", ns, {"df": 4}),
    ("ns_intercept", ns, {"df": 3, "intercept": True}),
    ("bs_df5_degree2", bs, {"df": 5, "degree": 2}),
    ("bs_knots", bs, {"knots": [2, 6]}),
])
def test_basis_and_knots_from_the_data(name, spline, kwargs):
    ref, state = BASES[name], {}
    basis = spline(X, _state=state, **kwargs)
    missing = np.isnan(X)
    assert np.flatnonzero(missing).tolist() == ref["missing"]
    assert np.isnan(basis[missing]).all()
    np.testing.assert_allclose(basis[~missing], ref["values"], rtol=EXACT, atol=EXACT)
    np.testing.assert_allclose(state["knots"], ref["knots"], rtol=EXACT)
    np.testing.assert_allclose(state["boundary"], ref["boundary"], rtol=EXACT)


@pytest.mark.parametrize("spline", [ns, bs])
def test_outside_the_boundary_knots(spline):
    # ns is linear beyond them, bs continues its end pieces
    basis = spline(OUTSIDE, knots=[3, 6], Boundary_knots=[0, 10], _state={})
    np.testing.assert_allclose(basis, BASES[f"{spline.__name__}_outside"], rtol=EXACT, atol=EXACT)


def test_new_values_reuse_the_knots_found():
    state = {}
    ns(X, df=4, _state=state)
    again = ns(OUTSIDE, df=4, _state=state)  # the knots of X, not of OUTSIDE
    np.testing.assert_allclose(again, ns(OUTSIDE, knots=state["knots"],
                                         Boundary_knots=state["boundary"], _state={}), rtol=EXACT)


@pytest.mark.parametrize("spline", [bs, ns])
def test_a_transform_pickles_by_name(spline):
    # formulaic wraps it at its first call (mixedfit.formula._compat); until then,
    # and after, processes that send it (multiprocessing, Dask) send its name
    assert pickle.loads(pickle.dumps(spline)) is spline
