"""The engine's objective equals the Gaussian likelihood computed densely, for random designs.

For a linear mixed model ``y ~ N(Xβ + o, σ² V)`` with ``V = ZΛΛᵀZᵀ + W⁻¹``,
profiling out β (generalized least squares) and σ² gives

* ML:   ``-2 log L = log|V| + n (1 + log(2π r/n))``,
* REML: ``-2 log L_R = log|V| + log|XᵀV⁻¹X| + (n-p)(1 + log(2π r/(n-p)))``,

with ``r = (y-o-Xβ̂)ᵀV⁻¹(y-o-Xβ̂)``.  Here these are evaluated with dense numpy
linear algebra on the n×n matrix V and compared with
:meth:`mixedfit.model.MixedModel.objective` (blocked, sparse, Cholesky based)
on designs that hypothesis draws: 1 to 3 grouping factors, nested or crossed,
1 to 3 random effects per term (random slopes on random covariates), with
or without an intercept, optional weights and offset, at random θ.

Set ``MIXEDFIT_PROPERTY_EXAMPLES`` to run more examples than CI's default.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from mixedfit.model import MixedModel
from mixedfit.terms import Design, RandomEffectsTerm

EXAMPLES = int(os.environ.get("MIXEDFIT_PROPERTY_EXAMPLES", "200"))
RTOL = 1e-8


def _compact(codes: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Codes renumbered over the levels that occur, and those levels' names."""
    present, codes = np.unique(codes, return_inverse=True)
    return codes.astype(np.intp), [f"L{v}" for v in present]


@st.composite
def grouping(draw, n: int, previous: list[np.ndarray]) -> np.ndarray:
    """Level codes of a new grouping factor: crossed with, or nested in, an earlier one."""
    nlevels = draw(st.integers(2, max(2, n // 3)))
    codes = np.array(draw(st.lists(st.integers(0, nlevels - 1), min_size=n, max_size=n)))
    nested = bool(previous) and draw(st.booleans())
    if nested:
        outer = previous[draw(st.integers(0, len(previous) - 1))]
        codes = outer * nlevels + codes  # each outer level gets its own inner levels
    event("nested" if nested else "crossed" if previous else "first factor")
    return codes


@st.composite
def designs(draw) -> tuple[Design, np.ndarray]:
    """A random design and a random θ (diagonal > 0) for it."""
    n = draw(st.integers(8, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p = draw(st.integers(1, 3))
    X = np.column_stack([np.ones(n)] + [rng.normal(size=n) for _ in range(p - 1)])
    groups: list[np.ndarray] = []
    terms, theta = [], []
    for k in range(draw(st.integers(1, 3))):
        if terms and draw(st.booleans()):  # another term on an earlier factor, as (x || g) makes
            earlier = terms[draw(st.integers(0, len(terms) - 1))]
            label, codes, levels = earlier.group, earlier.codes, earlier.levels
            event("two terms on one factor")
        else:
            codes, levels = _compact(draw(grouping(n, groups)))
            assume(len(levels) >= 2)
            groups.append(codes)
            label = f"g{k}"
        size = draw(st.integers(1, 3))
        intercept = draw(st.booleans())
        z = np.column_stack([np.ones(n) if (j == 0 and intercept) else rng.normal(size=n)
                             for j in range(size)])
        terms.append(RandomEffectsTerm(label, [f"z{j}" for j in range(size)], z, codes, levels))
        for j in range(size):  # column-major lower triangle, lme4's θ order
            theta.extend([rng.uniform(0.05, 2.0)] + list(rng.normal(0.0, 0.7, size - j - 1)))
    weights = rng.uniform(0.2, 3.0, n) if draw(st.booleans()) else None
    offset = rng.normal(0.0, 2.0, n) if draw(st.booleans()) else None
    event(f"{len(terms)} terms, largest S = {max(t.size for t in terms)}")
    event(f"weights: {weights is not None}, offset: {offset is not None}")
    y = X @ rng.normal(0.0, 3.0, p) + rng.normal(size=n) * 2.0
    design = Design(y=y, X=X, xnames=[f"x{j}" for j in range(p)], terms=terms, response="y",
                    formula="y ~ generated", rows=pd.RangeIndex(n), weights=weights,
                    offset=offset)
    return design, np.array(theta)


def _template(theta: np.ndarray, size: int) -> np.ndarray:
    T = np.zeros((size, size))
    k = 0
    for j in range(size):
        for i in range(j, size):
            T[i, j] = theta[k]
            k += 1
    return T


def _z_lambda(design: Design, theta: np.ndarray) -> np.ndarray:
    """Z Λ as a dense n × q matrix (levels major, then the term's columns)."""
    blocks, start = [], 0
    n = design.nobs
    for term in design.terms:
        S = term.size
        T = _template(theta[start:start + S * (S + 1) // 2], S)
        start += S * (S + 1) // 2
        Z = np.zeros((n, term.nlevels * S))
        for s in range(S):
            Z[np.arange(n), term.codes * S + s] = term.z[:, s]
        blocks.append(Z @ np.kron(np.eye(term.nlevels), T))
    return np.hstack(blocks)


def dense_objective(design: Design, theta: np.ndarray, reml: bool) -> float:
    """-2 × the profiled (REML) log-likelihood from V = ZΛΛᵀZᵀ + W⁻¹."""
    n, p = design.X.shape
    ZL = _z_lambda(design, theta)
    w = np.ones(n) if design.weights is None else design.weights
    V = ZL @ ZL.T + np.diag(1.0 / w)
    target = design.y if design.offset is None else design.y - design.offset
    Vinv_X = np.linalg.solve(V, design.X)
    XtVX = design.X.T @ Vinv_X
    beta = np.linalg.solve(XtVX, Vinv_X.T @ target)
    resid = target - design.X @ beta
    r = resid @ np.linalg.solve(V, resid)
    logdet_V = np.linalg.slogdet(V)[1]
    dof = n - p if reml else n
    value = logdet_V + dof * (1.0 + np.log(2.0 * np.pi * r / dof))
    return float(value + np.linalg.slogdet(XtVX)[1]) if reml else float(value)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(designs(), st.booleans())
def test_objective_equals_dense_marginal_likelihood(case, reml):
    design, theta = case
    assume(design.nobs > design.X.shape[1])
    engine = MixedModel(design, reml=reml).objective(theta)
    dense = dense_objective(design, theta, reml)
    assert np.isfinite(dense)
    assert abs(engine - dense) <= RTOL * max(1.0, abs(dense)), (engine, dense)


def test_dense_objective_is_lme4s_on_sleepstudy():
    """The dense reference itself, against lme4: devfun(c(1, 0, 1)) = 1773.680330616."""
    import mixedfit as mf
    from mixedfit.terms import build_design

    design = build_design("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    assert abs(dense_objective(design, np.array([1.0, 0.0, 1.0]), True) - 1773.680330616) < 1e-8
