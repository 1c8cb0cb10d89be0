"""ranova() against lmerTest 3.1-3: rows, reduced formulas, likelihoods, tests and printout.

Expected values come from ``tests/lme4/postfit_cases.R``
(``tests/lme4/fixtures/postfit_cases.json``, ``ranova``): slopes reduced to
intercepts, ``||`` and nested terms, crossed intercepts, a factor slope,
weights, and models whose last random term leaves a linear model (REML and
ML log-likelihoods of ``lm``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mixedfit as mf
from mixedfit.errors import ModelSpecError

from _postfit import cases, fitted

CASES = cases("ranova")


@pytest.fixture(scope="module")
def tables():
    from mixedfit.inference.ranova import ranova

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {c["name"]: ranova(fitted("ranova", c["name"])) for c in CASES}


def _column(case, name):
    return np.array(case["table"][name], dtype=float)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_rows_and_reduced_formulas_match_lmertest(tables, case):
    table = tables[case["name"]]
    assert list(table.index) == case["table"]["rownames"]
    assert list(table.attrs["formulae"].values()) == case["formulae"]
    assert table["npar"].tolist() == case["table"]["npar"]
    np.testing.assert_array_equal(table["Df"], _column(case, "Df"))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_likelihoods_and_tests_match_lmertest(tables, case):
    table = tables[case["name"]]
    loglik = _column(case, "logLik")
    np.testing.assert_allclose(table["logLik"], loglik, rtol=1e-9)
    np.testing.assert_allclose(table["AIC"], _column(case, "AIC"), rtol=1e-9)
    np.testing.assert_allclose(table["LRT"], _column(case, "LRT"), rtol=0, atol=4e-9 * abs(loglik[0]))
    np.testing.assert_allclose(table["Pr(>Chisq)"], _column(case, "Pr(>Chisq)"), rtol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_prints_as_lmertest(tables, case):
    assert str(tables[case["name"]]) == case["printed"]


def test_changed_rows_refused():
    data = mf.load_dataset("sleepstudy")
    data["x"] = np.where(np.arange(len(data)) % 7 == 0, np.nan, data["Days"])
    fit = mf.mixed("Reaction ~ Days + (0 + x|Subject)", data)
    with pytest.raises(ModelSpecError, match="number of rows"):  # (1 | Subject) uses all 180
        fit.ranova()
