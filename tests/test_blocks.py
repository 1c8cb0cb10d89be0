"""The blocked engine's pieces against each other.

The objective itself is checked against lme4 (test_lme4_fixtures) and against a
naive dense evaluation (test_property); here the engine's alternative paths must
agree with each other exactly enough to be interchangeable.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mixedfit as mf
from mixedfit import blocks
from mixedfit.blocks import crossproducts, factor, levels, memory, rest, schur, whole
from mixedfit.blocks import CrossBlocks
from mixedfit.blocks.factor import DenseCholesky, NestedLeadCholesky
from mixedfit.blocks.gradient import theta_gradient
from mixedfit.blocks.rest import CholmodRest, DenseRest, KeptRest
from mixedfit.blocks.schur import DenseRowProducts, RankUpdate, SparseRowProducts, XYProducts
from mixedfit.blocks.whole import WholeSystem
from mixedfit.errors import RankDeficiencyWarning
from mixedfit.model import MixedModel
from mixedfit.terms import build_design
from mixedfit.theta import lower_template

CASES = [
    ("Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)"),
    ("egsingle", "math ~ year + size + female + (year|childid) + (year|schoolid)"),
    ("Machines", "score ~ Machine + (0 + Machine|Worker) + (1|Worker:Machine)"),
]


def _random_thetas(model: MixedModel, seed: int, high: float = 2.0, count: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.where(np.isfinite(model.lower), rng.uniform(0.1, high, model.ntheta), rng.normal(size=model.ntheta))
            for _ in range(count)]


def _update(model: MixedModel):
    """The model's Schur update (``mixedfit.blocks.schur``)."""
    return model.cross.rest.update


# Each way of forming the Schur products, forced by the settings that choose it.
SCHUR_PATHS = {
    "pattern": {"_DENSE_R0_FILL": 2.0},
    "sparse products": {"_DENSE_R0_FILL": 2.0, "_PATTERN_BUDGET": -1},
    "dense rows": {"_DENSE_R0_FILL": 0.0},
}


@pytest.mark.parametrize("name, formula", CASES + [("Machines", "score ~ Machine + (0 + Machine|Worker) + (1|Machine)")])
def test_schur_product_paths_agree(name, formula, monkeypatch):
    design = build_design(formula, mf.load_dataset(name))
    models = {}
    for path, settings in SCHUR_PATHS.items():
        with monkeypatch.context() as patch:
            for setting, value in settings.items():
                patch.setattr(schur, setting, value)
            models[path] = MixedModel(design)
    products = {path: [type(piece) for piece in _update(models[path]).products]
                for path in ("pattern", "sparse products")}
    assert products["pattern"] in ([], [XYProducts]) and SparseRowProducts in products["sparse products"]
    dense = _update(models["dense rows"])
    assert isinstance(dense, RankUpdate) if models["dense rows"].cross.first.size == 1 else (
        DenseRowProducts in [type(piece) for piece in dense.products])
    for theta in _random_thetas(models["pattern"], 7):
        reference = models["pattern"].objective(theta)
        for path in ("sparse products", "dense rows"):
            assert models[path].objective(theta) == pytest.approx(reference, rel=1e-12), path


@pytest.mark.parametrize("name, formula", CASES)
def test_xy_map_equals_products(name, formula, monkeypatch):
    monkeypatch.setattr(schur, "_DENSE_R0_FILL", 2.0)  # dense rows with S = 1 take X and y in their update
    design = build_design(formula, mf.load_dataset(name))
    mapped = MixedModel(design)
    monkeypatch.setattr(schur, "_MAP_BUDGET", -1)
    formed = MixedModel(design)
    assert XYProducts not in [type(piece) for piece in _update(mapped).products]
    assert XYProducts in [type(piece) for piece in _update(formed).products]
    for theta in _random_thetas(mapped, 7):
        np.testing.assert_allclose(formed.objective(theta), mapped.objective(theta), rtol=1e-12)


def _moved_children() -> "mf.pd.DataFrame":
    """egsingle with every 40th child's last year moved to the next school: children in two
    schools give the school term off-diagonal blocks in the rest."""
    data = mf.load_dataset("egsingle").copy()
    schools = data["schoolid"].cat.categories
    last = ~data["childid"].duplicated(keep="last") & (data["childid"].cat.codes % 40 == 0)
    moved = (data.loc[last, "schoolid"].cat.codes + 1) % len(schools)
    data.loc[last, "schoolid"] = schools[moved]
    return data


SPARSE_CASES = [
    ("egsingle", "math ~ year + size + female + (year|childid) + (year|schoolid)"),
    ("Chem97", "score ~ gcsecnt + (1|school) + (1|lea)"),
    (_moved_children, "math ~ year + size + female + (year|childid) + (year|schoolid)"),
    (_moved_children, "math ~ year + (year|childid) + (1|schoolid) + (0 + year|schoolid)"),
]


