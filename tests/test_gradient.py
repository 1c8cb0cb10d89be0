"""The exact gradient of the profiled objective (``mixedfit.blocks.gradient``) against finite differences.

Every lme4 reference model (``tests/lme4/fixtures``: the fixture cases, the hard
cases, the performance cases) is built, checked to give lme4's objective at
lme4's θ, and its gradient at that θ and at perturbed θ, by ML and by REML, is
compared with Richardson-extrapolated central differences of the objective.
Each strategy of the engine (Schur updates, rest storage, rest factorizations,
joined terms) is forced in turn on the models of tests/test_blocks.py.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import mixedfit as mf
from mixedfit import blocks
from mixedfit.blocks import crossproducts, factor, rest, schur
from mixedfit.model import MixedModel
from mixedfit.terms import build_design

FIXTURES = Path(__file__).parent / "lme4" / "fixtures"
# Largest error of the gradient, relative to the largest of its entries (at
# least 1: at an optimum the gradient itself is near 0).
REL = 5e-6
OBJ_REL = 1e-7  # the model built must give lme4's objective at lme4's θ (to the optimizer's digits)


def _load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _fixture_cases() -> list[tuple[str, dict]]:
    cases = []
    for path in sorted(FIXTURES.glob("*.json")):
        fx = json.loads(path.read_text())
        if "summary_text" in fx:
            cases.append((path.stem, fx))
    for name in ("hard_cases", "perf_cases"):
        cases += [(case["id"], case) for case in _load(name)["fits"]]
    return cases


CASES = _fixture_cases()


def _design(case: dict):
    data = mf.load_dataset(case["dataset"])
    for col, values in (case.get("extra_columns") or {}).items():
        data[col] = values
    if case.get("drop_rows"):
        data = data.drop(index=data.index[case["drop_rows"]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_design(case["formula"], data, weights=case.get("weights"), offset=case.get("offset"))


def richardson_gradient(objective, theta: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Central differences at steps h, h/2, h/4, extrapolated twice (error O(h⁶)), per θ at the h that agrees best.

    h is 1e-2, 1e-3 or 1e-4 of each θ, or of its units (1 / the RMS of its Z
    column: ``MixedModel._theta_units``) where θ is smaller: a Z column scaled
    by 1e6 moves the objective on a scale of 1e-6 in its θ.  Large steps lose
    to truncation where the objective curves on the scale of a small θ
    (InstEval's dept terms), small ones to the objective's rounding noise on
    ill-conditioned models (collinear slopes): of the three, each entry takes
    the one whose last two extrapolations differ least.  The objective is
    smooth in θ everywhere (the penalized system is positive definite for any
    θ), so steps may cross a bound.
    """
    out = np.empty(theta.size)
    for i in range(theta.size):
        best = np.inf
        for step in (1e-2, 1e-3, 1e-4):
            h = step * max(units[i], abs(theta[i]))

            def central(width: float) -> float:
                e = np.zeros(theta.size)
                e[i] = width
                return (objective(theta + e) - objective(theta - e)) / (2.0 * width)

            d1, d2, d3 = central(h), central(h / 2), central(h / 4)
            a, b = (4.0 * d2 - d1) / 3.0, (4.0 * d3 - d2) / 3.0
            estimate = (16.0 * b - a) / 15.0
            if abs(estimate - b) < best:
                best, out[i] = abs(estimate - b), estimate
    return out


def assert_gradient(model: MixedModel, theta: np.ndarray) -> None:
    value, grad = model.objective_and_gradient(theta)
    assert value == model.objective(theta)
    numeric = richardson_gradient(model.objective, theta, model._theta_units())
    scale = max(1.0, np.abs(numeric).max())
    assert np.abs(grad - numeric).max() <= REL * scale, (grad, numeric)


