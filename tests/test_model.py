"""The fit's machinery: the optimizer's follow-up steps on hand-made derivatives, and its BLAS threads (the fits themselves are checked against lme4)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfit as mf
from mixedfit import model as model_module
from mixedfit.blocks import whole
from mixedfit.errors import ModelSpecError
from mixedfit.model import MixedModel
from mixedfit.optimize import OptSummary, bobyqa, finite_derivatives
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


@pytest.mark.parametrize("fmin, gradient, short", [
    (1e5, [0.002, 0.002, 0.0], True),     # 2e-6 to gain: under 1e-10 of the objective, over 1e-6
    (1e5, [0.001, 0.0, 0.0], False),      # 2.5e-7: under both
    (1000.0, [0.001, 0.0, 0.0], True),    # 2.5e-7: over 1e-10 of a small objective (1e-7), under 1e-6
    (1000.0, [4e-4, 0.0, 0.0], False),    # 4e-8: under both
])
def test_the_gap_that_starts_a_polish_is_relative_but_at_most_a_millionth(fmin, gradient, short):
    model = MixedModel(build_design("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy")))
    opt = dataclasses.replace(_optimum(model, np.array([1.0, 0.1, 1.5]), np.array(gradient)), fmin=fmin)
    assert model._stopped_short(opt) is short


def test_a_hessian_not_positive_definite_gives_a_step_with_its_curvatures_floored():
    # On a ridge H has a curvature near zero or below: taken in absolute value and at
    # least 1e-3 of the largest, it still gives a downhill step, not a BOBYQA restart.
    model = MixedModel(build_design("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy")))
    final = np.array([1.0, 0.1, 1.5])
    opt = _optimum(model, final, np.array([1.0, 1e-3, 1.0]))
    opt.hessian = np.diag([2.0, -1e-6, 1.0])
    np.testing.assert_allclose(model._newton_step(opt), final - [0.5, 0.5, 1.0])


def _derivatives_at(model: MixedModel, theta: np.ndarray) -> OptSummary:
    fmin = model.objective(theta)
    gradient, hessian = finite_derivatives(model.objective, theta, fmin, paired=True)  # as the fit's
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


def test_a_polish_step_short_for_its_theta_keeps_the_hessians_off_diagonal(monkeypatch):
    # Days in hundreds of days: the slope's θ is near 23, and a step of 5e-3 in it is
    # short (Oxboys' θ near 17 had spent a whole stencil, 72 evaluations, on such a step).
    # The step is set, not Newton's: on this ridge Newton's step from the shifted θ also
    # moves the correlation's θ (near 1.5) by 1.3e-3 to 2.4e-3, long or short for it with
    # the last bits of BOBYQA's optimum, which differ between CPUs.
    data = mf.load_dataset("sleepstudy").assign(Hdays=lambda d: d["Days"] / 100)
    model = MixedModel(build_design("Reaction ~ Hdays + (Hdays|Subject)", data))
    optimum = model.optimize().final
    before = _derivatives_at(model, optimum + np.array([0.0, 0.0, 5e-3]))
    monkeypatch.setattr(model, "_newton_step", lambda opt: optimum)
    after = model._polish(before, 100_000)
    assert after.fmin < before.fmin and np.array_equal(after.final, optimum)
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_array_equal(after.hessian[off], before.hessian[off])
    assert not np.array_equal(np.diag(after.hessian), np.diag(before.hessian))


def test_lme4s_convergence_check_costs_n_squared_plus_n_evaluations_beyond_bobyqas(monkeypatch):
    # sleepstudy's BOBYQA stops at lme4's optimum (no polish): the check's gradient and
    # Hessian take 2n steps along the axes and two per pair of θ, not deriv12's four
    model = MixedModel(build_design("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy")))
    calls = []
    objective = model.objective
    monkeypatch.setattr(model, "objective", lambda theta: calls.append(theta) or objective(theta))
    opt = model.optimize()
    n = model.ntheta
    assert not model._stopped_short(opt)
    assert len(calls) == opt.feval + 2 * n + n * (n - 1)


def test_the_convergence_check_shares_first_term_eliminations_and_changes_no_value():
    # crossed random slopes: the check's points that move the second term's θ, or
    # the first term's θ alike, share the first term's elimination
    rng = np.random.default_rng(7)
    subj, item = np.repeat(np.arange(30), 20), np.tile(np.arange(20), 30)
    x = rng.normal(size=600)
    data = {"y": x + rng.normal(size=30)[subj] + rng.normal(size=20)[item] * x + rng.normal(size=600),
            "x": x, "subj": subj.astype(str), "item": item.astype(str)}
    model = MixedModel(build_design("y ~ x + (x|subj) + (x|item)", data))
    theta = np.array([0.9, 0.1, 0.3, 0.5, -0.2, 0.8])
    fx, eliminate = model.objective(theta), model.cross.first.eliminate

    def derivatives(group):
        calls = []
        model.cross.first.eliminate = lambda T: calls.append(T) or eliminate(T)
        model.cross._eliminations.clear()
        return finite_derivatives(model.objective, theta, fx, paired=True, group=group), len(calls)

    ((g0, h0), plain), ((g1, h1), grouped) = derivatives(None), derivatives(model._kept_work)
    np.testing.assert_array_equal(g0, g1)
    np.testing.assert_array_equal(h0, h1)
    assert grouped < plain


def test_polishing_stops_after_a_round_that_gains_no_more_than_its_tolerance(monkeypatch):
    # Where the Hessian is not positive definite (a ridge), the derivatives call for
    # another round after each; one that gained next to nothing ends them.
    model = MixedModel(build_design("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy")))
    rounds = []

    def polish(opt, maxeval):
        rounds.append(opt.fmin)
        return dataclasses.replace(opt, fmin=opt.fmin - 1e-12 * abs(opt.fmin))

    monkeypatch.setattr(model, "_stopped_short", lambda opt: True)
    monkeypatch.setattr(model, "_polish", polish)
    model.optimize()
    assert len(rounds) == 1


def test_blas_threads_where_the_dense_products_are_large_though_the_rest_is_small(monkeypatch):
    # Penicillin's rest has 8 columns and its dsyrk 768 multiply-adds: with the
    # threshold at 16 columns (682 multiply-adds) the products decide, at 32 (5,461) not.
    from threadpoolctl import ThreadpoolController

    from mixedfit import cores

    monkeypatch.setattr(cores, "busy", lambda: False)
    monkeypatch.setattr(cores, "_usable_cores", lambda: 2)
    model = MixedModel(build_design("diameter ~ 1 + (1|plate) + (1|sample)", mf.load_dataset("Penicillin")))
    assert model.cross.rest_columns.size == 8 and model.cross.rest.update.multiply_adds == 768

    def most_threads() -> int:
        with model.blas_threads():
            return max(c["num_threads"] for c in ThreadpoolController().info() if c["user_api"] == "blas")

    if max(c["num_threads"] for c in ThreadpoolController().info() if c["user_api"] == "blas") < 2:
        pytest.skip("every BLAS here runs on one thread: nothing to tell apart")
    monkeypatch.setattr(cores, "_THREADED_COLUMNS", 16)
    assert most_threads() >= 2
    monkeypatch.setattr(cores, "_THREADED_COLUMNS", 32)
    assert most_threads() == 1


def test_numpys_own_blas_gets_one_thread_beside_scipys(monkeypatch):
    # Two OpenBLAS copies (numpy's and scipy's wheels) spin their threads on the
    # same cores; numpy's gets one thread while scipy's factors with all of its.
    from threadpoolctl import ThreadpoolController

    from mixedfit import cores

    before = {c["filepath"]: c["num_threads"] for c in ThreadpoolController().info() if c["user_api"] == "blas"}
    numpys = [path for path in before if path.startswith(os.path.dirname(np.__file__))]
    if not numpys or len(numpys) == len(before):
        pytest.skip("numpy and scipy share one BLAS library here: nothing to limit")
    monkeypatch.setattr(cores, "threaded", lambda columns, products=0.0: True)
    model = MixedModel(build_design("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy")))
    with model.blas_threads():
        inside = {c["filepath"]: c["num_threads"] for c in ThreadpoolController().info() if c["user_api"] == "blas"}
    assert all(inside[path] == (1 if path in numpys else before[path]) for path in before)
    after = {c["filepath"]: c["num_threads"] for c in ThreadpoolController().info() if c["user_api"] == "blas"}
    assert after == before



def _blas_threads() -> dict[str, int]:
    from threadpoolctl import threadpool_info

    return {c["filepath"]: c["num_threads"] for c in threadpool_info() if c["user_api"] == "blas"}


def _set_blas_threads_from_another_thread(limits: int | dict[str, int]) -> None:
    # As a user's earlier setting: a limit left open in this thread would make
    # threadpoolctl (3.8) ignore the fits' own limits, set from their threads.
    import threading

    from threadpoolctl import ThreadpoolController

    setter = threading.Thread(target=ThreadpoolController().limit, kwargs={"limits": limits, "user_api": "blas"})
    setter.start()
    setter.join()


@pytest.fixture
def blas_on_two_threads() -> dict[str, int]:
    """Every BLAS library on two threads where it can run on two, whatever the machine's cores.

    Some cannot: cvxopt's BLAS, loaded by the sparse tests, stays on one.
    """
    original = _blas_threads()
    _set_blas_threads_from_another_thread(2)
    counts = _blas_threads()
    if not counts or max(counts.values()) < 2:
        _set_blas_threads_from_another_thread(original)
        pytest.skip("no BLAS library here runs on two threads: a limit to one would not show")
    yield counts
    _set_blas_threads_from_another_thread(original)


def test_overlapping_fits_restore_blas_threads_when_the_last_one_ends(monkeypatch, blas_on_two_threads):
    # Each fit used to save the count it found and restore that on leaving: a fit
    # that entered while another held BLAS at one thread left it there for good,
    # and the first to leave lifted the limit under the other.  Here fit 1 enters,
    # fit 2 enters, fit 1 ends while fit 2 is still running, then fit 2 ends.
    import threading

    from mixedfit import model as model_module

    sleep = mf.load_dataset("sleepstudy")
    optimize = model_module.MixedModel.optimize
    first_in, second_in, first_done = threading.Event(), threading.Event(), threading.Event()
    seen_by_second = []

    def in_order(self, *args, **kwargs):
        if not first_in.is_set():
            first_in.set()
            second_in.wait(10)
        else:
            second_in.set()
            first_done.wait(10)
            seen_by_second.append(_blas_threads())
        return optimize(self, *args, **kwargs)

    def first():
        mf.mixed("Reaction ~ Days + (1|Subject)", sleep)
        first_done.set()

    monkeypatch.setattr(model_module.MixedModel, "optimize", in_order)
    threads = [threading.Thread(target=first),
               threading.Thread(target=mf.mixed, args=("Reaction ~ Days + (Days|Subject)", sleep))]
    threads[0].start()
    first_in.wait(10)
    threads[1].start()
    for thread in threads:
        thread.join()
    assert seen_by_second == [{path: 1 for path in blas_on_two_threads}]  # still limited for fit 2
    assert _blas_threads() == blas_on_two_threads


def test_fits_in_a_thread_pool_match_serial_fits_and_restore_blas_threads(blas_on_two_threads):
    from concurrent.futures import ThreadPoolExecutor

    sleep = mf.load_dataset("sleepstudy")
    formulas = ["Reaction ~ Days + (Days|Subject)", "Reaction ~ Days + (1|Subject)",
                "Reaction ~ 1 + (Days||Subject)"] * 4
    serial = [mf.mixed(f, sleep) for f in formulas]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda f: mf.mixed(f, sleep), formulas))
    assert _blas_threads() == blas_on_two_threads
    for one, other in zip(serial, concurrent):
        assert one.optsummary.fmin == other.optsummary.fmin
        np.testing.assert_array_equal(one.theta, other.theta)
        np.testing.assert_array_equal(one.fixef, other.fixef)
        np.testing.assert_array_equal(one.bse, other.bse)


def test_a_system_singular_at_the_optimum_raises_lme4s_error():
    # one weight of 1e20: lme4 stops with "Downdated VtV is not positive definite"
    # (tests/lme4/crash_cases.R); the fit had no factor to read its results off
    rec = json.loads(CRASH_FIXTURE.read_text())["errors"]["huge_weight"]
    weights = np.r_[1e20, np.ones(179)]
    with pytest.raises(ModelSpecError, match=rec["message"]) as err:
        mf.mixed(rec["formula"], mf.load_dataset(rec["dataset"]), weights=weights)
    assert "extreme weights" in str(err.value)


@pytest.mark.parametrize("dataset, formula, gradient_first", [
    ("Machines", "score ~ Machine + (0 + Machine|Worker)", True),  # one term, 6 θ
    ("Machines", "score ~ Machine + (Machine|Worker)", True),
    ("Machines", "score ~ Machine + (0 + Machine|Worker) + (1|Worker:Machine)", True),  # 7 θ, a dense rest
    ("Machines", "score ~ Machine + (1|Worker) + (1|Worker:Machine)", False),  # 2 θ
    ("egsingle", "math ~ year + (year|childid) + (year|schoolid)", False),  # 6 θ, the rest kept sparse
])
def test_models_with_five_theta_or_more_and_a_dense_rest_are_minimized_on_the_exact_gradient(dataset, formula,
                                                                                            gradient_first):
    # and reach BOBYQA's optimum or a lower one, at θ within lme4's bounds
    model = MixedModel(build_design(formula, mf.load_dataset(dataset)))
    opt = model.optimize()
    assert opt.optimizer == ("L-BFGS-B" if gradient_first else "nloptwrap")
    assert np.all(opt.final >= model.lower)
    from_bobyqa = model._finish(bobyqa(model.objective, model.start, model.lower), 100_000)
    assert opt.fmin <= from_bobyqa.fmin + 1e-12 * abs(from_bobyqa.fmin)
    assert opt.fmin == model.objective(opt.final)


def _richardson_hessian(gradient, x: np.ndarray, delta: float = 5e-4) -> np.ndarray:
    """A reference Hessian: central differences of the exact gradient, extrapolated from steps δ and 2δ (O(δ⁴))."""
    def central(d):
        columns = [(gradient(x + d * e) - gradient(x - d * e)) / (2.0 * d) for e in np.eye(x.size)]
        return np.column_stack(columns)

    H = (4.0 * central(delta) - central(2.0 * delta)) / 3.0
    return 0.5 * (H + H.T)


def test_where_the_gradient_is_exact_the_check_reads_it_and_differences_of_it(monkeypatch):
    # n + 1 gradients at the optimum instead of lme4's n² + n + 1 objectives, and a
    # Hessian closer to the truth than lme4's stencil gets (Machines: 7e-7 against 5e-4)
    model = MixedModel(build_design("score ~ Machine + (0 + Machine|Worker)", mf.load_dataset("Machines")))
    opt = model.optimize()
    assert model._gradient_first
    gradient = lambda theta: model._objective_and_gradient(theta)[1]  # noqa: E731
    exact = _richardson_hessian(gradient, opt.final)
    np.testing.assert_array_equal(opt.gradient, gradient(opt.final))
    scale = np.abs(exact).max()
    assert np.abs(opt.hessian - exact).max() <= 1e-5 * scale
    _, stencil = finite_derivatives(model.objective, opt.final, opt.fmin, paired=True)
    assert np.abs(stencil - exact).max() > 10 * np.abs(opt.hessian - exact).max()
    objectives, gradients = [], []
    objective, both = model.objective, model._objective_and_gradient
    monkeypatch.setattr(model, "objective", lambda theta: objectives.append(theta) or objective(theta))
    monkeypatch.setattr(model, "_objective_and_gradient", lambda theta: gradients.append(theta) or both(theta))
    model._finish(dataclasses.replace(opt), 100_000)
    assert not objectives and len(gradients) == model.ntheta + 1


@pytest.mark.parametrize("whole_columns", [whole._MOST_COLUMNS, 0])
def test_the_check_starts_from_the_gradient_evaluated_last(whole_columns, monkeypatch):
    # L-BFGS-B's last evaluation is at its optimum: the check's n + 1 gradients then factor n times,
    # the whole system (mixedfit.blocks.whole) or the blocked factor
    monkeypatch.setattr(whole, "_MOST_COLUMNS", whole_columns)
    model = MixedModel(build_design("score ~ Machine + (0 + Machine|Worker)", mf.load_dataset("Machines")))
    assert (model._whole is None) == (whole_columns == 0)
    opt = model.optimize()
    value, gradient = model._objective_and_gradient(opt.final)
    system = model if model._whole is None else model._whole
    factors, factor = [], system.factor
    system.factor = lambda theta: factors.append(theta) or factor(theta)
    kept = model._finish(dataclasses.replace(opt), 100_000)
    assert len(factors) == model.ntheta
    model._last_gradient = None
    model._finish(dataclasses.replace(opt), 100_000)
    assert len(factors) == 2 * model.ntheta + 1
    np.testing.assert_array_equal(kept.gradient, gradient)
    np.testing.assert_array_equal(kept.hessian, opt.hessian)
    assert model._objective_and_gradient(opt.final)[0] == value


def _crossed_or_joined_data(seed: int, five: bool) -> tuple[str, pd.DataFrame]:
    """A simulated model with four or five θ and a dense rest: crossed terms (even seeds) or one grouping factor."""
    rng = np.random.default_rng(seed)
    subj, item = np.repeat(np.arange(40), 15), np.tile(np.arange(15), 40)
    x, z, w = rng.normal(size=(3, subj.size))
    sd = rng.uniform(0, 1.2, 4)
    y = (1 + x + rng.normal(size=40)[subj] * sd[0] + rng.normal(size=40)[subj] * x * sd[1]
         + rng.normal(size=15)[item] * sd[2] + rng.normal(size=40)[subj] * z * sd[3] + rng.normal(size=subj.size))
    data = pd.DataFrame({"y": y, "x": x, "z": z, "w": w, "subj": subj.astype(str), "item": item.astype(str)})
    if seed % 2 == 0:
        formula = "y ~ x + z + (x|subj) + (z||item)" if five else "y ~ x + (x|subj) + (1|item)"
    else:
        formula = "y ~ x + z + w + (x|subj) + (0 + z|subj) + (0 + w|subj)" if five else "y ~ x + z + (x|subj) + (0 + z|subj)"
    return formula, data


@pytest.mark.parametrize("seed", range(6))
def test_five_theta_with_a_dense_rest_are_minimized_on_the_exact_gradient_to_bobyqa_firsts_objective_or_below(seed):
    formula, data = _crossed_or_joined_data(seed, five=True)
    model = MixedModel(build_design(formula, data), reml=bool(seed % 3))
    assert model.ntheta == 5 and model._gradient_first
    opt = model.optimize()
    assert opt.optimizer == "L-BFGS-B" and np.all(opt.final >= model.lower)
    from_bobyqa = model._finish(bobyqa(model.objective, model.start, model.lower), 100_000)
    assert opt.fmin <= from_bobyqa.fmin + 1e-10 * abs(from_bobyqa.fmin)


@pytest.mark.parametrize("seed", range(2))
def test_four_theta_stay_on_lme4s_bobyqa_path(seed):
    formula, data = _crossed_or_joined_data(seed, five=False)
    model = MixedModel(build_design(formula, data))
    assert model.ntheta == 4 and model.cross.factors_whole_rest
    assert model.optimize().optimizer == "nloptwrap"


def test_sleepstudys_three_theta_stay_on_lme4s_bobyqa_path():
    model = MixedModel(build_design("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy")))
    assert model.optimize().optimizer == "nloptwrap"


def _slopes_data(seed: int) -> tuple[str, pd.DataFrame]:
    """A simulated one-term model with 6 or 10 θ, its covariance often singular."""
    rng = np.random.default_rng(seed)
    groups, per = int(rng.integers(8, 60)), int(rng.integers(4, 12))
    g = np.repeat(np.arange(groups), per)
    x1, x2, x3 = rng.normal(size=(3, g.size))
    f = rng.integers(0, 4, g.size)
    sd = rng.uniform(0, 1.5, 4) * (rng.random(4) > 0.3)
    b = rng.normal(size=(groups, 4)) @ (np.tril(rng.normal(size=(4, 4)) * 0.5) + np.diag(sd)).T
    y = 1 + x1 + b[g, 0] + b[g, 1] * x1 + b[g, 2] * x2 + b[g, 3] * (f == 1) + rng.normal(size=g.size)
    data = pd.DataFrame({"y": y, "x1": x1, "x2": x2, "x3": x3, "f": f.astype(str), "g": g.astype(str)})
    formula = ["y ~ x1 + x2 + (x1 + x2|g)", "y ~ x1 + (0 + f|g)", "y ~ x1 + x2 + x3 + (x1 + x2 + x3|g)"][seed % 3]
    return formula, data


@pytest.mark.parametrize("seed", range(12))
def test_lbfgs_first_ends_at_bobyqa_firsts_objective_or_below(seed):
    # simulated, often singular fits: L-BFGS-B and then the check and polish, against BOBYQA and the same
    formula, data = _slopes_data(seed)
    model = MixedModel(build_design(formula, data), reml=bool(seed % 2))
    assert model._gradient_first
    opt = model.optimize()
    from_bobyqa = model._finish(bobyqa(model.objective, model.start, model.lower), 100_000)
    assert opt.fmin <= from_bobyqa.fmin + 1e-10 * abs(from_bobyqa.fmin)


def test_lme4s_gradient_check_is_made_once_for_the_same_derivatives(monkeypatch):
    model = MixedModel(build_design("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy")))
    opt = model.optimize()  # its polish loop ran _stopped_short on these derivatives
    checked = []
    monkeypatch.setattr(model_module, "_gradient_check", lambda o: checked.append(o) or (None, False))
    assert model.convergence(opt).messages == [] and checked == []
    moved = dataclasses.replace(opt, gradient=opt.gradient.copy())  # new arrays: checked again
    model.convergence(moved)
    assert checked == [moved]