@pytest.mark.parametrize("cholmod", [True, False])
@pytest.mark.parametrize("name, formula", SPARSE_CASES)
def test_sparse_rest_equals_dense_rest(name, formula, cholmod, monkeypatch):
    # The kept entries factored by CHOLMOD, or (without cvxopt) written into a
    # zeroed array for LAPACK, against the dense rest.
    data = name() if callable(name) else mf.load_dataset(name)
    design = build_design(formula, data)
    monkeypatch.setattr(rest, "cholmod_available", lambda: cholmod)
    sparse = MixedModel(design)
    monkeypatch.setattr(rest, "_SPARSE_FILL", -1)
    dense = MixedModel(design)
    assert type(sparse.cross.rest) is (CholmodRest if cholmod else KeptRest) and type(dense.cross.rest) is DenseRest
    for theta in _random_thetas(sparse, 3):
        fs, fd = sparse.factor(theta), dense.factor(theta)
        np.testing.assert_allclose(np.tril(fs.Lrr), np.tril(fd.Lrr), rtol=1e-10, atol=1e-12)
        for f in (fs, fd):  # a lower triangular factor, whether LAPACK cleared above the diagonal or not
            np.testing.assert_array_equal(np.triu(f.Lrr, 1), 0.0)
        assert sparse.objective(theta) == pytest.approx(dense.objective(theta), rel=1e-12)


@pytest.mark.parametrize("name, formula", [("Machines", "score ~ Machine + (0 + Machine|Worker)"),
                                           ("sleepstudy", "Reaction ~ Days + (Days + I((Days / 9)**2) + I((Days / 9)**3)|Subject)")])
def test_first_block_on_planes_equals_batched_factors(name, formula, monkeypatch):
    design = build_design(formula, mf.load_dataset(name))
    planes = MixedModel(design)
    assert planes.cross.first.size >= 3
    for theta in _random_thetas(planes, 11, high=8.0):
        T0 = planes.cross.templates(planes.engine_theta(theta))[0]
        monkeypatch.setattr(levels, "_PLANES_MIN_LEVELS", 0)
        logdet_p, M_p = planes.cross.first.eliminate(T0)
        monkeypatch.setattr(levels, "_PLANES_MIN_LEVELS", 10**9)
        logdet_b, M_b = planes.cross.first.eliminate(T0)
        assert logdet_p == pytest.approx(logdet_b, rel=1e-13)
        np.testing.assert_allclose(M_p, M_b, rtol=1e-11, atol=1e-13 * np.abs(M_b).max())


def test_first_block_3x3_in_closed_form_equals_lapacks_factors():
    # S = 3 on sleepstudy's 18 levels, eliminated by the adjugate (_first_block_3x3);
    # the reference is numpy's Cholesky factor and inverse of each level's block.
    model = MixedModel(build_design("Reaction ~ Days + (Days + I((Days / 9)**2)|Subject)",
                                    mf.load_dataset("sleepstudy")))
    first = model.cross.first
    assert first.size == 3 and first.nlevels >= levels._CLOSED_3X3_MIN_LEVELS
    rows, cols = np.tril_indices(3)
    thetas = _random_thetas(model, 12, high=8.0) + [np.array([1e3, 5.0, -3.0, 1e2, 0.0, 1e-3]), np.zeros(6)]
    for theta in thetas:
        T0 = model.cross.templates(model.engine_theta(theta))[0]
        B = T0.T @ first.crossprods @ T0 + np.eye(3)
        logdet = 2.0 * np.log(np.linalg.cholesky(B).diagonal(axis1=1, axis2=2)).sum()
        M = (T0 @ np.linalg.inv(B) @ T0.T)[:, rows, cols].T
        logdet_c, M_c = first.eliminate(T0)
        assert logdet_c == pytest.approx(logdet, rel=1e-13, abs=1e-13)
        np.testing.assert_allclose(M_c, M, rtol=1e-11, atol=1e-13 * np.abs(M).max())


@pytest.mark.parametrize("fill", [rest._SPARSE_FILL, -1])
@pytest.mark.parametrize("name, formula", CASES)
def test_kept_eliminations_give_the_fresh_factor(name, formula, fill, monkeypatch):
    # Steps of one coordinate at a time from a base θ, and back: the first
    # term's θ repeats, and its kept elimination must stand in exactly.
    monkeypatch.setattr(rest, "_SPARSE_FILL", fill)
    design = build_design(formula, mf.load_dataset(name))
    keeping = MixedModel(design)
    monkeypatch.setattr(crossproducts, "_ELIMINATIONS_KEPT", 0)
    fresh = MixedModel(design)
    assert keeping.cross._elimination_slots == 3 and fresh.cross._elimination_slots == 0
    first_blocks = []
    monkeypatch.setattr(keeping.cross.first, "eliminate",
                        lambda T0: first_blocks.append(T0) or fresh.cross.first.eliminate(T0))
    base = keeping.start + 0.1
    steps = [base] + [base + 0.05 * np.eye(base.size)[i] for i in range(base.size)] + [base]
    walk = steps + steps[::-1]
    for theta in walk:
        fk, ff = keeping.factor(theta), fresh.factor(theta)
        np.testing.assert_array_equal(np.tril(fk.Lrr), np.tril(ff.Lrr))
        assert fk.logdet0 == ff.logdet0
    assert len(first_blocks) < len(walk) // 2 and len(keeping.cross._eliminations) <= 3
    assert not fresh.cross._eliminations


