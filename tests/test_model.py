"""The optimizer's follow-up steps on hand-made derivatives (the fits themselves are checked against lme4)."""

from __future__ import annotations

import numpy as np

import mixedfit as mf
from mixedfit.model import MixedModel
from mixedfit.optimize import OptSummary
from mixedfit.terms import build_design


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
