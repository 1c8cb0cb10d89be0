"""Finite-difference derivatives and the optimizers' wrappers, on functions whose derivatives are known."""

from __future__ import annotations

import numpy as np
import pytest

from mixedfit.optimize import bobyqa, finite_derivatives, gradient_derivatives, lbfgs

A = np.array([[4.0, 1.0, -0.5], [1.0, 3.0, 0.25], [-0.5, 0.25, 2.0]])
B = np.array([1.0, -2.0, 0.5])


def _quadratic(calls: list) -> callable:
    def f(x: np.ndarray) -> float:
        calls.append(x.copy())
        return float(0.5 * x @ A @ x + B @ x)

    return f


def test_central_differences_are_exact_on_a_quadratic():
    calls: list = []
    f, x = _quadratic(calls), np.array([0.3, -0.2, 1.1])
    g, H = finite_derivatives(f, x, f(x))
    assert len(calls) == 1 + 2 * 3**2  # lme4's deriv12 stencil: 2n along the axes, 4 per pair
    np.testing.assert_allclose(g, A @ x + B, rtol=1e-9)
    np.testing.assert_allclose(H, A, rtol=1e-6)


def test_paired_steps_give_the_same_derivatives_in_fewer_evaluations():
    # the cross terms from the two steps ±δ(eᵢ + eⱼ): exact on a quadratic, as deriv12's four
    calls: list = []
    f, x = _quadratic(calls), np.array([0.3, -0.2, 1.1])
    g, H = finite_derivatives(f, x, f(x), paired=True)
    assert len(calls) == 1 + 2 * 3 + 3 * 2
    np.testing.assert_allclose(g, A @ x + B, rtol=1e-9)
    np.testing.assert_allclose(H, A, rtol=1e-6)


def test_a_nearby_hessian_supplies_the_off_diagonal():
    calls: list = []
    f, x = _quadratic(calls), np.array([0.3, -0.2, 1.1])
    nearby = np.full((3, 3), 7.0)
    g, H = finite_derivatives(f, x, f(x), cross=nearby)
    assert len(calls) == 1 + 2 * 3
    np.testing.assert_allclose(g, A @ x + B, rtol=1e-9)
    np.testing.assert_allclose(np.diag(H), np.diag(A), rtol=1e-6)
    assert np.all(H[~np.eye(3, dtype=bool)] == 7.0) and np.all(nearby == 7.0)


def test_a_nearby_hessian_whose_diagonal_moved_is_evaluated_again():
    calls: list = []
    f, x = _quadratic(calls), np.array([0.3, -0.2, 1.1])
    same_diagonal = np.full((3, 3), 7.0)
    np.fill_diagonal(same_diagonal, np.diag(A))
    g, H = finite_derivatives(f, x, f(x), cross=same_diagonal, drift=1e-2)
    assert len(calls) == 1 + 2 * 3 and np.all(H[~np.eye(3, dtype=bool)] == 7.0)
    calls.clear()
    g, H = finite_derivatives(f, x, f(x), cross=np.full((3, 3), 7.0), drift=1e-2)
    assert len(calls) == 1 + 2 * 3**2
    np.testing.assert_allclose(H, A, rtol=1e-6)


@pytest.mark.parametrize("paired", [False, True])
def test_grouped_points_are_evaluated_together_and_change_no_value(paired):
    # grouped by the first coordinate, as a model groups θ by its first term's part
    calls: list = []
    f, x = _quadratic(calls), np.array([0.3, -0.2, 1.1])
    plain = finite_derivatives(f, x, f(x), paired=paired)
    calls.clear()
    grouped = finite_derivatives(f, x, f(x), paired=paired, group=lambda z: z[0])
    for a, b in zip(plain, grouped):
        np.testing.assert_array_equal(a, b)
    axes, pairs = calls[1:7], calls[7:]  # after f(x): each stage's points, grouped within it
    for stage in (axes, pairs):
        runs = [z[0] for k, z in enumerate(stage) if k == 0 or z[0] != stage[k - 1][0]]
        assert len(runs) == len(set(runs))  # a group, once left, never comes back
    assert len({z[0] for z in pairs}) < len(pairs)  # and some points did share a group


