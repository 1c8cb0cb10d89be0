"""Satterthwaite t and F tests against lmerTest 3.1-3.

Reference numbers: ``tests/lme4/fixtures/inference_lrt_satt.json``, written by
``tests/lme4/inference2_cases.R``.  Two kinds of check:

* end to end (our fit, our θ): degrees of freedom within 1 % of lmerTest's;
* at lme4's own θ ("pinned"), so that optimizer differences on flat optima
  (Penicillin's θ differs from lme4's by 1e-4 at equal deviance) do not mask
  the Satterthwaite machinery itself: p-values within 1e-4 relative, and
  lmerTest's ``vcov_varpar`` and Type III hypothesis matrices.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfit as mf
from mixedfit.inference.numderiv import richardson_hessian
from mixedfit.errors import ModelSpecError
from mixedfit.inference import fixed_tests, type3
from mixedfit.inference import satterthwaite as st
from mixedfit.model import Convergence
from mixedfit.results import MixedResults
from conftest import fit_quietly

FIXTURE = Path(__file__).parents[1] / "lme4" / "fixtures" / "inference_lrt_satt.json"
CASES = json.loads(FIXTURE.read_text())["satterthwaite"]
NAMES = sorted(CASES)

DF_REL = 1e-2  # Satterthwaite df: 1 %
P_REL = 1e-4  # p-values and test statistics: 1e-4 relative


def case_data(case: dict) -> pd.DataFrame:
    data = mf.load_dataset(case["dataset"])
    if case["unordered_factors"]:  # as the R script: ordered factors made plain factors
        for col in data.columns:
            if isinstance(data[col].dtype, pd.CategoricalDtype) and data[col].cat.ordered:
                data[col] = data[col].cat.as_unordered()
    return data


@lru_cache(maxsize=None)
def fitted(name: str) -> MixedResults:
    case = CASES[name]
    return fit_quietly(case["formula"], case_data(case), reml=case["reml"])


@lru_cache(maxsize=None)
def pinned(name: str) -> MixedResults:
    """Our fit's model, evaluated at lme4's θ instead of our optimum."""
    fit = fitted(name)
    theta = np.asarray(CASES[name]["theta"], float)
    opt = dataclasses.replace(fit.optsummary, final=theta, fmin=fit.model.objective(theta))
    return MixedResults(fit.model, opt, Convergence([], 0))


def column(table: dict, name: str) -> np.ndarray:
    return np.asarray(table[name], dtype=float)


@pytest.mark.parametrize("name", NAMES)
def test_coef_table_layout(name):
    table = fixed_tests.coef_table(fitted(name))
    ref = CASES[name]["coef_satterthwaite"]
    assert list(table.columns) == ref["columns"]
    assert list(table.index) == ref["rownames"]


@pytest.mark.parametrize("name", NAMES)
def test_coef_df_end_to_end(name):
    table = fixed_tests.coef_table(fitted(name))
    ref = CASES[name]["coef_satterthwaite"]
    np.testing.assert_allclose(table["df"], column(ref, "df"), rtol=DF_REL)
    np.testing.assert_allclose(table["Std. Error"], column(ref, "Std. Error"), rtol=2e-3)


@pytest.mark.parametrize("name", NAMES)
def test_coef_pvalues_at_lme4_theta(name):
    table = fixed_tests.coef_table(pinned(name))
    ref = CASES[name]["coef_satterthwaite"]
    for col in ("df", "t value", "Pr(>|t|)"):
        np.testing.assert_allclose(table[col], column(ref, col), rtol=P_REL, err_msg=col)


@pytest.mark.parametrize("name", NAMES)
def test_vcov_varpar_at_lme4_theta(name):
    info = st.varpar_info(pinned(name))
    ref = np.asarray(CASES[name]["vcov_varpar"], float)
    np.testing.assert_allclose(info.vcov_varpar, ref, rtol=1e-4, atol=1e-8 * np.abs(ref).max())


@pytest.mark.parametrize("name", NAMES)
def test_anova_type3_end_to_end(name):
    table = fixed_tests.anova_type3(fitted(name))
    ref = CASES[name]["anova_type3"]
    assert list(table.index) == ref["rownames"]
    assert list(table.columns) == ref["columns"]
    assert table.attrs["heading"] == CASES[name]["anova_heading"]
    np.testing.assert_array_equal(table["NumDF"], column(ref, "NumDF"))
    np.testing.assert_allclose(table["DenDF"], column(ref, "DenDF"), rtol=DF_REL)


@pytest.mark.parametrize("name", NAMES)
def test_anova_type3_at_lme4_theta(name):
    table = fixed_tests.anova_type3(pinned(name))
    ref = CASES[name]["anova_type3"]
    for col in ("Sum Sq", "Mean Sq", "DenDF", "F value", "Pr(>F)"):
        np.testing.assert_allclose(table[col], column(ref, col), rtol=P_REL, err_msg=col)


@pytest.mark.parametrize("name", [n for n in NAMES if isinstance(CASES[n]["hypotheses"], dict)])
def test_type3_hypotheses_match_lmertest(name):
    ours = type3.type3_contrasts(fitted(name))
    ref = CASES[name]["hypotheses"]
    assert list(ours) == list(ref)
    for term, L in ref.items():
        np.testing.assert_allclose(ours[term], np.asarray(L, float), atol=1e-12, err_msg=term)


def test_term_columns_from_names():
    terms, intercept, kinds = st.fixed_term_columns(fitted("cake_factors"))
    assert intercept
    assert [t.label for t in terms] == ["recipe", "temperature", "recipe:temperature"]
    assert [len(t.columns) for t in terms] == [2, 5, 10]
    assert kinds["recipe"] == ["B", "C"]


def test_numeric_prefix_of_another_variable_is_not_a_factor():
    data = mf.load_dataset("sleepstudy")
    data["Days2"] = data["Days"] ** 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mf.mixed("Reaction ~ Days + Days2 + (1|Subject)", data)
    terms, _, kinds = st.fixed_term_columns(fit)
    assert [t.columns for t in terms] == [[1], [2]]
    assert kinds == {"Days": None, "Days2": None}


def test_richardson_derivatives_are_exact_for_polynomials():
    f = lambda v: v[0] ** 3 + v[0] * v[1] ** 2  # noqa: E731
    x = np.array([1.5, -0.5])
    H = richardson_hessian(f, x)
    np.testing.assert_allclose(H, [[6 * x[0], 2 * x[1]], [2 * x[1], 2 * x[0]]], rtol=1e-8)
    J = st.richardson_jacobian(lambda v: np.array([f(v), v[1]]), x)
    np.testing.assert_allclose(J, [[3 * x[0] ** 2 + x[1] ** 2, 2 * x[0] * x[1]], [0, 1]], rtol=1e-8)


def test_devfun_vp_at_optimum_is_the_objective():
    # at σ̂ the unprofiled criterion equals the profiled one (up to Σlog w = 0)
    fit = fitted("sleepstudy_ml")
    varpar = np.append(fit.theta.to_numpy(), fit.sigma)
    assert st.devfun_vp(fit.model, varpar) == pytest.approx(fit.optsummary.fmin, rel=1e-12)


def test_unknown_ddf_is_refused():
    with pytest.raises(ModelSpecError, match="'Satterthwaite', 'Kenward-Roger', 'lme4'"):
        fixed_tests.coef_table(fitted("sleepstudy_reml"), ddf="containment")


# -- Kenward-Roger (pbkrtest) ------------------------------------------------------
KR_NAMES = [n for n in NAMES if "coef_kenward_roger" in CASES[n]]


@pytest.mark.parametrize("name", KR_NAMES)
def test_kenward_roger_coef_end_to_end(name):
    table = fixed_tests.coef_table(fitted(name), ddf="kenward-roger")
    ref = CASES[name]["coef_kenward_roger"]
    assert list(table.index) == ref["rownames"]
    np.testing.assert_allclose(table["df"], column(ref, "df"), rtol=DF_REL)


@pytest.mark.parametrize("name", KR_NAMES)
def test_kenward_roger_at_lme4_theta(name):
    table = fixed_tests.coef_table(pinned(name), ddf="Kenward-Roger")
    ref = CASES[name]["coef_kenward_roger"]
    for col in ref["columns"]:
        np.testing.assert_allclose(table[col], column(ref, col), rtol=P_REL, err_msg=col)
    anova = fixed_tests.anova_type3(pinned(name), ddf="kenward-roger")
    ref = CASES[name]["anova_type3_kenward_roger"]
    assert list(anova.index) == ref["rownames"]
    assert anova.attrs["heading"].endswith("with Kenward-Roger's method")
    for col in ref["columns"]:
        np.testing.assert_allclose(anova[col], column(ref, col), rtol=P_REL, err_msg=col)


def test_kenward_roger_needs_reml():
    with pytest.raises(ModelSpecError, match="only available for REML"):
        fixed_tests.coef_table(fitted("sleepstudy_ml"), ddf="kenward-roger")


def test_results_are_cached_per_fit():
    fit = fitted("machines_nested")
    assert st.varpar_info(fit) is st.varpar_info(fit)


# -- one ddf normaliser for coef_table, anova and summary ----------------------------

@pytest.mark.parametrize("spelling, method", [
    ("Satterthwaite", "Satterthwaite"), ("satterthwaite", "Satterthwaite"),
    ("SATTERTHWAITE", "Satterthwaite"), ("Kenward-Roger", "Kenward-Roger"),
    ("kenward-roger", "Kenward-Roger"), ("Kenward Roger", "Kenward-Roger"),
    ("kenward_roger", "Kenward-Roger"), ("lme4", "lme4"), ("LME4", "lme4")])
def test_ddf_spellings(spelling, method):
    assert st.normalize_ddf(spelling) == method


@pytest.mark.parametrize("bad", ["containment", "KR", "", None, 1])
def test_unknown_ddf_lists_the_methods(bad):
    with pytest.raises(ModelSpecError, match="one of 'Satterthwaite', 'Kenward-Roger', 'lme4'"):
        st.normalize_ddf(bad)


@pytest.mark.parametrize("spelling", ["Kenward Roger", "kenward-roger", "KENWARD_ROGER"])
def test_summary_and_coef_table_take_the_same_spellings(spelling):
    fit = fitted("sleepstudy_reml")
    pd.testing.assert_frame_equal(fit.coef_table(ddf=spelling), fit.coef_table(ddf="Kenward-Roger"))
    assert str(fit.summary(ddf=spelling)) == str(fit.summary(ddf="Kenward-Roger"))
    assert "t-tests use Kenward-Roger's method" in str(fit.summary(ddf=spelling))


def test_ddf_lme4_is_lme4s_table():
    fit = fitted("sleepstudy_reml")
    expected = pd.DataFrame({"Estimate": fit.fixef, "Std. Error": fit.bse, "t value": fit.tvalues})
    pd.testing.assert_frame_equal(fit.coef_table(ddf="lme4"), expected)
    assert str(fit.summary(ddf="LME4")) == str(fit.summary())
