"""drop1() against lmerTest 3.1-3 (F tests, Satterthwaite) and lme4 1.1-31 (test = "Chisq").

Expected values come from ``tests/lme4/postfit_cases.R``
(``tests/lme4/fixtures/postfit_cases.json``, ``drop1``): covariates,
factors, interactions (only the marginal terms are tested), a rank-deficient
fixed part (lmerTest's contrasts of what each term adds) and REML fits that
lme4 refits by ML.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mixedfit.errors import MixedFitError, ModelSpecError

from _postfit import cases, fitted

CASES = cases("drop1")
F_COLUMNS = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]


def _fit(case):
    return fitted("drop1", case["name"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_satterthwaite_drop1_matches_lmertest(case):
    table = _fit(case).drop1()
    ref = case["satterthwaite"]
    assert list(table.index) == ref["rownames"]
    for col in F_COLUMNS:
        np.testing.assert_allclose(table[col], np.array(ref[col], float), rtol=1e-6, err_msg=col)
    assert str(table) == case["printed"]


@pytest.mark.parametrize("case", [c for c in CASES if c["kenward_roger"]], ids=lambda c: c["name"])
def test_kenward_roger_drop1_matches_lmertest(case):
    fit = _fit(case)
    if fit.nobs > 5000:  # mixedfit refuses Kenward-Roger's dense n x n matrices there
        with pytest.raises(ModelSpecError, match="Kenward-Roger"):
            fit.drop1(ddf="kenward-roger")
        return
    table = fit.drop1(ddf="kenward-roger")
    ref = case["kenward_roger"]
    assert list(table.index) == ref["rownames"]
    for col in F_COLUMNS:
        np.testing.assert_allclose(table[col], np.array(ref[col], float), rtol=1e-6, err_msg=col)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_chisq_drop1_matches_lme4(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = _fit(case).drop1(test="Chisq")
    ref = case["chisq"]
    assert list(table.index) == ref["rownames"]
    np.testing.assert_array_equal(table["npar"], np.array(ref["npar"], float))
    np.testing.assert_allclose(table["AIC"], np.array(ref["AIC"], float), rtol=1e-9)
    # LRT: a difference of deviances (~1e3), zero where a term adds no column
    np.testing.assert_allclose(table["LRT"], np.array(ref["LRT"], float), rtol=1e-6,
                               atol=1e-12 * np.nanmax(ref["AIC"]))
    np.testing.assert_allclose(table["Pr(Chi)"], np.array(ref["Pr(Chi)"], float), rtol=1e-6)
    assert str(table) == case["chisq_printed"]


def test_unknown_test_and_ddf_refused():
    with pytest.raises(MixedFitError, match="Chisq"):
        _fit(CASES[0]).drop1(test="LRT")
    with pytest.raises(MixedFitError, match="test='Chisq'"):
        _fit(CASES[0]).drop1(ddf="lme4")
    with pytest.raises(ModelSpecError, match="ddf must be one of"):
        _fit(CASES[0]).drop1(ddf="satt")
