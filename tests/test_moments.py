"""method="moments": Gao & Owen's moment equations, GLS β by backfitting, Dask, refusals.

Expected numbers come from R (tests/lme4/moments_cases.R: the lecture's
``anova(lm(y ~ g))`` estimator), from dense matrix algebra on small designs
(the traces the O(N) formulas stand for, GLS and BLUPs with V inverted), and
from the exact REML fit within the tolerances of
benchmarks/moments_agreement.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfit as mf
from mixedfit.errors import MixedFitWarning, ModelSpecError
from mixedfit.moments import MomentStats, moment_equations, mixed_moments
from mixedfit.terms import build_design

ROOT = Path(__file__).resolve().parents[1]
CASES = json.loads((ROOT / "tests/lme4/fixtures/moments_cases.json").read_text())
sys.path.insert(0, str(ROOT / "benchmarks"))
import moments_agreement  # noqa: E402


def _vc(fit) -> pd.Series:
    return fit.varcorr.set_index("grp")["vcov"]


# -- the lecture's one-way ANOVA estimator ----------------------------------------


@pytest.mark.parametrize("case, dataset, y, g", [
    ("dyestuff", "Dyestuff", "Yield", "Batch"),
    ("dyestuff_unbalanced", "Dyestuff", "Yield", "Batch"),
    ("hsb82", "Hsb82", "mAch", "school"),
])
def test_one_way_is_the_anova_estimator(case, dataset, y, g):
    """τ̂² = (MSG − MSE)/n₀ and σ̂² = MSE (Hoff's lecture; Searle et al. 1992 §3.5 for n₀), from R."""
    expected = CASES[case]
    data = mf.load_dataset(dataset).iloc[expected["rows"]]
    fit = mf.mixed(f"{y} ~ 1 + ({1}|{g})", data, method="moments")
    vc = _vc(fit)
    assert vc[g] == pytest.approx(expected["tau2"], rel=1e-10)
    assert vc["Residual"] == pytest.approx(expected["sigma2"], rel=1e-10)


def test_balanced_one_way_reml_is_the_anova_estimator():
    """lme4's REML on balanced Dyestuff equals the moment estimates (to lme4's optimizer)."""
    expected = CASES["dyestuff"]
    fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"), method="moments")
    assert _vc(fit)["Batch"] == pytest.approx(expected["reml_tau2"], rel=1e-7)
    assert fit.fixef["(Intercept)"] == pytest.approx(expected["mean"], rel=1e-12)
    # GLS SE of the mean in a balanced one-way design: sqrt((τ² n + σ²) / N)
    n, N = 5, 30
    assert fit.bse["(Intercept)"] == pytest.approx(np.sqrt((expected["tau2"] * n + expected["sigma2"]) / N),
                                                  rel=1e-10)


@pytest.mark.parametrize("case, dataset", [("penicillin", "Penicillin"), ("pastes", "Pastes")])
def test_balanced_crossed_and_nested_are_lme4_reml(case, dataset):
    """Balanced designs (Penicillin crossed, Pastes nested): the moment estimates are REML's.

    lme4 stops BOBYQA at xtol_rel = 1e-4 in θ, so its variances (θ² σ²) carry about 2e-4.
    """
    expected = json.loads((ROOT / f"tests/lme4/fixtures/{case}.json").read_text())
    fit = mf.mixed(expected["formula"], mf.load_dataset(dataset), method="moments")
    np.testing.assert_allclose(fit.varcorr["vcov"], [r["vcov"] for r in expected["varcorr"]], rtol=2e-4)
    assert list(fit.varcorr["grp"]) == [r["grp"] for r in expected["varcorr"]]
    np.testing.assert_allclose(fit.fixef, expected["beta"], rtol=1e-10)
    np.testing.assert_allclose(fit.bse, expected["se"], rtol=2e-4)


# -- the O(N) formulas against dense algebra -----------------------------------------


def _design(seed: int = 1, n: int = 300, factors: int = 3, nested: bool = False) -> pd.DataFrame:
    """Unbalanced, with empty and repeated cells, two covariates."""
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"a": rng.integers(0, 12, n), "b": rng.integers(0, 7, n),
                      "c": rng.integers(0, 5, n), "x": rng.normal(size=n), "z": rng.gamma(2.0, size=n)})
    effects = sum(rng.normal(0, 1, 12)[d[f]] for f in "abc"[:factors])
    d["y"] = 2 + d["x"] - d["z"] + effects + rng.normal(size=n)
    for f in "abc":
        d[f] = d[f].astype(str)
    return d


def _dense_parts(design):
    y, X = design.y, design.X
    n = len(y)
    Zs = [np.eye(t.nlevels)[t.codes] for t in design.terms]
    return y, X, Zs, np.eye(n) - X @ np.linalg.solve(X.T @ X, X.T)


@pytest.mark.parametrize("formula", ["y ~ x + z + (1|a) + (1|b) + (1|c)", "y ~ x + (1|a) + (1|b)",
                                     "y ~ 1 + (1|a)", "y ~ x + (1|a/b)"])
