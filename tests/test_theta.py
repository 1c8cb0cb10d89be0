"""θ's layout (mixedfit.theta): templates, lme4's names and bounds, and the (sd, cor) scales."""

from __future__ import annotations

import numpy as np
import pytest

import mixedfit as mf
from mixedfit.terms import build_design
from mixedfit.theta import JoinedTheta, ThetaLayout, lower_template, template_positions


def test_lower_template_is_column_major():
    # lme4 stores the lower triangle of each template column by column.
    T = lower_template(np.arange(1.0, 7.0), 3)
    assert T.tolist() == [[1.0, 0.0, 0.0], [2.0, 4.0, 0.0], [3.0, 5.0, 6.0]]


def test_variance_scale_is_the_square_of_the_sd_scale_and_back():
    design = build_design("Reaction ~ Days + (Days + I(Days**2)|Subject) + (1|Days)", mf.load_dataset("sleepstudy"))
    layout = ThetaLayout(design.terms)
    rng = np.random.default_rng(3)
    signs = np.where(layout.diagonal, 1.0, rng.choice([-1.0, 1.0], layout.diagonal.size))
    theta = rng.uniform(0.1, 2.0, layout.diagonal.size) * signs
    sdcor = layout.to_sdcor(theta, 2.5)
    covariances = [2.5**2 * T @ T.T for T in layout.templates(theta)]
    varcov = layout.to_varcov(sdcor)
    expected = np.concatenate([C[template_positions(C.shape[0])] for C in covariances] + [[2.5**2]])
    np.testing.assert_allclose(varcov, expected, rtol=1e-12)
    np.testing.assert_allclose(layout.from_varcov(varcov), sdcor, rtol=1e-12)
    np.testing.assert_allclose(layout.from_sdcor(sdcor), theta, rtol=1e-10)


def test_joined_theta_puts_each_terms_theta_in_its_block():
    joined = JoinedTheta([[0, 2], [1]], [1, 1, 2])
    engine = joined.engine([np.array([1.0]), np.array([7.0]), np.array([2.0, 0.5, 3.0])])
    T = lower_template(engine[0], 3)
    assert T.tolist() == [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.5, 3.0]]
    assert engine[1].tolist() == [7.0]
    assert [T.tolist() for T in joined.by_model_term([T, np.eye(1)], 2)] == [[[1.0]], [[1.0]], [[2.0, 0.0], [0.5, 3.0]]]


def test_safe_chol_factors_what_lapack_refuses_and_passes_on_what_it_cannot():
    # lme4's safe_chol: a correlation of ±1 (singular), a zero sd, a diagonal matrix, NaN
    from mixedfit.theta import _safe_chol

    singular = np.array([[4.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 9.0]])
    L = _safe_chol(singular)
    np.testing.assert_allclose(L @ L.T, singular, atol=1e-14)
    assert np.array_equal(L, np.tril(L))
    zero_sd = np.diag([4.0, 0.0])
    assert _safe_chol(zero_sd).tolist() == [[2.0, 0.0], [0.0, 0.0]]
    assert _safe_chol(np.zeros((2, 2))).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    with_nan = np.array([[1.0, np.nan], [np.nan, 1.0]])
    assert np.array_equal(_safe_chol(with_nan), with_nan, equal_nan=True)
    positive = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert np.array_equal(_safe_chol(positive), np.linalg.cholesky(positive))


def _from_sdcor_on_arrays(layout: ThetaLayout, sdcor: np.ndarray) -> np.ndarray:
    """``from_sdcor`` term by term through ``_safe_chol`` on numpy arrays: what its Python-float path must equal."""
    from mixedfit.theta import _safe_chol

    out = []
    for sl, S in zip(layout.slices, layout.sizes):
        rows, cols = template_positions(S)
        v = sdcor[sl]
        cov = np.empty((S, S))
        sd = v[np.arange(S) * (2 * S - np.arange(S) + 1) // 2]  # each diagonal entry's place in the column-major slice
        cov[rows, cols] = cov[cols, rows] = np.where(rows == cols, 1.0, v) * (sd[rows] * sd[cols]) / sdcor[-1] ** 2
        out.append(_safe_chol(cov)[rows, cols])
    return np.concatenate(out)


def _sdcor_test_points(layout: ThetaLayout):
    rng = np.random.default_rng(8)
    diagonal = layout.diagonal
    for _ in range(3000):
        sd = np.abs(rng.standard_normal(diagonal.size)) * 10.0 ** rng.uniform(-4, 4, diagonal.size)
        yield np.append(np.where(diagonal, sd, rng.uniform(-1, 1, diagonal.size)), 10.0 ** rng.uniform(-3, 3))
    for special in (0.0, 1.0, -1.0, 1.0 - 1e-15, np.nan, np.inf):
        for where in range(diagonal.size):
            v = np.append(np.where(diagonal, 2.0, 0.3), 1.5)
            v[where] = abs(special) if diagonal[where] and special == special else special
            yield v
    yield np.append(np.where(diagonal, 0.0, 0.0), 1.0)
    yield np.append(np.where(diagonal, 2.0, 0.3), 0.0)


def test_from_sdcor_on_python_floats_gives_the_arrays_bits():
    # (1|g), (x|g) and a 3×3 term: the Python-float paths (S ≤ 2) against _safe_chol on arrays, bit for bit
    design = build_design("Reaction ~ Days + (Days|Subject) + (1|Days) + (Days + I(Days**2)|Subject)",
                          mf.load_dataset("sleepstudy"))
    layout = ThetaLayout(design.terms)
    assert sorted(set(layout.sizes)) == [1, 2, 3]
    with np.errstate(all="ignore"):
        for v in _sdcor_test_points(layout):
            assert np.array_equal(layout.from_sdcor(v), _from_sdcor_on_arrays(layout, v), equal_nan=True), v


@pytest.mark.parametrize("plan, sizes", [([[0, 2], [1]], [1, 1, 2]), ([[0]], [3]), ([[1], [0]], [2, 1])])
def test_joined_theta_gradient_is_the_adjoint_of_the_engine_templates(plan, sizes):
    # derivatives in the engine templates' entries, read as the gradient in θ, give every directional derivative
    joined = JoinedTheta(plan, sizes)
    rng = np.random.default_rng(5)
    widths = [sum(sizes[i] for i in parts) for parts in plan]
    grads = [rng.normal(size=(w, w)) for w in widths]
    gradient = joined.theta_gradient(grads)
    for _ in range(5):
        d = [rng.normal(size=s * (s + 1) // 2) for s in sizes]
        along = sum(float(np.sum(G * lower_template(th, G.shape[0]))) for G, th in zip(grads, joined.engine(d)))
        assert gradient @ np.concatenate(d) == pytest.approx(along, rel=1e-12)
