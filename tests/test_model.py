"""The fit's machinery: the optimizer's follow-up steps on hand-made derivatives, and its BLAS threads (the fits themselves are checked against lme4)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import mixedfit as mf
from mixedfit.errors import ModelSpecError
from mixedfit.model import MixedModel
from mixedfit.optimize import OptSummary, finite_derivatives
from mixedfit.terms import build_design

CRASH_FIXTURE = Path(__file__).parent / "lme4" / "fixtures" / "crash_cases.json"


def _optimum(model: MixedModel, final: np.ndarray, gradient: np.ndarray) -> OptSummary:
    return OptSummary("nloptwrap", final, model.lower, final, fmin=1000.0, feval=10, code=0, message="",
                      gradient=gradient, hessian=2.0 * np.eye(final.size))


def test_singular_optimum_is_polished_over_its_interior():
    # sleepstudy's (Days|Subject) has θ = (t00, t10, t11) with t00, t11 ≥ 0.  With t11
    # on its bound, its own gradient is no reason to go on, but one inside is.
    model = MixedModel(build_design("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy")))
    final = np.array([1.0, 0.1, 0.0])
    assert model.is_singular(final)
    downhill_inside = _optimum(model, final, np.array([0.5, 0.0, 3.0]))
    assert model._stopped_short(downhill_inside)
    np.testing.assert_allclose(model._newton_step(downhill_inside), [0.75, 0.1, 0.0])
    assert not model._stopped_short(_optimum(model, final, np.array([0.0, 0.0, 3.0])))


def _derivatives_at(model: MixedModel, theta: np.ndarray) -> OptSummary:
    fmin = model.objective(theta)
    gradient, hessian = finite_derivatives(model.objective, theta, fmin)
    return OptSummary("nloptwrap", theta, model.lower, theta, fmin=fmin, feval=10, code=0, message="",
                      gradient=gradient, hessian=hessian)


def test_a_short_polish_step_keeps_the_hessians_off_diagonal():
    # Near sleepstudy's optimum a Newton step is short: only the gradient and the
    # Hessian's diagonal are evaluated again; a long step re-evaluates all of it.
    model = MixedModel(build_design("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy")))
    optimum = model.optimize().final
    off = ~np.eye(optimum.size, dtype=bool)
    for shift, kept in ((2e-4, True), (2e-2, False)):
        before = _derivatives_at(model, optimum + shift)
        after = model._polish(before, 100_000)
        moved = np.max(np.abs(after.final - before.final))
        assert after.fmin < before.fmin and (moved <= 1e-3) == kept
        fresh = _derivatives_at(model, after.final)
        np.testing.assert_array_equal(after.gradient, fresh.gradient)
        np.testing.assert_array_equal(np.diag(after.hessian), np.diag(fresh.hessian))
        np.testing.assert_array_equal(after.hessian[off], (before if kept else fresh).hessian[off])
        assert not np.array_equal(before.hessian[off], fresh.hessian[off])


def test_numpys_own_blas_gets_one_thread_beside_scipys(monkeypatch):
    # Two OpenBLAS copies (numpy's and scipy's wheels) spin their threads on the
    # same cores; numpy's gets one thread while scipy's factors with all of its.
    from threadpoolctl import ThreadpoolController

    from mixedfit import model as model_module

    before = {c["filepath"]: c["num_threads"] for c in ThreadpoolController().info() if c["user_api"] == "blas"}
    numpys = [path for path in before if path.startswith(os.path.dirname(np.__file__))]
    if not numpys or len(numpys) == len(before):
        pytest.skip("numpy and scipy share one BLAS library here: nothing to limit")
    monkeypatch.setattr(model_module, "_SMALL_DENSE", 0)
    monkeypatch.setattr(model_module, "_cores_busy", lambda: False)
    model = MixedModel(build_design("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy")))
    with model.blas_threads():
        inside = {c["filepath"]: c["num_threads"] for c in ThreadpoolController().info() if c["user_api"] == "blas"}
    assert all(inside[path] == (1 if path in numpys else before[path]) for path in before)
    after = {c["filepath"]: c["num_threads"] for c in ThreadpoolController().info() if c["user_api"] == "blas"}
    assert after == before


def test_a_system_singular_at_the_optimum_raises_lme4s_error():
    # one weight of 1e20: lme4 stops with "Downdated VtV is not positive definite"
    # (tests/lme4/crash_cases.R); the fit had no factor to read its results off
    rec = json.loads(CRASH_FIXTURE.read_text())["errors"]["huge_weight"]
    weights = np.r_[1e20, np.ones(179)]
    with pytest.raises(ModelSpecError, match=rec["message"]) as err:
        mf.mixed(rec["formula"], mf.load_dataset(rec["dataset"]), weights=weights)
    assert "extreme weights" in str(err.value)