def test_moment_equations_are_the_dense_traces(formula):
    """T[f, k] = tr(Z_k' M A_f M Z_k), T[f, e] = tr(M A_f), q_f = r'A_f r: exactly unbiased."""
    design = build_design(formula, _design())
    T, q, beta = moment_equations(MomentStats.from_design(design))
    y, X, Zs, M = _dense_parts(design)
    n = len(y)
    projections = [Z @ np.diag(1 / Z.sum(0)) @ Z.T for Z in Zs] + [np.full((n, n), 1 / n)]
    r = M @ y
    for i, P in enumerate(projections):
        MAM = M @ (np.eye(n) - P) @ M
        expected = [np.trace(Z.T @ MAM @ Z) for Z in Zs] + [np.trace(MAM)]
        np.testing.assert_allclose(T[i], expected, rtol=1e-9, atol=1e-9 * n)
        assert q[i] == pytest.approx(r @ (np.eye(n) - P) @ r, rel=1e-10)
    np.testing.assert_allclose(beta, np.linalg.lstsq(X, y, rcond=None)[0], rtol=1e-10)


@pytest.mark.parametrize("solver", ["cg", "backfit"])
@pytest.mark.parametrize("formula", ["y ~ x + z + (1|a) + (1|b) + (1|c)", "y ~ x + (1|a) + (1|b)"])
def test_gls_and_blups_are_the_dense_ones(formula, solver):
    """β̂ = (X'V⁻¹X)⁻¹X'V⁻¹y, cov = (X'V⁻¹X)⁻¹ and b̂_k = σ_k² Z_k'V⁻¹(y − Xβ̂), V at the moment estimates."""
    fit = mixed_moments(formula, _design(), solver=solver)
    assert fit.solver == solver and fit.iterations > 1
    y, X, Zs, _ = _dense_parts(fit.model.design)
    vc = _vc(fit)
    groups = [t.group for t in fit.model.design.terms]
    V = vc["Residual"] * np.eye(len(y)) + sum(vc[g] * Z @ Z.T for g, Z in zip(groups, Zs))
    Vi = np.linalg.inv(V)
    cov = np.linalg.inv(X.T @ Vi @ X)
    beta = cov @ X.T @ Vi @ y
    np.testing.assert_allclose(fit.fixef.to_numpy(), beta, rtol=1e-8)
    np.testing.assert_allclose(fit.vcov.to_numpy(), cov, rtol=1e-8)
    ranef = fit.ranef()
    for g, Z in zip(groups, Zs):
        np.testing.assert_allclose(ranef[g]["(Intercept)"].to_numpy(), vc[g] * Z.T @ Vi @ (y - X @ beta),
                                   rtol=1e-7, atol=1e-9)
    eta = X @ fit.fixef.to_numpy() + sum(Z @ ranef[g]["(Intercept)"].to_numpy() for g, Z in zip(groups, Zs))
    np.testing.assert_allclose(fit.fittedvalues.to_numpy(), eta, rtol=1e-12)
    np.testing.assert_allclose(fit.resid.to_numpy(), y - eta, rtol=1e-10, atol=1e-12)


def test_gls_is_the_exact_engine_at_the_same_theta():
    """On Penicillin the exact engine at θ = σ_k/σ gives the same β and (with σ² = σ̂²_e) SE."""
    pen = mf.load_dataset("Penicillin")
    fit = mf.mixed("diameter ~ 1 + (1|plate) + (1|sample)", pen, method="moments")
    model = mf.MixedModel(build_design("diameter ~ 1 + (1|plate) + (1|sample)", pen))
    vc = _vc(fit)
    theta = np.sqrt(np.array([vc["plate"], vc["sample"]]) / vc["Residual"])
    f = model.factor(theta)
    beta, _ = model.cross.solve(f)
    Ri = model.cross.rx_inverse(f)
    np.testing.assert_allclose(fit.fixef.to_numpy(), beta, rtol=1e-10)
    np.testing.assert_allclose(fit.vcov.to_numpy(), vc["Residual"] * Ri.T @ Ri, rtol=1e-8)


# -- agreement with REML -----------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_reml_within_the_study_tolerances(seed):
    """Variance components within the study's 95th percentile (2.2 REML SEs), β within its max (0.16 SE)."""
    out = moments_agreement.replicate(seed)
    for name in ["a", "b", "Residual"]:
        mom, reml, se, _ = out[name]
        assert abs(mom - reml) <= 2.2 * se, name
    for name in ["(Intercept)", "x"]:
        mom, reml, se, _ = out[name]
        assert abs(mom - reml) <= 0.16 * se, name


