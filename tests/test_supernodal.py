"""CHOLMOD's sparse factorization of the rest against LAPACK's dense one, and its care of cvxopt's state."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from cvxopt import cholmod, matrix, spmatrix

import mixedfit as mf
from mixedfit.blocks import rest
from mixedfit.blocks.rest import CholmodRest, KeptRest
from mixedfit.model import MixedModel
from mixedfit.supernodal import SupernodalRest, factor_column_counts, upper_pattern
from mixedfit.terms import build_design

EGSINGLE = "math ~ year + size + female + (year|childid) + (year|schoolid)"


@pytest.fixture(scope="module")
def model() -> MixedModel:
    model = MixedModel(build_design(EGSINGLE, mf.load_dataset("egsingle")))
    model.objective(model.start)  # the first factorization decides between CHOLMOD and LAPACK
    assert model.cross.rest.dense is False
    return model


def _thetas(model: MixedModel, count: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [np.where(np.isfinite(model.lower), rng.uniform(0.1, 2.0, model.ntheta), rng.normal(size=model.ntheta))
            for _ in range(count)]


def test_the_objective_reads_the_diagonal_of_the_dense_factor(model):
    cross = model.cross
    assert isinstance(cross.rest, CholmodRest)
    k = cross.p + 1
    for theta in _thetas(model):
        f = model.factor(theta)
        dense = np.diagonal(f.Lrr)
        # X's and y's entries in their place; the random rest's in CHOLMOD's order, so only their logarithms' sum counts.
        np.testing.assert_allclose(f.diagonal[-k:], dense[-k:], rtol=1e-11)
        assert np.sum(np.log(f.diagonal[:-k])) == pytest.approx(np.sum(np.log(dense[:-k])), rel=1e-12)


def test_not_positive_definite_gives_none():
    G = np.array([[1.0, 2.0], [2.0, 1.0]])
    pos = np.flatnonzero(np.tril(G))
    rest = SupernodalRest(pos, 2, 1)
    assert rest.diagonal(G.reshape(-1)[pos]) is None
    G[0, 0] = 5.0
    np.testing.assert_allclose(rest.diagonal(G.reshape(-1)[pos]), np.diagonal(np.linalg.cholesky(G)))


def test_cvxopt_options_are_the_callers_own(monkeypatch):
    # A user's simplicial setting would leave no diagonal to read; theirs is restored after.
    monkeypatch.setitem(cholmod.options, "supernodal", 0)
    fresh = MixedModel(build_design(EGSINGLE, mf.load_dataset("egsingle")))
    theta = _thetas(fresh, 1)[0]
    assert np.isfinite(fresh.objective(theta))
    assert cholmod.options == {"supernodal": 0}


def test_pickled_model_factors_again(model):
    theta = _thetas(model, 1)[0]
    before = model.objective(theta)
    again = pickle.loads(pickle.dumps(model))
    assert again.objective(theta) == before


def test_pickled_model_factors_densely_without_cvxopt(model, monkeypatch):
    theta = _thetas(model, 1)[0]
    data = pickle.dumps(model)
    monkeypatch.setattr(rest, "cholmod_available", lambda: False)
    again = pickle.loads(data)
    assert type(model.cross.rest) is CholmodRest and type(again.cross.rest) is KeptRest
    assert again.objective(theta) == pytest.approx(model.objective(theta), rel=1e-12)


def test_trailing_block_from_cholmod_while_current_then_from_the_dense_factor(model):
    k = model.cross.p + 1
    first, second = _thetas(model, 2)
    f = model.factor(first)
    from_cholmod = f.trailing(k)
    assert f._rest is not None and callable(f._rest)  # Lrr not formed for it
    np.testing.assert_allclose(from_cholmod, f.Lrr[-k:, -k:], rtol=1e-10, atol=1e-12 * np.abs(from_cholmod).max())
    g = model.factor(first)
    model.factor(second)  # CHOLMOD's factor now holds another θ: g's block comes from LAPACK's factor
    np.testing.assert_array_equal(g.trailing(k), g.Lrr[-k:, -k:])
    np.testing.assert_allclose(g.trailing(k), from_cholmod, rtol=1e-10, atol=1e-12 * np.abs(from_cholmod).max())


def test_leading_solution_from_cholmod_while_current_then_from_the_dense_factor(model):
    first, second = _thetas(model, 2)
    f = model.factor(first)
    from_cholmod = f.leading_solution()
    assert callable(f._rest)  # Lrr not formed for it
    L = f.Lrr
    dense = np.linalg.solve(L[:-1, :-1].T, L[-1, :-1])
    np.testing.assert_allclose(from_cholmod, dense, rtol=1e-9, atol=1e-12 * np.abs(dense).max())
    g = model.factor(first)
    model.factor(second)  # CHOLMOD's factor now holds another θ: g's solution comes from LAPACK's factor
    np.testing.assert_allclose(g.leading_solution(), dense, rtol=1e-12, atol=1e-14 * np.abs(dense).max())


def test_dense_share_reads_the_fill_off_the_pattern_before_any_factorization():
    m = 60
    B = np.random.default_rng(2).normal(size=(m, m))
    full = B @ B.T + m * np.eye(m)
    banded = np.diag(np.full(m, 4.0)) + np.diag(np.ones(m - 1), -1) + np.diag(np.ones(m - 1), 1)
    banded[-1, :] = banded[:, -1] = 1.0  # the last column (y's) meets every other, as in a rest
    banded[-1, -1] = m + 4.0
    shares = []
    for G in (full, banded):
        pos = np.flatnonzero(np.tril(G))
        supernodal = SupernodalRest(pos, m, m - 1)
        shares.append(supernodal.dense_share())
        assert supernodal.generation == 0  # no numeric factorization
        np.testing.assert_allclose(supernodal.diagonal(G.reshape(-1)[pos])[-1], np.linalg.cholesky(G)[-1, -1],
                                   rtol=1e-12)
    assert shares[0] == pytest.approx(1.0) and shares[1] < 0.2, shares


def _numeric_counts(pattern: np.ndarray, order: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The nonzeros per column of LAPACK's Cholesky factor of a matrix of this pattern with generic values, in ``order``.

    Random values leave no entry of the fill zero by cancellation, and the
    diagonal is only as large as positive definiteness needs, so that no
    entry of the fill underflows.
    """
    values = np.where(pattern | pattern.T, rng.uniform(0.5, 1.0, pattern.shape), 0.0)
    G = np.tril(values) + np.tril(values, -1).T
    G[np.diag_indices_from(G)] = np.abs(G).sum(axis=1) + 1.0
    return np.count_nonzero(np.linalg.cholesky(G[np.ix_(order, order)]), axis=0)