def _perturbed(model: MixedModel, theta: np.ndarray, seed: int) -> np.ndarray:
    """θ moved by up to a fifth of itself or of a tenth of its units, and kept above its bound by a hundredth of those."""
    rng = np.random.default_rng(seed)
    units = model._theta_units()
    moved = theta + rng.uniform(-0.2, 0.2, theta.size) * np.maximum(np.abs(theta), 0.1 * units)
    return np.maximum(moved, np.where(np.isfinite(model.lower), 0.01 * units, -np.inf))


@pytest.mark.parametrize("name, case", CASES, ids=[c[0] for c in CASES])
def test_gradient_at_lme4s_optimum(name, case):
    model = MixedModel(_design(case), reml=case["reml"])
    theta = np.asarray(case["theta"], float)
    assert model.objective(theta) == pytest.approx(case["objective"], rel=OBJ_REL)
    assert_gradient(model, theta)


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("name, case", CASES, ids=[c[0] for c in CASES])
def test_gradient_at_perturbed_theta(name, case, reml):
    model = MixedModel(_design(case), reml=reml)
    assert_gradient(model, _perturbed(model, np.asarray(case["theta"], float), seed=len(name)))


def test_gradient_vanishes_at_an_interior_optimum():
    # sleepstudy's REML optimum, found by the fit: the gradient there is the
    # optimizer's residue, far below lme4's convergence tolerance.
    fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    model = MixedModel(build_design("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy")))
    assert np.abs(model.gradient(fit.optsummary.final)).max() < 1e-3


ENGINE_CASES = [
    ("Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)"),
    ("egsingle", "math ~ year + size + female + (year|childid) + (year|schoolid)"),
    ("Machines", "score ~ Machine + (0 + Machine|Worker) + (1|Worker:Machine)"),
    ("Machines", "score ~ Machine + (1|Worker) + (0 + Machine|Worker) + (1|Worker:Machine)"),
    ("Pastes", "strength ~ 1 + (1|batch/cask)"),
]

# Each strategy of the engine, forced by the settings that choose it.
STRATEGIES = {
    "schur pattern": [(schur, "_DENSE_R0_FILL", 2.0)],
    "schur pattern, levels sharing columns": [(schur, "_DENSE_R0_FILL", 2.0), (schur, "_SHARED_MIN_PRODUCTS", 0),
                                              (schur, "_SHARED_LEVELS", 1.0)],
    "sparse products": [(schur, "_DENSE_R0_FILL", 2.0), (schur, "_PATTERN_BUDGET", -1)],
    "dense rows": [(schur, "_DENSE_R0_FILL", 0.0)],
    "xy products": [(schur, "_DENSE_R0_FILL", 2.0), (schur, "_MAP_BUDGET", -1)],
    "dense rest": [(rest, "_SPARSE_FILL", -1)],
    "kept rest by LAPACK": [(rest, "_SPARSE_FILL", 1.0), (rest, "cholmod_available", lambda: False)],
    "nested lead": [(factor, "_NESTED_MIN_COLUMNS", 0)],
    "no kept eliminations": [(crossproducts, "_ELIMINATIONS_KEPT", 0)],
    "separate terms": [(blocks.sums, "_same_factor", lambda a, b: False)],
}


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("name, formula", ENGINE_CASES)
def test_gradient_on_every_engine_strategy(name, formula, reml, strategy, monkeypatch):
    for module, setting, value in STRATEGIES[strategy]:
        monkeypatch.setattr(module, setting, value)
    model = MixedModel(build_design(formula, mf.load_dataset(name)), reml=reml)
    rng = np.random.default_rng(3)
    for _ in range(2):
        theta = np.where(np.isfinite(model.lower), rng.uniform(0.1, 2.0, model.ntheta), rng.normal(size=model.ntheta))
        assert_gradient(model, theta)


def test_gradient_needs_a_factor():
    model = MixedModel(build_design("Reaction ~ Days + (1|Subject)", mf.load_dataset("sleepstudy")))
    with pytest.raises(ValueError, match="not positive definite"):
        model.gradient(np.array([1e100]))