def test_negative_estimate_is_truncated_with_a_warning():
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"g": np.repeat(np.arange(20), 3).astype(str), "y": rng.normal(size=60)})
    with pytest.warns(MixedFitWarning, match="negative moment estimate of the variance of g"):
        fit = mf.mixed("y ~ 1 + (1|g)", d, method="moments")
    assert _vc(fit)["g"] == 0.0 and fit.truncated == ["g"]
    assert fit.bse["(Intercept)"] == pytest.approx(np.sqrt(fit.sigma**2 / 60), rel=1e-12)
    assert "truncated at 0: g" in str(fit.summary())


# -- out of core ---------------------------------------------------------------------


@pytest.mark.parametrize("formula", ["y ~ x + z + (1|a) + (1|b) + (1|c)", "y ~ 1 + (1|a)"])
def test_dask_equals_in_memory(formula):
    dd = pytest.importorskip("dask.dataframe")
    data = _design(seed=5)
    memory = mf.mixed(formula, data, method="moments")
    dask = mf.mixed(formula, dd.from_pandas(data, npartitions=4), method="moments")

    def close(a, b, rel=1e-10):  # to 1e-10 of the largest entry: the solver stops at 1e-10 too
        a, b = np.asarray(a, float), np.asarray(b, float)
        assert np.max(np.abs(a - b)) <= rel * np.max(np.abs(b))

    close(dask.varcorr["vcov"], memory.varcorr["vcov"])
    close(dask.fixef, memory.fixef)
    close(dask.vcov, memory.vcov)
    for g, frame in memory.ranef().items():
        assert list(dask.ranef()[g].index) == list(frame.index)
        close(dask.ranef()[g], frame, rel=1e-9)
    close(dask.resid.compute().sort_index(), memory.resid.sort_index(), rel=1e-9)


# -- the results object --------------------------------------------------------------


def test_summary_names_the_estimator_and_has_no_likelihood():
    fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"), method="moments",
                   data_name="Dyestuff")
    text = str(fit.summary())
    assert text.startswith("Crossed random effects fit by the method of moments (Gao & Owen 2017)\n")
    assert "Data: Dyestuff" in text and "Batch    (Intercept) 1764" in text
    assert "logLik" not in text and "REML" not in text
    record = json.loads(json.dumps(fit.to_dict(), allow_nan=False))
    assert record["method"] == "moments" and record["ngroups"] == {"Batch": 6}


def test_predict_new_data():
    pen = mf.load_dataset("Penicillin")
    fit = mf.mixed("diameter ~ 1 + (1|plate) + (1|sample)", pen, method="moments")
    new = fit.predict({"plate": ["a", "zz"], "sample": ["A", "A"]}, allow_new_levels=True)
    b = fit.ranef()
    expected = fit.fixef["(Intercept)"] + b["sample"].loc["A", "(Intercept)"]
    assert new.iloc[1] == pytest.approx(expected, rel=1e-12)
    assert new.iloc[0] == pytest.approx(expected + b["plate"].loc["a", "(Intercept)"], rel=1e-12)
    np.testing.assert_allclose(fit.predict().to_numpy(), fit.fittedvalues.to_numpy())


@pytest.mark.parametrize("formula, kwargs, message", [
    ("Reaction ~ Days + (Days|Subject)", {}, "random intercepts .1 | g. only"),
    ("Reaction ~ Days + (1|Subject) + (0 + Days|Subject)", {}, "random intercepts"),
    ("Reaction ~ Days + (1|Subject)", {"weights": "Days"}, "does not take weights"),
    ("Reaction ~ Days + (1|Subject)", {"offset": "Days"}, "does not take offset"),
    ("Reaction ~ Days + (1|Subject)", {"reml": False}, "reml=, start= and maxeval="),
    ("Reaction ~ Days + (1|Subject)", {"method": "anova"}, "not 'anova'"),
])
def test_refusals(formula, kwargs, message):
    kwargs = {"method": "moments", **kwargs}
    with pytest.raises(ModelSpecError, match=message):
        mf.mixed(formula, mf.load_dataset("sleepstudy"), **kwargs)


def test_refuses_confounded_factors():
    """Two grouping factors with the same partition of the rows: their variances are not separable."""
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(8), 5)
    d = pd.DataFrame({"y": rng.normal(size=40), "g": g.astype(str), "h": (g * 10).astype(str)})
    with pytest.raises(ModelSpecError, match="cannot separate the variance components of g, h"):
        mf.mixed("y ~ 1 + (1|g) + (1|h)", d, method="moments")


def test_no_conditional_variances():
    fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"), method="moments")
    with pytest.raises(ModelSpecError, match="no conditional variances"):
        fit.ranef(condvar=True)


def test_refuses_an_offset_term():
    with pytest.raises(ModelSpecError, match="does not take offset"):
        mf.mixed("Reaction ~ offset(Days) + (1|Subject)", mf.load_dataset("sleepstudy"), method="moments")


def test_moments_with_a_glmm_family_is_refused():
    cbpp = mf.load_dataset("cbpp")
    with pytest.raises(ModelSpecError, match="linear models only"):
        mf.mixed("cbind(incidence, size - incidence) ~ period + (1|herd)", cbpp, family="binomial",
                 method="moments")