@pytest.mark.parametrize("m, density, seed", [(1, 0.0, 0), (9, 0.3, 1), (40, 0.05, 2), (40, 0.2, 3), (120, 0.02, 4)])
def test_factor_column_counts_are_the_factors_own(m, density, seed):
    rng = np.random.default_rng(seed)
    pattern = np.tril(rng.random((m, m)) < density) | np.eye(m, dtype=bool)
    pos = np.flatnonzero(pattern)
    for order in (np.arange(m), rng.permutation(m)):
        np.testing.assert_array_equal(factor_column_counts(pos, m, order), _numeric_counts(pattern, order, rng))


def _crossed(rows: int) -> pd.DataFrame:
    """(1|a) + (1|b) on 600 × 100 levels drawn at random: the more rows, the more levels of b share one of a."""
    rng = np.random.default_rng(0)
    a, b = rng.integers(600, size=rows), rng.integers(100, size=rows)
    y = rng.normal(size=600)[a] + rng.normal(size=100)[b] + rng.normal(size=rows)
    return pd.DataFrame({"y": y, "x": rng.normal(size=rows), "a": a.astype(str), "b": b.astype(str)})


_CROSSED_THETAS = [np.array([0.4, 0.7]), np.array([1.1, 0.2]), np.array([0.05, 2.0])]


@pytest.mark.parametrize("rows, dense", [(1200, True), (700, False)])  # the factor's flops: 0.42 and 0.11 of dense
def test_lapack_factors_the_rest_where_cholmods_factor_is_nearly_dense(rows, dense, monkeypatch):
    monkeypatch.setattr(rest.cores, "threaded", lambda columns: True)
    design = build_design("y ~ x + (1|a) + (1|b)", _crossed(rows))
    model = MixedModel(design)
    assert type(model.cross.rest) is CholmodRest and model.cross.rest.dense is None
    values = [model.objective(theta) for theta in _CROSSED_THETAS]
    assert model.cross.rest.dense is dense
    # CHOLMOD factors each θ, or none: the fill is read off the pattern.
    assert model.cross.rest.cholmod.generation == (0 if dense else len(_CROSSED_THETAS))
    monkeypatch.setattr(rest, "cholmod_available", lambda: False)
    lapack = MixedModel(design)
    assert type(lapack.cross.rest) is KeptRest
    np.testing.assert_allclose(values, [lapack.objective(theta) for theta in _CROSSED_THETAS], rtol=1e-12)


def test_cholmod_keeps_the_rest_where_lapack_would_run_on_one_core(monkeypatch):
    monkeypatch.setattr(rest.cores, "threaded", lambda columns: False)
    model = MixedModel(build_design("y ~ x + (1|a) + (1|b)", _crossed(1200)))
    for theta in _CROSSED_THETAS:
        model.objective(theta)
    assert model.cross.rest.dense is False
    assert model.cross.rest.cholmod.generation == len(_CROSSED_THETAS)


@pytest.mark.parametrize("m", [1, 63, 64, 65, 300])
def test_the_pattern_built_in_row_blocks_is_cvxopts_own(m):
    # upper_pattern stacks blocks of 64 rows, because cvxopt's triplet constructor is quadratic in a
    # column's length; the matrix must be the one that constructor builds, empty row blocks included
    rng = np.random.default_rng(m)
    dense = np.triu(rng.random((m, m)) < 0.05)
    dense[:, -min(m, 5):] = np.triu(np.ones((m, min(m, 5)), bool), -(m - min(m, 5)))  # full last columns
    if m > 200:
        dense[64:128, :] = False  # a block of rows with no entries
    dense[np.arange(m), np.arange(m)] = m <= 200
    cols, rows = np.nonzero(dense.T)  # column-major order, as the rest's positions come
    ours = upper_pattern(rows.astype(np.int64), cols.astype(np.int64), m)
    theirs = spmatrix(1.0, matrix(rows.astype(np.int64)), matrix(cols.astype(np.int64)), (m, m))
    assert ours.size == theirs.size
    for a, b in zip(ours.CCS, theirs.CCS):
        np.testing.assert_array_equal(np.asarray(a).ravel(), np.asarray(b).ravel())