def test_bobyqa_reports_the_objective_at_its_optimum_without_evaluating_it_again():
    calls: list = []
    r = bobyqa(_quadratic(calls), np.zeros(3), np.full(3, -np.inf))
    assert r.feval == len(calls)
    assert r.fmin == float(0.5 * r.final @ A @ r.final + B @ r.final)
    np.testing.assert_allclose(r.final, np.linalg.solve(A, -B), atol=1e-4)  # xtol_rel = 1e-4


def test_lbfgs_minimizes_without_bounds_and_flips_a_negative_diagonal_back():
    # f depends on θ's first entry through its square (a template's diagonal): from a start
    # whose gradient sends it below its bound it ends negative, and comes back flipped
    calls: list = []

    def f(x):
        calls.append(x.copy())
        return float((x[0] ** 2 - 0.25) ** 2 + (x[1] - 0.5 * x[0]) ** 2), np.array(
            [4.0 * x[0] * (x[0] ** 2 - 0.25) - (x[1] - 0.5 * x[0]), 2.0 * (x[1] - 0.5 * x[0])])

    r = lbfgs(f, np.array([-0.3, 0.0]), np.array([0.0, -np.inf]))
    assert r.optimizer == "L-BFGS-B" and r.code == 0 and r.feval == len(calls)
    np.testing.assert_allclose(r.final, [0.5, 0.25], atol=1e-6)
    assert np.array_equal(calls[-1], r.final) and r.fmin == f(r.final)[0] < 1e-12  # evaluated where it ends


def test_lbfgs_steps_back_from_where_the_objective_is_infinite():
    def f(x):
        if x[0] > 1.5:
            return np.inf, np.zeros(1)
        return float((x[0] - 1.0) ** 2), 2.0 * (x - 1.0)

    r = lbfgs(f, np.array([3.0 - 4.0]), np.array([-np.inf]))
    assert np.isfinite(r.fmin) and abs(r.final[0] - 1.0) < 1e-6


def test_lbfgs_spends_no_more_calls_than_maxeval_and_returns_the_best_point_seen():
    calls: list = []

    def f(x):
        calls.append(x.copy())
        return float(0.5 * x @ A @ x + B @ x), A @ x + B

    r = lbfgs(f, np.zeros(3), np.full(3, -np.inf), maxeval=3)
    assert r.feval == len(calls) == 3 and r.code == 5 and r.message == "maxeval reached"
    assert r.fmin == min(float(0.5 * x @ A @ x + B @ x) for x in calls)
    done = lbfgs(f, np.zeros(3), np.full(3, -np.inf))
    assert done.code == 0 and done.fmin < r.fmin


def _cubic(x: np.ndarray) -> tuple[float, np.ndarray]:
    """exp(x₀) + x₀x₁² + x₂³, with its gradient: third derivatives that forward differences feel."""
    value = float(np.exp(x[0]) + x[0] * x[1] ** 2 + x[2] ** 3)
    return value, np.array([np.exp(x[0]) + x[1] ** 2, 2.0 * x[0] * x[1], 3.0 * x[2] ** 2])


def test_gradient_derivatives_take_n_plus_one_gradients_and_are_first_order_accurate():
    calls: list = []

    def f(x):
        calls.append(x.copy())
        return _cubic(x)

    x = np.array([0.3, -1.2, 0.8])
    g, H = gradient_derivatives(f, x)
    exact = np.array([[np.exp(x[0]), 2.0 * x[1], 0.0], [2.0 * x[1], 2.0 * x[0], 0.0], [0.0, 0.0, 6.0 * x[2]]])
    assert len(calls) == 1 + 3 and all(np.all(c >= x) for c in calls)  # steps up from x only
    np.testing.assert_array_equal(g, _cubic(x)[1])
    np.testing.assert_array_equal(H, H.T)
    assert 0 < np.abs(H - exact).max() <= 1e-5  # O(δ) with δ = 1e-6: third derivatives of order one
    _, coarse = gradient_derivatives(f, x, delta=1e-3)
    assert np.abs(coarse - exact).max() > 100 * np.abs(H - exact).max()


def test_a_step_where_the_objective_is_infinite_gives_the_hessian_nans():
    def f(x):
        return (np.inf, np.zeros(2)) if x[1] > 1.0 else (float(x @ x), 2.0 * x)

    _, H = gradient_derivatives(f, np.array([0.5, 1.0]))
    assert np.isnan(H[:, 1]).all() and np.isnan(H[1, :]).all() and H[0, 0] == pytest.approx(2.0)