@pytest.mark.parametrize("name, formula", CASES)
def test_cross_blocks_add_over_row_partitions(name, formula):
    design = build_design(formula, mf.load_dataset(name))
    n = design.nobs
    half = np.arange(n) < n // 2

    def part(mask: np.ndarray):
        terms = [dataclasses.replace(t, z=t.z[mask], codes=t.codes[mask]) for t in design.terms]
        return dataclasses.replace(design, y=design.y[mask], X=design.X[mask], terms=terms, rows=design.rows[mask])

    whole = CrossBlocks.from_design(design)
    summed = CrossBlocks.from_design(part(half)) + CrossBlocks.from_design(part(~half))
    # Each part's X and y are in the frame of its own rows; the sum is in the first's.
    summed = summed.in_frame(whole.frame)
    np.testing.assert_allclose(summed.A00, whole.A00, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(summed.R0.toarray(), whole.R0.toarray(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(summed.F0, whole.F0, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(summed.Arr, whole.Arr, rtol=1e-12, atol=1e-9)
    assert summed.n == whole.n
    theta = MixedModel(design).start
    assert MixedModel(design, blocks=summed).objective(theta) == pytest.approx(MixedModel(design).objective(theta), rel=1e-12)


def _dense_z(term) -> np.ndarray:
    """A term's Z as a dense (n, ℓS) array: row i holds z_i in its level's S columns."""
    n, S = term.z.shape
    Z = np.zeros((n, term.nlevels * S))
    Z[np.arange(n)[:, None], term.codes[:, None] * S + np.arange(S)] = term.z
    return Z


@pytest.mark.parametrize("name, formula", CASES + [("Pastes", "strength ~ 1 + (1|batch/cask)"), ("sleepstudy", "Reaction ~ Days + (Days|Subject) + (1|Days)")])
def test_cross_blocks_random_parts_are_the_dense_cross_products(name, formula):
    data = mf.load_dataset(name)
    weights = np.random.default_rng(3).uniform(0.5, 2.0, len(data))
    design = build_design(formula, data, weights=weights)
    cross = MixedModel(design).cross
    first, *rest = [_dense_z(t) for t in cross.terms]
    Zr = np.hstack(rest)
    w = design.weights[:, None]
    blocks = CrossBlocks.from_design(design)
    qr = Zr.shape[1]
    np.testing.assert_allclose(blocks.R0.toarray(), Zr.T @ (w * first), rtol=1e-13, atol=1e-10)
    np.testing.assert_allclose(blocks.Arr[:qr, :qr], Zr.T @ (w * Zr), rtol=1e-13, atol=1e-10)
    assert blocks.R0.has_sorted_indices
    np.testing.assert_array_equal(blocks.Arr, blocks.Arr.T)


@pytest.mark.parametrize("name, formula", [
    ("sleepstudy", "Reaction ~ Days + (1|Days) + (Days||Subject)"),
    ("Machines", "score ~ Machine + (1|Worker) + (0 + Machine|Worker) + (1|Worker:Machine)"),
])
def test_terms_on_one_factor_are_joined_and_agree_with_separate_terms(name, formula, monkeypatch):
    design = build_design(formula, mf.load_dataset(name))
    joined = MixedModel(design)
    monkeypatch.setattr(blocks.sums, "_same_factor", lambda a, b: False)
    separate = MixedModel(design)
    assert [len(parts) for parts in joined.cross.plan] == [2, 1]
    assert all(len(parts) == 1 for parts in separate.cross.plan)
    for theta in _random_thetas(joined, 5):
        assert joined.objective(theta) == pytest.approx(separate.objective(theta), rel=1e-12)
        fj, fs = joined.factor(theta), separate.factor(theta)
        (beta_j, u_j), (beta_s, u_s) = joined.cross.solve(fj), separate.cross.solve(fs)
        np.testing.assert_allclose(beta_j, beta_s, rtol=1e-9)
        for bj, bs in zip(*(m.cross.joined.by_model_term([u @ T.T for u, T in zip(us, f.templates)], 1)
                            for m, us, f in ((joined, u_j, fj), (separate, u_s, fs)))):
            np.testing.assert_allclose(bj, bs, rtol=1e-8, atol=1e-10)
        for Tj, Ts in zip(joined.cross.joined.by_model_term(fj.templates, 2), separate.cross.joined.by_model_term(fs.templates, 2)):
            np.testing.assert_array_equal(Tj, Ts)


@pytest.mark.parametrize("name, formula, nested", [
    ("Pastes", "strength ~ 1 + (1|batch/cask)", True),
    ("egsingle", "math ~ year + size + female + (year|childid) + (year|schoolid)", True),
    ("Machines", "score ~ Machine + (1|Worker) + (1|Worker:Machine)", True),
    ("Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)", False),
])
def test_nested_lead_factors_as_the_dense_block_does(name, formula, nested, monkeypatch):
    # Children in schools: after the children's elimination the schools' block has
    # no entries between schools and is eliminated school by school.
    design = build_design(formula, mf.load_dataset(name))
    monkeypatch.setattr(factor, "_NESTED_MIN_COLUMNS", 0)
    by_levels = MixedModel(design)
    monkeypatch.setattr(factor, "_NESTED_MIN_COLUMNS", 10**9)
    dense = MixedModel(design)
    assert type(by_levels.cross.rest.factorization) is (NestedLeadCholesky if nested else DenseCholesky)
    assert type(dense.cross.rest.factorization) is DenseCholesky
    for theta in _random_thetas(by_levels, 13):
        fl, fd = by_levels.factor(theta), dense.factor(theta)
        np.testing.assert_array_equal(fl.Lrr, np.tril(fl.Lrr))
        np.testing.assert_allclose(fl.Lrr, fd.Lrr, rtol=1e-10, atol=1e-12 * np.abs(fd.Lrr).max())
        assert by_levels.objective(theta) == pytest.approx(dense.objective(theta), rel=1e-12)


@pytest.mark.parametrize("name, formula, levels", [
    ("Chem97", "score ~ gcsecnt + (1|school) + (1|lea)", 2410),
    ("egsingle", "math ~ year + size + female + (year|childid) + (year|schoolid)", 1721),
    ("InstEval", "y ~ service + (1|s) + (1|d) + (1|dept)", 2972),
])
def test_schur_map_merging_levels_with_equal_blocks_gives_the_unmerged_factor(name, formula, levels, monkeypatch):
    monkeypatch.setattr(schur, "_SHARED_MIN_PRODUCTS", 0)  # Chem97's and egsingle's maps are small
    design = build_design(formula, mf.load_dataset(name))
    merged = MixedModel(design)
    monkeypatch.setattr(schur, "_SHARED_LEVELS", -1)
    apart = MixedModel(design)
    planes = merged.cross.first.packed.shape[0]
    merged_map, apart_map = _pattern(merged), _pattern(apart)
    groups = merged_map.levels.size
    assert apart_map.levels is None and apart_map.matrix.shape[1] == planes * levels
    assert groups < levels / 2 and merged_map.matrix.shape[1] == planes * groups
    assert merged_map.matrix.nnz < apart_map.matrix.nnz
    for theta in _random_thetas(merged, 11, count=3):
        fm, fa = merged.factor(theta), apart.factor(theta)
        np.testing.assert_allclose(np.tril(fm.Lrr), np.tril(fa.Lrr), rtol=1e-10, atol=1e-12 * np.abs(fa.Lrr).max())
        assert merged.objective(theta) == pytest.approx(apart.objective(theta), rel=1e-12)


def _pattern(model: MixedModel) -> schur.PackedMap:
    """The Schur pattern's map: the update's sparse one (the X/y map is dense)."""
    return next(piece for piece in _update(model).maps if not isinstance(piece.matrix, np.ndarray))


@pytest.mark.parametrize("kept", [True, False])
@pytest.mark.parametrize("name, formula", [("Chem97", "score ~ gcsecnt + (1|school) + (1|lea)"), CASES[1]])
def test_a_schur_map_split_between_two_threads_gives_the_same_bits(name, formula, kept, monkeypatch):
    from mixedfit import cores

    monkeypatch.setattr(schur, "_DENSE_R0_FILL", 2.0)
    monkeypatch.setattr(rest, "_SPARSE_FILL", 1.0 if kept else -1)
    design = build_design(formula, mf.load_dataset(name))
    whole = MixedModel(design)
    monkeypatch.setattr(schur, "_SPLIT_PRODUCTS", 0)
    monkeypatch.setattr(cores, "busy", lambda: False)
    monkeypatch.setattr(cores, "_usable_cores", lambda: 2)
    split = MixedModel(design)
    assert _pattern(split)._halves is not None and _pattern(whole)._halves is None
    assert isinstance(split.cross.rest, KeptRest) == kept
    top, bottom = _pattern(split)._halves
    assert top.nnz + bottom.nnz == _pattern(split).matrix.nnz and min(top.nnz, bottom.nnz) > 0
    for theta in _random_thetas(whole, 5, count=3):
        packed = whole.cross.first.eliminate(whole.cross.templates(whole.engine_theta(theta))[0])[1]
        np.testing.assert_array_equal(split.cross.rest.eliminated(packed), whole.cross.rest.eliminated(packed))
        assert split.objective(theta) == whole.objective(theta)


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("positions", ["unbroken", "gaps", "many gaps", "unordered"])
def test_a_packed_map_subtracts_its_product_at_its_positions_and_nowhere_else(positions, split, monkeypatch):
    # Filled out to a slice where few positions are skipped, or by the positions themselves:
    # either way g[at] -= matrix @ M, the other entries untouched, split between threads or not
    from mixedfit import cores

    rng = np.random.default_rng(len(positions))
    rows, planes, ell = 40, 2, 7
    matrix = sp.csr_matrix(np.where(rng.random((rows, planes * ell)) < 0.3, rng.normal(size=(rows, planes * ell)), 0.0))
    skipped = {"unbroken": 0, "gaps": 3, "many gaps": 30}.get(positions, 0)
    at = 5 + np.sort(rng.choice(rows + skipped, rows, replace=False))
    if positions == "unordered":
        at = rng.permutation(at)
    monkeypatch.setattr(schur, "_SPLIT_PRODUCTS", 0 if split else 10**9)
    monkeypatch.setattr(cores, "busy", lambda: False)
    monkeypatch.setattr(cores, "_usable_cores", lambda: 2)
    piece = schur.PackedMap(matrix, at)
    assert (piece._halves is not None) == split
    assert isinstance(piece._where[0], slice) == (positions in ("unbroken", "gaps"))
    packed = rng.normal(size=(planes, ell))
    g = rng.normal(size=at.max() + 9)
    expected = g.copy()
    expected[at] -= matrix @ packed.ravel()
    piece.subtract(g, packed)
    np.testing.assert_array_equal(g, expected)


@pytest.mark.parametrize("S0, shared", [(1, False), (1, True), (2, False), (2, True), (3, False)])
def test_the_schur_pattern_maps_m_onto_the_lower_triangle_of_the_dense_product(S0, shared):
    # Ar0 M Ar0ᵀ formed densely, M block diagonal (levels sharing a block where shared): the map
    # gives every entry of its lower triangle in the random rest's columns, and none lies outside its positions
    rng = np.random.default_rng(10 * S0 + shared)
    m, qr, ell = 30, 26, 17
    Ar0 = np.where(rng.random((m, ell * S0)) < 0.2, rng.normal(size=(m, ell * S0)), 0.0)
    Ar0[qr:] = rng.normal(size=(m - qr, ell * S0))  # X's and y's rows are dense
    which = rng.integers(4, size=ell) if shared else None
    P, pos = schur._schur_pattern(sp.csr_matrix(Ar0), S0, m, qr, which)
    blocks_ = rng.normal(size=(4 if shared else ell, S0, S0))
    blocks_ = blocks_ @ np.swapaxes(blocks_, 1, 2)  # symmetric
    pairs = levels.pair_index(S0)
    s, t = np.tril_indices(S0)
    packed = np.zeros((pairs.max() + 1, blocks_.shape[0]))
    packed[pairs[s, t]] = blocks_[:, s, t].T
    per_level = blocks_ if which is None else blocks_[which]
    M = np.zeros((ell * S0, ell * S0))
    for level, block in enumerate(per_level):
        M[level * S0:(level + 1) * S0, level * S0:(level + 1) * S0] = block
    product = Ar0 @ M @ Ar0.T
    rows, cols = np.divmod(pos, m)
    assert np.all(rows >= cols) and np.all(cols < qr) and np.all(np.diff(pos) > 0)
    np.testing.assert_allclose(P @ packed.ravel(), product.reshape(-1)[pos], rtol=1e-12, atol=1e-12)
    outside = np.tril(np.ones((m, m), bool))
    outside[:, qr:] = False
    outside.reshape(-1)[pos] = False
    assert not np.any(product[outside])


@pytest.mark.parametrize("S", [1, 2])
def test_shared_blocks_are_equal_to_the_last_bit(S):
    values = np.array([1.0, 1.0 + 2**-52, 1.0, 3.0, 3.0, 3.0] + [1.0] * 6)
    A00 = np.stack([v * np.eye(S) + (S > 1) * np.eye(S, k=1) for v in values])
    if S > 1:
        A00[4, -1, 0] = -0.0  # the same value, other bits: kept apart
    first, which = blocks.shared_blocks(A00)
    np.testing.assert_array_equal(A00[first][which], A00)
    assert first.size == 3 + (S > 1)


@pytest.mark.parametrize("cholmod", [True, False])
@pytest.mark.parametrize("name, formula", CASES)
def test_beta_from_the_trailing_block_is_the_solves_beta(name, formula, cholmod, monkeypatch):
    monkeypatch.setattr(rest, "cholmod_available", lambda: cholmod)
    model = MixedModel(build_design(formula, mf.load_dataset(name)))
    for theta in _random_thetas(model, 17):
        f = model.factor(theta)
        beta = model.cross.beta(f)
        np.testing.assert_allclose(beta, model.cross.solve(f)[0], rtol=1e-10, atol=1e-12 * np.abs(beta).max())


def test_a_dense_rest_too_large_for_memory_is_refused_before_it_is_allocated(monkeypatch):
    # (1|g) + (1|h) crossed, 20,000 levels each: the rest is two dense arrays of
    # 20,002² doubles (3.2 GB each); with 2 GB said to be available the fit is
    # refused before the first is allocated (without the check: a MemoryError
    # under a 3 GB address-space limit, or 6.4 GB taken)
    i = np.arange(40_000)
    data = pd.DataFrame({"y": np.sin(i), "g": pd.Categorical(i % 20_000),
                         "h": pd.Categorical((7 * i + i // 20_000) % 20_000)})
    monkeypatch.setattr(memory, "available_memory", lambda: 2 * 10**9)
    with pytest.raises(mf.errors.ModelSpecError) as err:
        mf.mixed("y ~ 1 + (1|g) + (1|h)", data)
    assert str(err.value).startswith(
        "fitting needs about 6.4 GB: the random effects of (1 | h): 20,000 levels make a dense block of "
        "20,002 columns, held 2 times ((1 | g), with the most random effects, is eliminated level by level); "
        "only 2 GB of memory are available")


def test_the_available_memory_is_read():
    have = blocks.available_memory()
    assert have is None or 0 < have < 2**50


def test_a_large_rest_is_factored_on_one_thread_where_the_blas_crashes_on_several(monkeypatch):
    # OpenBLAS 0.3.30's threaded dpotrf segfaulted on a 16,000-column rest; here the
    # threshold is lowered to Penicillin's 8 columns and that BLAS said to be loaded
    from threadpoolctl import threadpool_info

    model = MixedModel(build_design("diameter ~ 1 + (1|plate) + (1|sample)", mf.load_dataset("Penicillin")))
    theta = np.array([1.5, 3.2])
    expected = model.objective(theta)
    threads = []
    dpotrf = factor.lapack.dpotrf

    def recording(*args, **kwargs):
        threads.append({info["filepath"]: info["num_threads"] for info in threadpool_info()})
        return dpotrf(*args, **kwargs)

    monkeypatch.setattr(factor.lapack, "dpotrf", recording)
    monkeypatch.setattr(factor, "_UNSAFE_POTRF_COLUMNS", 8)
    monkeypatch.setattr(factor, "_unsafe_blas_loaded", lambda: True)
    assert model.objective(theta) == expected
    assert threads and all(n == 1 for call in threads for n in call.values())


def test_mixedmodels_jl_insteval_model_keeps_the_schur_map():
    # MixedModels.jl's benchmark model: (0 + service|dept) adds dept rows met by most
    # students, 6.7M products in the Schur map; without the map each evaluation forms
    # sparse products (76 ms, against 13 ms with it).
    formula = "y ~ 1 + service + (1|d) + (1|s) + (1|dept) + (0 + service|dept)"
    cross = MixedModel(build_design(formula, mf.load_dataset("InstEval")), reml=False).cross
    assert isinstance(cross.rest, KeptRest) and len(cross.rest.update.maps) == 2


def test_batched_kernels_give_numpy_linalgs_bits():
    # the first term's factor calls numpy's kernels without their wrappers: the same numbers to the bit
    from mixedfit.blocks.levels import batched_cholesky, batched_inverse

    a = np.random.default_rng(3).normal(size=(7, 4, 4))
    spd = a @ a.transpose(0, 2, 1) + np.eye(4)
    L = batched_cholesky(spd)
    assert np.array_equal(L, np.linalg.cholesky(spd))
    assert np.array_equal(batched_inverse(L), np.linalg.inv(L))


def test_level_diagonal_is_a_view_of_each_levels_block_of_a_strided_matrix():
    parent = np.arange(100.0).reshape(10, 10)
    M = parent[1:, 1:]  # a view: rows 10 entries apart
    blocks = levels.level_diagonal(M, 1, 2, 4)  # the 2×2 blocks of four levels from (1, 1) on
    for level in range(4):
        at = slice(1 + 2 * level, 3 + 2 * level)
        np.testing.assert_array_equal(blocks[level], M[at, at])
    blocks[...] = -1.0
    assert (parent == -1.0).sum() == 16 and (M[1:9, 1:9] == -1.0).sum() == 16


@pytest.mark.parametrize("S, nlevels", [(1, 9), (2, 9), (3, 9), (4, 9), (2, levels._CLOSED_INVERSE_MIN_LEVELS),
                                        (3, levels._CLOSED_INVERSE_MIN_LEVELS), (4, levels._PLANES_MIN_LEVELS)])
def test_first_term_inverses_invert_each_levels_block(S, nlevels):
    # closed forms for S ≤ 3, then batched LAPACK or, on many levels, packed planes: against numpy's inverse
    rng = np.random.default_rng(S)
    a = rng.normal(size=(nlevels, S, S))
    first = levels.FirstTerm(a @ a.transpose(0, 2, 1))
    T = np.tril(rng.normal(size=(S, S))) + 2.0 * np.eye(S)
    B = T.T @ first.crossprods @ T + np.eye(S)
    np.testing.assert_allclose(first.inverses(T), np.linalg.inv(B), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape", [(1, 1), (5, 5), (40, 40), (7, 3, 3), (2, 3, 4, 4)])
def test_symmetric_from_lower_copies_each_lower_triangle_over_the_upper(shape):
    blocks = np.random.default_rng(0).normal(size=shape)
    out = levels.symmetric_from_lower(blocks)
    lower = np.tril(blocks)
    assert np.array_equal(out, lower + np.swapaxes(np.tril(blocks, -1), -1, -2))
    assert np.array_equal(np.tril(out), lower) and out is not blocks


@pytest.mark.parametrize("n", [2, 5, 60, 400])
def test_last_row_solution_solves_the_leading_block(n):
    # On the whole of Lᵀ where L is C-ordered: solve_triangular's numbers, to
    # rounding (LAPACK blocks the two solves alike up to some size, not always);
    # on the leading block itself where L is strided or r = 0: its bits.
    from scipy.linalg import solve_triangular

    a = np.random.default_rng(n).normal(size=(n, n))
    L = np.linalg.cholesky(a @ a.T + n * np.eye(n))
    expected = solve_triangular(L[:-1, :-1], L[-1, :-1], lower=True, trans="T")
    np.testing.assert_allclose(factor.last_row_solution(L), expected, rtol=1e-13, atol=1e-13 * np.abs(expected).max())
    assert np.array_equal(factor.last_row_solution(np.asfortranarray(L)), expected)
    no_residual = L.copy()
    no_residual[-1, -1] = 0.0
    assert np.array_equal(factor.last_row_solution(no_residual), expected)


@pytest.mark.parametrize("S, nlevels", [(3, levels._CLOSED_3X3_MIN_LEVELS), (4, levels._PLANES_MIN_LEVELS)])
def test_inverses_after_an_elimination_at_the_same_template_are_its_own(S, nlevels, monkeypatch):
    # The gradient follows the objective at each θ: its B_l⁻¹ are the elimination's,
    # not formed again; another template's are its own.
    rng = np.random.default_rng(S)
    a = rng.normal(size=(nlevels, S, S))
    first = levels.FirstTerm(a @ a.transpose(0, 2, 1))
    formed = []
    packed_inverse = levels._packed_inverse
    monkeypatch.setattr(levels, "_packed_inverse", lambda A, T: formed.append(T) or packed_inverse(A, T))
    T, other = (np.tril(rng.normal(size=(S, S))) + 2.0 * np.eye(S) for _ in range(2))
    first.eliminate(T)
    kept = first.inverses(T)
    assert len(formed) == 1
    np.testing.assert_allclose(kept, np.linalg.inv(T.T @ first.crossprods @ T + np.eye(S)), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(first.inverses(other), np.linalg.inv(other.T @ first.crossprods @ other + np.eye(S)),
                               rtol=1e-12, atol=1e-14)
    expected = kept.copy()
    kept[...] = 0.0  # the caller's copy: the kept inverses stand
    assert np.array_equal(first.inverses(T), expected)


def test_the_updates_count_the_multiply_adds_of_their_dense_products():
    # What decides whether an evaluation's BLAS may thread (MixedModel.blas_threads):
    # Penicillin's 6 samples meet all 24 plates (one dsyrk of the rest's 8 rows);
    # a crossed (x|subj) + (x|item) with every pair seen: the items' 2 × 10 dense
    # rows times M over the subjects' 2 × 20 columns; Chem97's sparse rows: none.
    penicillin = MixedModel(build_design("diameter ~ 1 + (1|plate) + (1|sample)", mf.load_dataset("Penicillin")))
    assert isinstance(penicillin.cross.rest.update, schur.RankUpdate)
    assert penicillin.cross.rest.update.multiply_adds == 8 * 8 * 24 / 2
    rng = np.random.default_rng(0)
    pairs = pd.MultiIndex.from_product([[f"s{i}" for i in range(20)], [f"i{j}" for j in range(10)]])
    frame = pd.DataFrame({"subj": pairs.get_level_values(0), "item": pairs.get_level_values(1),
                          "x": rng.normal(size=len(pairs)), "y": rng.normal(size=len(pairs))})
    crossed = MixedModel(build_design("y ~ x + (x|subj) + (x|item)", frame))
    update = crossed.cross.rest.update
    assert [type(p) for p in update.products] == [DenseRowProducts]
    assert update.multiply_adds == 20 * 20 * 40 / 2
    chem97 = MixedModel(build_design("score ~ gcsecnt + (1|school) + (1|lea)", mf.load_dataset("Chem97")))
    assert chem97.cross.rest.update.multiply_adds == 0


WHOLE_CASES = [CASES[0], CASES[2], ("sleepstudy", "Reaction ~ Days + (Days|Subject)"),
               ("Machines", "score ~ Machine + (0 + Machine|Worker)"), ("Pastes", "strength ~ 1 + (1|batch/cask)"),
               ("Machines", "score ~ Machine + (1|Worker) + (0 + Machine|Worker)")]


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("name, formula", WHOLE_CASES)
def test_the_whole_system_gives_the_blocked_factors_objective_and_gradient(name, formula, reml, monkeypatch):
    design = build_design(formula, mf.load_dataset(name))
    with monkeypatch.context() as patch:
        patch.setattr(whole, "_MOST_COLUMNS", 0)
        blocked = MixedModel(design, reml=reml)
    monkeypatch.setattr(MixedModel, "_whole_system", lambda self: WholeSystem(self.cross))
    whole_model = MixedModel(design, reml=reml)
    assert blocked._whole is None and whole_model._whole is not None
    for theta in _random_thetas(blocked, 7):
        value, gradient = whole_model.objective_and_gradient(theta)
        assert value == whole_model.objective(theta)
        assert value == pytest.approx(blocked.objective(theta), rel=1e-12)
        expected = theta_gradient(blocked.cross, blocked.factor(theta), reml)
        assert np.abs(gradient - expected).max() <= 1e-8 * max(1.0, np.abs(expected).max())


def test_the_whole_system_serves_small_models_that_lbfgs_minimizes():
    machines = MixedModel(build_design("score ~ Machine + (0 + Machine|Worker)", mf.load_dataset("Machines")))
    assert machines._gradient_first and machines._whole.columns.size == 18 + 3 + 1
    sleepstudy = MixedModel(build_design("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy")))
    assert not sleepstudy._gradient_first and sleepstudy._whole is None
    cubic = MixedModel(build_design("Reaction ~ Days + (Days + I(Days^2) + I(Days^3)|Subject)",
                                    mf.load_dataset("sleepstudy")))
    assert cubic._gradient_first and cubic._whole is None  # 18 × 4 + 2 + 1 columns
    assert whole.whole_system(cubic.cross) is None and whole._MOST_COLUMNS < 18 * 4 + 2 + 1


def test_the_whole_system_finds_no_factor_where_it_is_not_positive_definite():
    model = MixedModel(build_design("score ~ Machine + (0 + Machine|Worker)", mf.load_dataset("Machines")))
    theta = np.full(model.ntheta, 1e100)
    assert model._whole is not None and model._whole.factor(model.engine_theta(theta)) is None
    assert model.objective(theta) == np.inf
    with pytest.raises(ValueError, match="not positive definite"):
        model.gradient(theta)


@pytest.mark.parametrize("offset, shift", [(None, 0.0), ("Days", 0.0), (None, 1e6)])
def test_the_designs_qr_serves_the_frame_as_its_own_would(offset, shift):
    data = mf.load_dataset("sleepstudy")
    data["Reaction"] = data["Reaction"] + 1e4  # a mean 200 times the spread: the frame takes y's fit out (b ≠ 0)
    data["Days"] = data["Days"] + shift  # a mean 1e6 times the spread: the frame centers Days, so takes its own QR
    design = build_design("Reaction ~ Days + (Days|Subject)", data, offset=offset)
    assert design.xy_r is not None and dataclasses.replace(design, y=2.0 * design.y).xy_r is None
    read, own = CrossBlocks.from_design(design), CrossBlocks.from_design(dataclasses.replace(design))
    for a, b in ((read.frame.centers, own.frame.centers), (read.frame.beta, own.frame.beta),
                 (read.Arr, own.Arr), (read.F0, own.F0)):
        np.testing.assert_array_equal(a, b)
    assert np.any(read.frame.beta) and np.any(read.frame.centers) == (shift > 0)


def test_a_design_that_lost_columns_keeps_no_qr():
    data = mf.load_dataset("sleepstudy")
    data["twice"] = 2.0 * data["Days"]
    with pytest.warns(RankDeficiencyWarning):
        design = build_design("Reaction ~ Days + twice + (1|Subject)", data)
    assert design.dropped_xnames == ["twice"] and design.xy_r is None


def test_a_model_of_one_term_keeps_no_elimination():
    # every θ of a one-term model is the first term's: no kept elimination could come back
    one = MixedModel(build_design("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy")))
    two = MixedModel(build_design(*CASES[0][1:], mf.load_dataset(CASES[0][0])))
    for theta in _random_thetas(one, 2, count=3):
        one.objective(theta)
    for theta in _random_thetas(two, 2, count=3):
        two.objective(theta)
    assert not one.cross._eliminations and len(two.cross._eliminations) == crossproducts._ELIMINATIONS_KEPT


ONE_TERM_CASES = [("sleepstudy", "Reaction ~ Days + (Days|Subject)"), ("Dyestuff", "Yield ~ 1 + (1|Batch)"),
                  ("sleepstudy", "Reaction ~ Days + (Days||Subject)"),  # two model terms joined in one engine term
                  ("sleepstudy", "Reaction ~ Days + (Days + I(Days^2)|Subject)")]


@pytest.mark.parametrize("name, formula", ONE_TERM_CASES + CASES[:1])
def test_the_objectives_log_determinants_are_the_factors_to_the_bit(name, formula):
    # logdets_at skips the Factor of a one-term model; the numbers must be the factor's own
    model = MixedModel(build_design(formula, mf.load_dataset(name)))
    for theta in _random_thetas(model, 3) + [model.start]:
        engine = model.engine_theta(theta)
        assert model.cross.logdets_at(engine) == model.cross.logdets(model.cross.factor(engine))
        if model._whole is None:  # the S = 3 model's six θ are L-BFGS-B's: its objective is the whole system's
            assert model.objective(theta) == model.objective_from_factor(model.factor(theta))


@pytest.mark.parametrize("S", [1, 2, 3])
def test_eliminating_at_theta_is_eliminating_at_its_template(S):
    rng = np.random.default_rng(S)
    Z = rng.normal(size=(40, 9, S))
    first = levels.FirstTerm(np.einsum("nls,nlt->lst", Z, Z))
    for _ in range(5):
        theta = rng.normal(size=S * (S + 1) // 2)
        logdet, packed = first.eliminate_at(theta)
        expected = first.eliminate(lower_template(theta, S))
        assert logdet == expected[0] and np.array_equal(packed, expected[1])


def test_a_one_term_models_engine_theta_is_theta_itself():
    one = MixedModel(build_design("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy")))
    joined = MixedModel(build_design("Reaction ~ Days + (Days||Subject)", mf.load_dataset("sleepstudy")))
    theta = np.array([0.9, 0.1, 0.3])
    assert one.engine_theta(theta)[0] is theta
    np.testing.assert_array_equal(joined.engine_theta(theta[[0, 2]])[0], [0.9, 0.0, 0.3])  # the joined template's zero


@pytest.mark.parametrize("S", [1, 2, 3, 5])
def test_batched_cholesky_solve_is_numpys_solve_level_by_level(S):
    # the same bits where S = 1 (two divisions, as numpy's solves do them), rounding otherwise
    rng = np.random.default_rng(S)
    A = rng.normal(size=(200, S, S))
    L = np.linalg.cholesky(A @ np.swapaxes(A, 1, 2) + np.eye(S))
    y = rng.normal(size=(200, S))
    expected = np.linalg.solve(np.swapaxes(L, 1, 2), np.linalg.solve(L, y[..., None]))[..., 0]
    x = levels.batched_cholesky_solve(L, y)
    if S == 1:
        np.testing.assert_array_equal(x, expected)
    np.testing.assert_allclose(x, expected, rtol=1e-11, atol=0)


@pytest.mark.parametrize("name, formula", [SPARSE_CASES[0], SPARSE_CASES[3]])
def test_penalized_sums_each_entrys_products_in_the_congruence_maps_order(name, formula):
    # Only the entries of S > 1 blocks are summed by a bincount; each entry's products must still be
    # added in _congruence_map's order, so to the bits of one bincount over all of its rows.
    data = name() if callable(name) else mf.load_dataset(name)
    model = MixedModel(build_design(formula, data))
    kept = model.cross.rest
    assert isinstance(kept, KeptRest) and kept.sparse.touched is not None
    sr, columns = kept.sparse, kept.columns
    m = columns.size
    size, effect, base = rest._effect_blocks(columns.offsets, columns.sizes, columns.levels, m)
    target, source, code_a, code_b = rest._congruence_map(sr.pos, size, effect, base, m)
    for theta in _random_thetas(model, 3):
        templates = model.cross.templates(model.engine_theta(theta))
        g = kept.eliminated(model.cross.first.eliminate(templates[0])[1])
        tv = np.concatenate([T.ravel() for T in templates[1:]] + [np.ones(1)])
        whole = np.bincount(target, weights=tv[code_a] * tv[code_b] * g[source], minlength=sr.pos.size)
        whole[sr.diagonal] += 1.0
        np.testing.assert_array_equal(sr.penalized(g, templates[1:]), whole)
