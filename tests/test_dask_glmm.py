"""GLMMs on Dask data (``mixedfit.dask_glmm``): the in-memory fit's numbers, by passes over partitions.

The in-memory fit is checked against glmer's fixtures (tests/test_glmm.py);
here the fit to the same data split into partitions must agree with it to
rounding (the sums are added in another order), and reach glmer's optimum.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
import dask  # noqa: E402

import mixedfit as mf  # noqa: E402
from mixedfit.dask_glmm import DaskGlmmResults  # noqa: E402
from mixedfit.distributed import mixed_parquet  # noqa: E402
from mixedfit.errors import DataError, ModelSpecError  # noqa: E402
from test_glmm import EXACT, fixture_data, load, pirls_case  # noqa: E402

# Dask against in memory.  At the same parameters the objective agrees to rounding (the sums are added
# in another order); so do the optima's deviances.  The estimates agree to where BOBYQA stops on a
# deviance that flat (ftol_abs 1e-10): its path differs with the objective's last bits, and those with
# the BLAS's kernels (measured on grouseticks' θ: 4e-7 with OpenBLAS's Haswell kernels, 1.0e-6 with its
# SkylakeX ones; 5e-8 of its β).  So the estimates are compared in the deviance's own metric
# (``assert_same_optimum``).  Standard errors come from finite-difference Hessians (steps of 1e-4) of a
# deviance PIRLS converges to 1e-7 relative: measured within 3.2e-6 of each other.
OBJECTIVE = 1e-11
SE_REL = 1e-4
THETA_ABS = 1e-6  # nAGQ = 0, whose fit has no Hessian: θ alone (VerbAgg measured 1.7e-8 apart)
BETA_SE = 1e-5
OBJ_REL = 1e-10  # never above glmer's deviance by more than this, relative (as tests/test_glmm.py)


def quietly(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lme4's warnings: the in-memory tests check them
        return mf.mixed(formula, data, **kw)


def quietly_parquet(formula, path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mixed_parquet(formula, path, **kw)


@lru_cache(maxsize=None)
def both(case: str, npartitions: int):
    fx = load(case)
    data = fixture_data(fx)
    kw = dict(family=mf.family(fx["family"], link=fx["link"]), nagq=fx["nAGQ"])
    with dask.config.set(scheduler="sync"):
        return (quietly(fx["formula"], data, **kw),
                quietly(fx["formula"], dd.from_pandas(data, npartitions=npartitions), **kw), fx)


def assert_same_optimum(fit, memory) -> None:
    """The two estimates are no further apart than the objectives agree, as the deviance's quadratic model
    (the in-memory fit's finite-difference Hessian in θ and β) measures it: ½ΔᵀHΔ ≤ their agreement."""
    hessian = memory.optsummary.hessian
    if hessian.size == 0:
        np.testing.assert_allclose(fit.theta, memory.theta, rtol=0, atol=THETA_ABS)
        return
    delta = np.concatenate([np.asarray(fit.theta) - np.asarray(memory.theta),
                            np.asarray(fit.fixef) - np.asarray(memory.fixef)])
    assert 0.5 * delta @ hessian @ delta <= OBJECTIVE * abs(memory.minus2llf)


@pytest.mark.parametrize("case, npartitions", [("cbpp", 3), ("grouseticks", 4), ("verbagg_nagq0", 5),
                                               ("poisson_offset", 3), ("contraception", 4),
                                               ("gamma_log", 4), ("invgauss_log", 3), ("cbpp_agq25", 3)])
def test_dask_fit_is_the_in_memory_fit(case, npartitions):
    memory, fit, fx = both(case, npartitions)
    assert fit.minus2llf == pytest.approx(memory.minus2llf, rel=OBJECTIVE)
    assert fit.deviance == pytest.approx(memory.deviance, rel=1e-7)
    assert np.all(np.abs(fit.fixef - memory.fixef) <= BETA_SE * memory.bse)
    assert_same_optimum(fit, memory)
    np.testing.assert_allclose(fit.bse, memory.bse, rtol=SE_REL)
    assert fit.nobs == memory.nobs == fx["nobs"]
    assert fit.minus2llf <= fx["minus2logLik"] * (1 + OBJ_REL)
    assert fit.pwrss == pytest.approx(memory.pwrss, rel=1e-7)
    assert fit.sigma == pytest.approx(memory.sigma, rel=1e-7)  # √(pwrss/n): 1 but for Gamma, inverse Gaussian
    assert fit.model.passes > 0  # PIRLS by passes over the partitions


def test_dask_step_halving_fit_is_the_in_memory_fit():
    # Gamma with the inverse link: PIRLS's first steps give μ < 0 and are halved (tests/test_glmm.py)
    fx, data = pirls_case("gamma_inverse")
    kw = dict(family=mf.family(fx["family"], link=fx["link"]))
    with warnings.catch_warnings(), dask.config.set(scheduler="sync"):
        warnings.simplefilter("error")  # no RuntimeWarning from the NaN step, no convergence warning
        memory = mf.mixed(fx["formula"], data, **kw)
        fit = mf.mixed(fx["formula"], dd.from_pandas(data, npartitions=3), **kw)
        text = str(fit.summary())
    assert fit.minus2llf == pytest.approx(memory.minus2llf, rel=OBJECTIVE)
    assert fit.minus2llf <= fx["minus2logLik"] * (1 + OBJ_REL)
    assert_same_optimum(fit, memory)
    assert np.all(np.abs(fit.fixef - memory.fixef) <= BETA_SE * memory.bse)
    assert fit.sigma == pytest.approx(memory.sigma, rel=1e-7)
    assert text == str(memory.summary())


@pytest.mark.parametrize("case, npartitions", [("cbpp", 3), ("grouseticks", 4), ("gamma_log", 4),
                                               ("invgauss_log", 3), ("cbpp_agq25", 3)])
def test_dask_objective_is_the_in_memory_objective(case, npartitions):
    # at glmer's estimates, PIRLS started where glmer starts it (its first stage's θ)
    memory, fit, fx = both(case, npartitions)
    stage1 = np.array(list(fx["stage1_theta"].values()))
    par = np.concatenate([list(fx["theta"].values()), list(fx["beta"].values())])
    with dask.config.set(scheduler="sync"):
        at = [model.fit_at(par[: model.ntheta], par[model.ntheta:], stage1) for model in (memory.model, fit.model)]
    assert at[1].opt.fmin == pytest.approx(at[0].opt.fmin, rel=OBJECTIVE)
    # glmer's deviance at its optimum; a dispersion family's −2 log L reads the whole deviance (through
    # φ), which PIRLS converges to 1e-7 relative: the in-memory tests' tolerance there (EXACT)
    assert at[1].opt.fmin == pytest.approx(fx["fval"], rel=EXACT if fx["family"] in ("Gamma", "inverse.gaussian")
                                           else 1e-9)
    np.testing.assert_allclose(at[1].state.u, at[0].state.u, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(at[1].vcov, at[0].vcov, rtol=SE_REL, atol=SE_REL * np.abs(at[0].vcov).max())
    sigmas = [model.sigma(f.state) for model, f in zip((memory.model, fit.model), at)]
    assert sigmas[1] == pytest.approx(sigmas[0], rel=1e-12)


@pytest.mark.parametrize("case, npartitions", [("cbpp", 3), ("grouseticks", 4), ("gamma_log", 4)])
def test_dask_summary_prints_the_in_memory_summary(case, npartitions):
    # the same text; grouseticks' estimates print 8 digits, beyond where the two optima agree
    memory, fit, fx = both(case, npartitions)
    with dask.config.set(scheduler="sync"):
        text = str(fit.summary())
    expected = str(memory.summary())
    if case == "grouseticks":
        text, expected = (t[: t.index("Fixed effects:")] for t in (text, expected))
    assert text == expected
    np.testing.assert_allclose(fit.resid_quantiles(), np.quantile(memory.scaled_resid, [0, 0.25, 0.5, 0.75, 1]),
                               rtol=1e-6)


def test_dask_residuals_are_lazy_and_the_in_memory_ones():
    memory, fit, _ = both("cbpp", 3)
    for kind in ("deviance", "pearson", "response", "working"):
        lazy = fit.resid(kind)
        assert type(lazy).__module__.startswith("dask")
        with dask.config.set(scheduler="sync"):
            values = lazy.compute()
        np.testing.assert_allclose(values.to_numpy(), memory.resid(kind).to_numpy(), rtol=1e-7, atol=1e-10)
    with dask.config.set(scheduler="sync"):
        np.testing.assert_allclose(fit.fittedvalues.compute().to_numpy(), memory.fittedvalues.to_numpy(),
                                   rtol=1e-8)


def test_dask_glmm_drops_the_columns_memory_drops():
    cbpp = mf.load_dataset("cbpp").assign(twice=lambda d: 2.0 * (d["period"] == "2"))
    formula = "cbind(incidence, size - incidence) ~ period + twice + (1 | herd)"
    memory = quietly(formula, cbpp, family="binomial")
    with dask.config.set(scheduler="sync"):
        fit = quietly(formula, dd.from_pandas(cbpp, npartitions=2), family="binomial")
    assert fit.xnames == memory.xnames
    np.testing.assert_allclose(fit.fixef, memory.fixef, rtol=1e-7)


def test_dask_quadrature_is_refused_where_lme4_refuses_it():
    # nagq > 1 needs a single scalar term, on Dask data as in memory
    data = dd.from_pandas(mf.load_dataset("cbpp"), npartitions=2)
    with dask.config.set(scheduler="sync"), pytest.raises(ModelSpecError, match="single, scalar random-effects"):
        mf.mixed("cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | period)", data,
                 family="binomial", nagq=5)


def test_dask_glmm_needs_the_rows_for_refits():
    _, fit, _ = both("cbpp", 3)
    with pytest.raises(NotImplementedError, match="rows"):
        fit.bootstrap(nsim=2)
    assert isinstance(fit.confint(method="wald"), pd.DataFrame)


def test_parquet_files_with_a_family_are_the_in_memory_fit(tmp_path):
    # mixed_parquet(..., family=): the GLMM driver on the files' model columns
    memory, _, fx = both("gamma_log", 4)
    data = fixture_data(fx).assign(unused=1.0)
    for k in range(3):
        data.iloc[k::3].to_parquet(tmp_path / f"part{k}.parquet")
    with dask.config.set(scheduler="sync"):
        fit = quietly_parquet(fx["formula"], str(tmp_path / "*.parquet"),
                              family=mf.family(fx["family"], link=fx["link"]))
    assert isinstance(fit, DaskGlmmResults)
    assert fit.minus2llf == pytest.approx(memory.minus2llf, rel=OBJECTIVE)
    assert np.all(np.abs(fit.fixef - memory.fixef) <= BETA_SE * memory.bse)
    assert fit.nobs == fx["nobs"]


def test_a_broken_parquet_file_is_named_before_a_glmm_reads_a_row(tmp_path):
    cbpp = mf.load_dataset("cbpp")
    for k in range(3):
        cbpp.iloc[k::3].to_parquet(tmp_path / f"part{k}.parquet")
    (tmp_path / "part1.parquet").write_bytes(b"not a parquet file\n" * 20)
    with pytest.raises(DataError, match=r"part1\.parquet is not a readable parquet file"):
        mixed_parquet("cbind(incidence, size - incidence) ~ period + (1 | herd)", str(tmp_path / "*.parquet"),
                      family="binomial")
