"""GLMM's blocked factor (``mixedfit.glmm_factor``) against a dense Cholesky factorization of the same
matrix ``ΛᵀZᵀWZΛ + I``: solves, log-determinant and the diagonal blocks of its inverse, on the dense rest
of a crossed model and on the nested rests held as their entries."""

from __future__ import annotations

import numpy as np
import pytest

import mixedfit as mf
from mixedfit.family import family
from mixedfit.glmm import GlmmModel, PwlsSums
from mixedfit.terms import build_design


@pytest.mark.parametrize("dense_products", [True, False])
def test_block_factor_is_the_cholesky_factor(dense_products, monkeypatch):
    if not dense_products:  # the rest's products as sparse products, as for large designs
        monkeypatch.setattr("mixedfit.glmm._DENSE_PRODUCTS", 0)
    fam = family("binomial")
    design = build_design("use ~ age + urban + (urban | district) + (1 | livch)",
                          mf.load_dataset("Contraception"), family=fam)
    model = GlmmModel(design, fam)
    assert (model._pair_index is not None) == dense_products
    assert model._diagonal == 0  # districts and livch crossed: the rest factored densely
    assert_factor_is_the_cholesky_factor(model, np.array([0.7, -0.3, 0.5, 0.4]))


@pytest.mark.parametrize("formula, diagonal, below", [
    ("TICKS ~ YEAR + HEIGHT + (1 | INDEX) + (1 | BROOD) + (1 | LOCATION)", 118, 118),  # then 63 dense
    ("TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | LOCATION)", 63, 0),  # the whole rest diagonal
    ("TICKS ~ YEAR + (1 + cHEIGHT | BROOD) + (1 | LOCATION)", 63, 0),  # F's entries in pairs per level
])
def test_block_factor_eliminates_a_diagonal_block_of_the_rest(formula, diagonal, below):
    # grouseticks' observations are nested in broods, its broods in locations: the second term's
    # block of the rest stays diagonal after the first term's elimination, and is eliminated so;
    # B and F are held as their entries (EntryMatrix), which F Fᵀ reads, and so is the block below
    # the diagonal one, one entry per brood (its location)
    fam = family("poisson")
    model = GlmmModel(build_design(formula, mf.load_dataset("grouseticks"), family=fam), fam)
    assert model._diagonal == diagonal
    assert model._gram.pattern is not None
    assert (None if model._entries is None else model._entries.below.pattern.positions.size) == below
    assert_factor_is_the_cholesky_factor(model, np.linspace(0.4, 1.3, model.ntheta))


def test_nested_rest_is_held_as_entries_beyond_the_dense_limit(monkeypatch):
    # the limit on the dense products is for crossed rests: one nested in the first term is held as
    # its entries however large (a simulated 5,000-row grouseticks took 1 s a PIRLS step densely)
    monkeypatch.setattr("mixedfit.glmm._DENSE_PRODUCTS", 0)
    fam = family("poisson")
    model = GlmmModel(build_design("TICKS ~ YEAR + HEIGHT + (1 | INDEX) + (1 | BROOD) + (1 | LOCATION)",
                                   mf.load_dataset("grouseticks"), family=fam), fam)
    assert model._pair_index is not None and model._entries is not None
    assert_factor_is_the_cholesky_factor(model, np.linspace(0.4, 1.3, model.ntheta))


def assert_factor_is_the_cholesky_factor(model: GlmmModel, theta: np.ndarray) -> None:
    """The block factor at θ and random weights solves ΛᵀZᵀWZΛ + I, and has its log-determinant and
    the diagonal blocks of its inverse."""
    design = model.design
    sqrtw = np.random.default_rng(1).uniform(0.2, 0.6, design.nobs)
    level, B, C = model._block_sums(model._term_values(theta), sqrtw)
    factor = model._factor(PwlsSums(level, B, C, np.zeros(model.q)), model.layout.templates(theta)[0])
    zw = model.zlambda(theta).multiply(sqrtw[:, None]).tocsr()
    A = (zw.T @ zw).toarray() + np.eye(model.q)
    b = np.random.default_rng(2).normal(size=(model.q, 3))
    np.testing.assert_allclose(factor.solve_upper(factor.solve_lower(b)), np.linalg.solve(A, b), rtol=1e-10)
    assert factor.logdet == pytest.approx(np.linalg.slogdet(A)[1], rel=1e-12)
    inverse = np.linalg.inv(A)
    blocks = factor.inverse_blocks([(t.nlevels, t.size) for t in design.terms])
    offset = 0
    for term, block in zip(design.terms, blocks):
        for j in (0, term.nlevels - 1):
            at = offset + j * term.size
            np.testing.assert_allclose(block[j], inverse[at: at + term.size, at: at + term.size], rtol=1e-10)
        offset += term.nlevels * term.size
