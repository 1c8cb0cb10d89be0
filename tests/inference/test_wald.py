"""Wald intervals and the information-matrix covariance of the variance parameters.

References (``tests/lme4/fixtures/inference_profile.json``, from
``tests/lme4/inference_cases.R``): lme4's ``confint(fit, method = "Wald")``,
and 2·H⁻¹ with H numDeriv's Hessian of the deviance / REML criterion on the
(θ, σ) scale (lmerTest's ``vcov_varpar``), the (sd, cor, σ) scale and the
(var, cov, σ²) scale.

The arithmetic is checked at lme4's own θ (a fit object rebuilt there), so
that optimizer end points -- which differ by ~1e-4 in θ for Penicillin,
where mixedfit's objective is lower -- do not blur it:

* Wald bounds: 1e-6 relative;
* vcov_varpar: |V − V_lme4|ᵢⱼ ≤ 1e-5·sqrt(V_lme4,ᵢᵢ V_lme4,ⱼⱼ); 1e-3 for the
  singular Dyestuff2 fit, where a variance sits at 0 and both finite
  difference Hessians are limited by round-off (deviance changes of 1e-8
  on a deviance of 160).

Our own fits are checked against lme4's Wald bounds within 0.01 standard
errors (the project's fit tolerance: β within 0.002 SE, SE within 0.2 %).
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from mixedfit.inference.confint import confint
from mixedfit.inference.numderiv import richardson_hessian
from mixedfit.inference.parameters import varpar_names
from mixedfit.inference.wald import vcov_varpar, varpar_wald_confint, wald_confint
from mixedfit.model import Convergence
from mixedfit.results import MixedResults

from _cases import CASES, fitted, fixture

WALD_RTOL = 1e-6
VCOV_RTOL = {"dyestuff2": 1e-3}


@lru_cache(maxsize=None)
def at_lme4_theta(case: str) -> MixedResults:
    """The same model, evaluated at lme4's θ instead of mixedfit's optimum."""
    fit = fitted(case)
    theta = np.asarray(fixture()["cases"][case]["theta"], float)
    opt = dataclasses.replace(fit.optsummary, final=theta, fmin=fit.model.objective(theta))
    return MixedResults(fit.model, opt, Convergence([], 0))


def reference(case: str, key: str) -> pd.DataFrame:
    rec = fixture()["cases"][case][key]
    nan = lambda v: math.nan if v is None else float(v)  # noqa: E731
    values = np.column_stack([[nan(v) for v in rec["lower"]], [nan(v) for v in rec["upper"]]])
    return pd.DataFrame(values, index=rec["rownames"], columns=rec["colnames"])


@pytest.mark.parametrize("level", [0.95, 0.9])
@pytest.mark.parametrize("case", CASES)
def test_wald_exact_at_lme4_theta(case, level):
    ours = wald_confint(at_lme4_theta(case), level=level)
    ref = reference(case, f"wald_{round(100 * level):02d}")
    assert list(ours.index) == list(ref.index)
    assert list(ours.columns) == list(ref.columns)
    nvp = len(varpar_names(fitted(case)))
    assert ours.iloc[:nvp].isna().all().all() and ref.iloc[:nvp].isna().all().all()
    np.testing.assert_allclose(ours.iloc[nvp:].to_numpy(), ref.iloc[nvp:].to_numpy(), rtol=WALD_RTOL, atol=0)


@pytest.mark.parametrize("case", CASES)
def test_wald_of_own_fit_within_fit_tolerance(case):
    fit = fitted(case)
    ours = confint(fit, method="wald")
    ref = reference(case, "wald_95")
    nvp = len(varpar_names(fit))
    se = fit.bse.to_numpy()[:, None]
    err = np.abs(ours.iloc[nvp:].to_numpy() - ref.iloc[nvp:].to_numpy()) / se
    assert err.max() <= 0.01


def test_wald_parm_and_level_labels():
    fit = fitted("sleepstudy_reml")
    out = confint(fit, method="wald", level=0.99, parm="beta_")
    assert list(out.index) == ["(Intercept)", "Days"]
    assert list(out.columns) == ["0.5 %", "99.5 %"]
    z = norm.ppf(0.995)
    np.testing.assert_allclose(out["99.5 %"], fit.fixef + z * fit.bse, rtol=1e-12)


@pytest.mark.parametrize("scale", ["theta", "sd", "var"])
@pytest.mark.parametrize("case", CASES)
def test_vcov_varpar_matches_numderiv(case, scale):
    ref = fixture()["cases"][case].get(f"vcov_varpar_{scale}")
    ours = vcov_varpar(at_lme4_theta(case), scale=scale)
    if ref is None:  # lme4's side has no finite Hessian there (a variance at 0 on the var scale)
        assert ours.isna().all().all()
        return
    ref = np.asarray(ref, float)
    assert ours.shape == ref.shape
    scale_ij = np.sqrt(np.outer(np.diag(ref), np.diag(ref)))
    err = np.abs(ours.to_numpy() - ref) / scale_ij
    assert err.max() <= VCOV_RTOL.get(case, 1e-5), err


def test_vcov_varpar_names():
    fit = fitted("sleepstudy_reml")
    assert list(vcov_varpar(fit, "theta").index) == list(fit.theta.index) + ["sigma"]
    assert list(vcov_varpar(fit, "sd").index) == varpar_names(fit)
    assert list(vcov_varpar(fit, "var").columns) == [
        "var_(Intercept)|Subject",
        "cov_Days.(Intercept)|Subject",
        "var_Days|Subject",
        "sigma^2",
    ]


def test_varpar_wald_intervals_use_vcov_varpar():
    fit = fitted("dyestuff_reml")
    ci = varpar_wald_confint(fit, level=0.9, scale="sd")
    se = np.sqrt(np.diag(vcov_varpar(fit, "sd").to_numpy()))
    est = np.array([fit.varcorr["sdcor"].iloc[0], fit.sigma])
    np.testing.assert_allclose(ci["95 %"].to_numpy(), est + norm.ppf(0.95) * se, rtol=1e-10)


def test_richardson_hessian_of_a_quadratic_is_exact():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((3, 3))
    A = A @ A.T
    x0 = rng.standard_normal(3)
    H = richardson_hessian(lambda x: float(x @ A @ x / 2.0), x0)
    np.testing.assert_allclose(H, A, rtol=1e-8, atol=1e-8)
