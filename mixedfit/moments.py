"""Crossed random intercepts by the method of moments, with GLS β by backfitting.

For ``y ~ X + (1|a) + (1|b) [+ (1|c) ...]`` the exact fit needs the dense
Schur complement of the largest factors; at recommender-system size (10⁵ ×
10⁵ levels) that is out of reach.  This module estimates the same model in
time and memory linear in the number of rows:

1. **Variance components by moments** (Gao & Owen 2017).  For each grouping
   factor f, the within-level sum of squares of the OLS residuals
   ``r = (I − H) y``, ``r'A_f r`` with ``A_f = I − P_f`` (``P_f`` averages
   within f's levels), and the total sum of squares (f = the one-level
   factor).  Each is half a sum of squared differences over pairs of rows
   that share f's level: Gao & Owen's U-statistics.  Their expectations are
   linear in the variance components,
   ``E[r'A_f r] = Σ_k σ_k² tr(Z_k'MA_fMZ_k) + σ²_e tr(MA_f)`` with
   ``M = I − H``, and the traces reduce to per-level counts, per-level sums
   of X and the level-pair counts ``N_lm`` of each two factors, so the
   equations are exactly unbiased, covariates included (the paper corrects
   for X only to leading order).  Without covariates and with one factor this
   is the one-way ANOVA estimator: ``σ̂² = MSE``, ``τ̂² = (MSG − MSE)/n₀``.
   Negative solutions are truncated at zero, with a warning.
2. **β by GLS** at those variance components (Ghosh, Hastie & Owen 2022):
   ``σ²V⁻¹x = x − Z b̂(x)`` with ``b̂(x) = (Z'Z + Λ)⁻¹Z'x`` and
   ``Λ = σ²_e diag(1/σ_k²)``, solved for every column of ``[X y]`` at once
   in the levels' space: by backfitting (block Gauss–Seidel over the
   factors, the paper's algorithm) or, by default, by conjugate gradients
   with the same diagonal as preconditioner, which converges in far fewer
   iterations.  Each iteration needs only ``Z'[X y]`` (per-level sums) and
   the level-pair count tables ``Z_j'Z_k``, never the rows again.
   ``cov(β̂) = σ²_e (X'X − X'Z b̂(X))⁻¹``; the conditional modes (BLUPs) are
   ``b̂(y − Xβ̂)``.

Everything is a sum over rows (``MomentStats``, with exact merges), so a
Dask DataFrame needs the levels pass of ``mixedfit.distributed`` and one
pass more; the in-memory fit is the one-partition case.

References: Gao, K. and Owen, A. B. (2017), Efficient moment calculations
for variance components in large unbalanced crossed random effects models,
*Electronic Journal of Statistics* 11, 1235–1296.  Ghosh, S., Hastie, T. and
Owen, A. B. (2022), Backfitting for large scale crossed random effects
regressions, *Annals of Statistics* 50, 560–583.

Examples
--------
>>> import mixedfit as mf
>>> fit = mf.mixed("diameter ~ 1 + (1|plate) + (1|sample)", mf.load_dataset("Penicillin"),
...                method="moments")
>>> fit.varcorr[["grp", "vcov"]].round(4).to_dict("list")
{'grp': ['plate', 'sample', 'Residual'], 'vcov': [0.7169, 3.7309, 0.3024]}
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import rformat as rf
from .dask_tasks import compute, delayed, shared, tree_reduce
from .dask_opening import levels_pass
from .errors import ModelSpecError, warn
from .fitted import plain
from .formula import parse_formula
from .inference.predict import predict
from .partitions import Plan, grouping_columns, model_columns, partition_design
from .summary import PRINT_DIGITS, call_block, fixef_block, groups_block, varcorr_block
from .terms import Design, build_design, check_levels, plural

__all__ = ["mixed_moments", "moments_dask", "MomentStats", "MomentsResults"]

TITLE = "Crossed random effects fit by the method of moments (Gao & Owen 2017)"
_COND_LIMIT = 1e12  # condition number beyond which the moment equations do not identify the components


# -- sufficient statistics --------------------------------------------------------


@dataclass
class _LevelSums:
    """Per level of one factor: rows, means of ``[X y]``; and the within-level cross products.

    ``within`` is ``[X y]' A_f [X y]`` summed over levels.  Two partitions'
    sums merge exactly (Chan, Golub & LeVeque's pairwise update), so no raw
    sum of squares is ever differenced.
    """

    count: np.ndarray  # (L,)
    mean: np.ndarray  # (L, p + 1)
    within: np.ndarray  # (p + 1, p + 1)

    def __add__(self, other: "_LevelSums") -> "_LevelSums":
        n = self.count + other.count
        share = np.divide(other.count, n, out=np.zeros_like(n), where=n > 0)
        delta = other.mean - self.mean
        weight = self.count * share  # n_a n_b / n
        within = self.within + other.within + (delta * weight[:, None]).T @ delta
        return _LevelSums(n, self.mean + delta * share[:, None], within)

    @classmethod
    def of(cls, codes: np.ndarray, nlevels: int, V: np.ndarray) -> "_LevelSums":
        """The sums of the rows ``V`` (n, p + 1) on levels ``codes``, by bincounts."""
        count = np.bincount(codes, minlength=nlevels).astype(float)
        sums = np.column_stack([np.bincount(codes, weights=v, minlength=nlevels) for v in V.T])
        mean = sums / np.maximum(count, 1.0)[:, None]
        centred = V - mean[codes]
        return cls(count, mean, centred.T @ centred)

    @property
    def sums(self) -> np.ndarray:
        return self.mean * self.count[:, None]

    @property
    def nlevels(self) -> int:
        return int(np.count_nonzero(self.count))


@dataclass
class _Pairs:
    """Counts ``N_lm`` of the rows on level l of one factor and m of another, sparse."""

    keys: np.ndarray  # l * L_other + m, sorted and distinct
    counts: np.ndarray

    def __add__(self, other: "_Pairs") -> "_Pairs":
        keys, inverse = np.unique(np.concatenate([self.keys, other.keys]), return_inverse=True)
        counts = np.bincount(inverse, weights=np.concatenate([self.counts, other.counts]))
        return _Pairs(keys, counts)

    @classmethod
    def of(cls, first: np.ndarray, second: np.ndarray, nsecond: int) -> "_Pairs":
        keys, counts = np.unique(first.astype(np.int64) * nsecond + second, return_counts=True)
        return cls(keys, counts.astype(float))


@dataclass
class MomentStats:
    """Everything the moment equations and backfitting need: sums over rows only.

    Attributes
    ----------
    n : int
        Rows summed.
    total : _LevelSums
        The one-level factor: means and centred cross products of ``[X y]``.
    factors : list of _LevelSums
        One per random-intercept term, on the term's levels.
    pairs : dict of (int, int) to _Pairs
        Level-pair counts of factors f < k (``Z_f'Z_k``).
    """

    n: int
    total: _LevelSums
    factors: list[_LevelSums]
    pairs: dict[tuple[int, int], _Pairs] = field(default_factory=dict)
    _tables: dict = field(default_factory=dict, repr=False, compare=False)  # table()'s, built once

    def __add__(self, other: "MomentStats") -> "MomentStats":
        return MomentStats(self.n + other.n, self.total + other.total,
                           [a + b for a, b in zip(self.factors, other.factors)],
                           {key: pair + other.pairs[key] for key, pair in self.pairs.items()})

    @classmethod
    def from_design(cls, design: Design) -> "MomentStats":
        """The statistics of a design's rows (a whole data set or one partition)."""
        V = np.column_stack([design.X, design.y])
        n = V.shape[0]
        terms = design.terms
        factors = [_LevelSums.of(t.codes, t.nlevels, V) for t in terms]
        pairs = {(f, k): _Pairs.of(terms[f].codes, terms[k].codes, terms[k].nlevels)
                 for f, k in itertools.combinations(range(len(terms)), 2)}
        return cls(n, _LevelSums.of(np.zeros(n, dtype=np.intp), 1, V), factors, pairs)

    @property
    def p(self) -> int:
        return self.total.mean.shape[1] - 1

    def crossprod(self) -> np.ndarray:
        """``[X y]'[X y]``, from the centred cross products and the means."""
        m = self.total.mean[0]
        return self.total.within + self.n * np.outer(m, m)

    def table(self, f: int, k: int) -> sp.csr_matrix:
        """``Z_f'Z_k`` as a sparse (L_f, L_k) matrix."""
        if (f, k) not in self._tables:
            if f > k:
                self._tables[(f, k)] = self.table(k, f).T.tocsr()
            else:
                pair, Lk = self.pairs[(f, k)], self.factors[k].count.size
                shape = (self.factors[f].count.size, Lk)
                self._tables[(f, k)] = sp.csr_matrix((pair.counts, (pair.keys // Lk, pair.keys % Lk)),
                                                     shape=shape)
        return self._tables[(f, k)]


# -- the moment equations -----------------------------------------------------------


def moment_equations(stats: MomentStats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The unbiased moment equations ``T σ² = q`` of the OLS residuals.

    Rows: each factor, then the total (one-level factor); columns: each
    factor's variance, then the residual variance.

    Returns
    -------
    T : ndarray, shape (K + 1, K + 1)
        Expectation coefficients ``tr(Z_k' M A_f M Z_k)`` and ``tr(M A_f)``.
    q : ndarray, shape (K + 1,)
        The observed ``r' A_f r``.
    beta_ols : ndarray, shape (p,)
    """
    p, n, K = stats.p, stats.n, len(stats.factors)
    C = stats.crossprod()
    XtX = C[:p, :p]
    try:
        beta = np.linalg.solve(XtX, C[:p, p])
        Hinv = np.linalg.inv(XtX)
    except np.linalg.LinAlgError:
        raise ModelSpecError("the fixed-effects matrix is rank deficient") from None
    rows = [*stats.factors, stats.total]
    S = [f.sums[:, :p] for f in stats.factors]  # Z_k'X
    Q = [s.T @ s for s in S]  # X'Z_k Z_k'X
    T = np.zeros((K + 1, K + 1))
    q = np.zeros(K + 1)
    coef = np.r_[-beta, 1.0]
    for i, fs in enumerate(rows):
        W = fs.within[:p, :p]
        q[i] = coef @ fs.within @ coef
        T[i, K] = (n - fs.nlevels) - np.trace(Hinv @ W)
        for k in range(K):
            # tr(Z'MAMZ) = tr(Z'AZ) - 2 tr(Z'HAZ) + tr(Z'HAHZ); the first two vanish for f = k (A_k Z_k = 0)
            T[i, k] = np.trace(Hinv @ W @ Hinv @ Q[k])
            if i != k:
                G = _projected_sums(stats, i, k)  # Z_k' P_f X
                T[i, k] += n - _pair_square_sum(stats, i, k) - 2.0 * np.trace(Hinv @ (Q[k] - G.T @ S[k]))
    return T, q, beta


def _pair_square_sum(stats: MomentStats, f: int, k: int) -> float:
    """``Σ_lm N_lm² / N_l`` over the levels l of factor f (f = K: the total) and m of k."""
    if f == len(stats.factors):
        counts = stats.factors[k].count
        return float(np.sum(counts * counts) / stats.n)
    N = stats.table(f, k)
    per_level = np.asarray(N.multiply(N).sum(axis=1)).ravel()
    count = stats.factors[f].count
    return float(np.sum(per_level / np.maximum(count, 1.0)))


def _projected_sums(stats: MomentStats, f: int, k: int) -> np.ndarray:
    """``Z_k' P_f X``: per level m of k, ``Σ_l N_lm x̄_l`` with x̄_l factor f's level means of X."""
    p = stats.p
    if f == len(stats.factors):
        return np.outer(stats.factors[k].count, stats.total.mean[0, :p])
    return stats.table(k, f) @ stats.factors[f].mean[:, :p]


def solve_components(T: np.ndarray, q: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """The variance components from ``T σ² = q``, negative ones truncated at 0 (and named)."""
    if not np.all(np.isfinite(T)) or np.linalg.cond(T) > _COND_LIMIT:
        raise ModelSpecError(
            "the method of moments cannot separate the variance components of "
            f"{', '.join(names)} and the residual: a grouping factor is confounded with another "
            "or with the residual (e.g. one observation per level); fit it by REML instead")
    s2 = np.linalg.solve(T, q)
    negative = [names[i] for i in range(len(names)) if s2[i] < 0]
    if s2[-1] <= 0:
        raise ModelSpecError("the moment estimate of the residual variance is not positive "
                             f"({s2[-1]:.4g}); the data leave no within-cell variation to estimate it")
    if negative:
        # Truncated at zero, as the lecture and Gao & Owen do; the others are not re-solved.
        warn(f"negative moment estimate of the variance of {', '.join(negative)} truncated at 0")
    return np.maximum(s2, 0.0), negative


# -- GLS by backfitting ---------------------------------------------------------


def _level_system(stats: MomentStats, s2: np.ndarray, active: list[int]) -> tuple[sp.csr_matrix, np.ndarray]:
    """``Z'Z + Λ`` on the active factors' levels (sparse) and ``Z'[X y]``."""
    K = len(stats.factors)
    blocks = [[sp.diags(stats.factors[k].count + s2[K] / s2[k]) if j == k else stats.table(k, j)
               for j in active] for k in active]
    return sp.bmat(blocks, format="csr"), np.vstack([stats.factors[k].sums for k in active])


def solve_effects(stats: MomentStats, s2: np.ndarray, solver: str = "cg", tol: float = 1e-10,
                  maxiter: int = 2000) -> tuple[list[np.ndarray], int]:
    """``b̂ = (Z'Z + Λ)⁻¹ Z'[X y]`` for every column of ``[X y]`` at once, in the levels' space.

    ``Λ = σ²_e diag(1/σ²_k)``; factors of variance 0 have no effects.  Both
    solvers need one sparse product with the level-pair counts per
    iteration (O(rows)), never the rows themselves:

    * ``"backfit"``: Ghosh, Hastie & Owen's backfitting, block Gauss–Seidel
      over the factors, ``b_k = (Z_k'v − Σ_{j≠k} Z_k'Z_j b_j) / (N_k + λ_k)``;
      stops when no effect changes by more than ``tol`` times the largest.
    * ``"cg"``: conjugate gradients preconditioned by the same diagonal
      ``N_k + λ_k``; stops when each column's residual is below ``tol``
      times its right-hand side.  On Zipf-like designs it needs a few dozen
      iterations where backfitting needs hundreds of sweeps
      (benchmarks/RESULTS_moments.md).

    Returns
    -------
    b : list of ndarray, each (L_k, p + 1)
    iterations : int
    """
    if solver not in ("cg", "backfit"):
        raise ModelSpecError(f"solver must be 'cg' or 'backfit', not {solver!r}")
    K = len(stats.factors)
    active = [k for k in range(K) if s2[k] > 0]
    b = [np.zeros_like(f.mean) for f in stats.factors]
    if not active:
        return b, 0
    A, rhs = _level_system(stats, s2, active)
    if solver == "cg":
        x, iterations = _cg(A, rhs, tol, maxiter)
    else:
        x, iterations = _backfit(A, rhs, [stats.factors[k].count.size for k in active], tol, maxiter)
    for k, part in zip(active, np.split(x, np.cumsum([b[k].shape[0] for k in active])[:-1])):
        b[k] = part
    return b, iterations


def _cg(A: sp.csr_matrix, rhs: np.ndarray, tol: float, maxiter: int) -> tuple[np.ndarray, int]:
    """Jacobi-preconditioned conjugate gradients, one column of ``rhs`` per system."""
    dinv = 1.0 / A.diagonal()[:, None]
    x = np.zeros_like(rhs)
    r = rhs.copy()
    z = r * dinv
    direction = z.copy()
    rz = np.sum(r * z, axis=0)
    target = tol * np.linalg.norm(rhs, axis=0)
    for it in range(1, maxiter + 1):
        Ad = A @ direction
        curvature = np.sum(direction * Ad, axis=0)
        alpha = np.divide(rz, curvature, out=np.zeros_like(rz), where=curvature > 0)
        x += direction * alpha
        r -= Ad * alpha
        if np.all(np.linalg.norm(r, axis=0) <= target):
            return x, it
        z = r * dinv
        rz_new = np.sum(r * z, axis=0)
        direction = z + direction * np.divide(rz_new, rz, out=np.zeros_like(rz), where=rz > 0)
        rz = rz_new
    warn(f"conjugate gradients stopped after {maxiter} iterations without converging")
    return x, maxiter


def _backfit(A: sp.csr_matrix, rhs: np.ndarray, sizes: list[int], tol: float,
             maxiter: int) -> tuple[np.ndarray, int]:
    """Block Gauss–Seidel on the factors' blocks of ``A`` (each block's diagonal is diagonal)."""
    edges = np.cumsum([0, *sizes])
    parts = [slice(a, e) for a, e in zip(edges[:-1], edges[1:])]
    diag = A.diagonal()[:, None]
    rows = [A[sl] for sl in parts]  # the factor's rows: its diagonal block and its pair counts
    x = np.zeros_like(rhs)
    for sweep in range(1, maxiter + 1):
        change = 0.0
        for sl, block in zip(parts, rows):
            # rhs − (off-diagonal blocks) x, with the current x of the others
            new = (rhs[sl] - block @ x + diag[sl] * x[sl]) / diag[sl]
            change = max(change, float(np.max(np.abs(new - x[sl]))))
            x[sl] = new
        if len(parts) == 1 or change <= tol * max(float(np.max(np.abs(x))), 1e-300):
            return x, sweep
    warn(f"backfitting stopped after {maxiter} sweeps without converging (last change {change:.3g})")
    return x, maxiter


def gls(stats: MomentStats, b: list[np.ndarray], s2_resid: float) -> tuple[np.ndarray, np.ndarray]:
    """β̂ and its covariance from the backfitted effects: ``X'σ²V⁻¹[X y] = X'[X y] − Σ_k (Z_k'X)' b_k``."""
    p = stats.p
    C = stats.crossprod()[:p]
    for f, bk in zip(stats.factors, b):
        C = C - f.sums[:, :p].T @ bk
    A = 0.5 * (C[:, :p] + C[:, :p].T)
    beta = np.linalg.solve(A, C[:, p])
    return beta, s2_resid * np.linalg.inv(A)


# -- the model's shape ----------------------------------------------------------


def check_design(design: Design) -> None:
    """Refuse what the moment estimator does not cover, naming it."""
    for term in design.terms:
        if term.size != 1 or list(term.cnames) != ["(Intercept)"]:
            raise ModelSpecError(
                f"method='moments' fits random intercepts (1 | g) only; the term "
                f"({term.label or term.group}) has {', '.join(term.cnames)}: random slopes need "
                "the exact fit (method=None)")
    groups = [t.group for t in design.terms]
    repeated = sorted({g for g in groups if groups.count(g) > 1})
    if repeated:
        raise ModelSpecError(f"method='moments' takes each grouping factor once; {', '.join(repeated)} "
                             "appears in more than one term")
    if design.offset is not None:  # an offset() term of the formula
        raise ModelSpecError("method='moments' does not take offset: subtract it from the "
                             "response instead")


def dispatch(method: str, formula: str, data, *, reml: bool, start, maxeval: int,
             **options) -> "MomentsResults":
    """``mixedfit.mixed``'s ``method=``: the moment fit, in memory or on Dask data."""
    if method != "moments":
        raise ModelSpecError(f"method must be None (the exact fit) or 'moments', not {method!r}")
    if reml is not True or start is not None or maxeval != 100_000:
        raise ModelSpecError("method='moments' optimizes no likelihood: reml=, start= and maxeval= "
                             "do not apply")
    if type(data).__module__.startswith("dask"):
        return moments_dask(formula, data, **options)
    return mixed_moments(formula, data, **options)


# -- the fit --------------------------------------------------------------------


def fit_from_stats(stats: MomentStats, design: Design, *, solver: str = "cg", tol: float = 1e-10,
                   maxiter: int = 2000) -> dict:
    """Variance components, β, its covariance and the BLUPs from the statistics."""
    names = [t.group for t in design.terms] + ["Residual"]
    T, q, beta_ols = moment_equations(stats)
    s2, truncated = solve_components(T, q, names)
    clock = time.perf_counter()
    b, iterations = solve_effects(stats, s2, solver=solver, tol=tol, maxiter=maxiter)
    beta, cov = gls(stats, b, s2[-1])
    p = stats.p
    ranef = [bk[:, p] - bk[:, :p] @ beta for bk in b]
    return dict(s2=s2, truncated=truncated, beta=beta, cov=cov, ranef=ranef, beta_ols=beta_ols,
                equations=(T, q), solver=solver, iterations=iterations, solve_seconds=time.perf_counter() - clock)


def mixed_moments(formula: str, data, *, weights=None, offset=None, na_action: str = "omit",
                  data_name: str | None = None, solver: str = "cg",
                  tol: float = 1e-10, maxiter: int = 2000) -> "MomentsResults":
    """Fit crossed random intercepts by the method of moments, β by GLS (in memory).

    ``mixedfit.mixed`` calls this for ``method="moments"``.

    Parameters
    ----------
    formula : str
        ``y ~ X + (1|a) [+ (1|b) + ...]``: random intercepts only.
    data : pandas.DataFrame or dict of arrays
    weights, offset
        Refused (``ModelSpecError``).
    na_action, data_name
        As in ``mixedfit.mixed``.
    solver : {"cg", "backfit"}
        How the GLS systems are solved (``solve_effects``).
    tol, maxiter : float, int
        The solver's tolerance and most iterations (it warns if it stops there).

    Returns
    -------
    MomentsResults
    """
    for what, value in (("weights", weights), ("offset", offset)):
        if value is not None:  # before the design, which would act on them (zero weights dropped)
            raise ModelSpecError(f"method='moments' does not take {what}: the moment equations are "
                                 "for unweighted rows without offset; use the exact fit")
    clock = time.perf_counter()
    design = build_design(formula, data, na_action=na_action)
    check_design(design)
    stats = MomentStats.from_design(design)
    timings = {"sums": time.perf_counter() - clock}
    clock = time.perf_counter()
    est = fit_from_stats(stats, design, solver=solver, tol=tol, maxiter=maxiter)
    timings["fit"] = time.perf_counter() - clock
    return MomentsResults(design, stats, est, data_name=data_name, timings=timings)


def moments_dask(formula: str, data, *, weights=None, offset=None, na_action: str = "omit",
                 data_name: str | None = None, solver: str = "cg",
                 tol: float = 1e-10, maxiter: int = 2000) -> "MomentsResults":
    """``mixed_moments`` for a Dask DataFrame: the levels pass, one pass of sums, no more.

    The levels pass is ``mixedfit.dask_opening``'s; each partition then
    becomes a design on the whole data's levels and its ``MomentStats``,
    added up in a tree.  Backfitting runs on the summed statistics.  The
    result equals the in-memory fit to rounding; its fitted values and
    residuals are lazy Dask Series.
    """
    for what, value in (("weights", weights), ("offset", offset)):
        if value is not None:
            raise ModelSpecError(f"method='moments' does not take {what}: the moment equations are "
                                 "for unweighted rows without offset; use the exact fit")
    parsed = parse_formula(formula)
    if not parsed.bars:
        raise ModelSpecError("no random effects terms specified in formula")
    columns = model_columns(parsed, data._meta, None, None)
    data = data[columns]
    plan = Plan(formula, parsed, None, None, na_action, columns, grouping_columns(parsed))
    parts = data.to_delayed()
    timings = {}
    clock = time.perf_counter()
    plan, structure = levels_pass(data, parts, plan)
    check_design(structure)
    timings["levels"] = time.perf_counter() - clock
    clock = time.perf_counter()
    plan_task = shared(plan)
    stats = compute(tree_reduce([delayed(_partition_stats)(p, plan_task) for p in parts]))
    timings["sums"] = time.perf_counter() - clock
    check_levels(structure.terms, stats.n)
    if np.linalg.matrix_rank(stats.crossprod()[:stats.p, :stats.p]) < stats.p:
        raise ModelSpecError("the fixed-effects matrix is rank deficient; drop the aliased columns")
    clock = time.perf_counter()
    est = fit_from_stats(stats, structure, solver=solver, tol=tol, maxiter=maxiter)
    timings["fit"] = time.perf_counter() - clock
    fit = MomentsResults(structure, stats, est, data_name=data_name, timings=timings)
    fit._dask = (data, plan)
    return fit


def _partition_stats(part: pd.DataFrame, plan) -> MomentStats | None:
    if part.empty:
        return None
    return MomentStats.from_design(partition_design(part, plan))


def _partition_fitted(part: pd.DataFrame, plan, beta: np.ndarray, ranef: list[np.ndarray],
                      what: str) -> pd.Series:
    if part.empty:
        return pd.Series([], index=part.index, dtype=float)
    design = partition_design(part, plan)
    eta = _eta(design, beta, ranef)
    values = eta if what == "fitted" else design.y - eta
    return pd.Series(values, index=design.rows).reindex(part.index)


def _eta(design: Design, beta: np.ndarray, ranef: list[np.ndarray]) -> np.ndarray:
    eta = design.X @ beta
    for term, b in zip(design.terms, ranef):
        eta = eta + b[term.codes]
    return eta


# -- the results ----------------------------------------------------------------


class _ModelView:
    """What ``mixedfit.inference.predict.predict`` reads of ``fit.model``."""

    def __init__(self, design: Design):
        self.design = design


class MomentsResults:
    """A crossed random-intercepts model fitted by the method of moments.

    The API of ``MixedResults`` where the quantity
    exists: ``fixef``, ``bse``, ``vcov``, ``tvalues``, ``varcorr``,
    ``sigma``, ``ranef``, ``coef``, ``fittedvalues``, ``resid``,
    ``predict``, ``summary``, ``to_dict``.  There is no likelihood (no
    ``llf``, AIC, profiles or likelihood-ratio tests).

    Attributes
    ----------
    truncated : list of str
        The grouping factors whose negative moment estimate was set to 0.
    solver : str
        ``"cg"`` or ``"backfit"``: how the GLS β and the BLUPs were solved for.
    iterations : int
        The solver's iterations (backfitting sweeps).
    equations : (ndarray, ndarray)
        The moment equations' coefficients and right-hand side.
    timings : dict
        Seconds spent on each pass and on the fit.
    """

    method = "moments"
    reml = None
    weights_name = None
    offset_name = None

    def __init__(self, design: Design, stats: MomentStats, est: dict, *, data_name: str | None,
                 timings: dict):
        self.model = _ModelView(design)
        self.formula = design.formula
        self.data_name = data_name
        self.nobs = stats.n
        self._stats = stats
        self._est = est
        self.truncated = est["truncated"]
        self.solver = est["solver"]
        self.iterations = est["iterations"]
        self.equations = est["equations"]
        self.timings = timings
        self._dask = None

    @property
    def xnames(self) -> list[str]:
        return list(self.model.design.xnames)

    @property
    def fixef(self) -> pd.Series:
        """β̂ by GLS at the moment estimates of the variance components."""
        return pd.Series(self._est["beta"], index=self.xnames)

    params = fixef

    @property
    def vcov(self) -> pd.DataFrame:
        """``σ̂²_e (X'σ̂²_eV̂⁻¹X)⁻¹``, the GLS covariance at the moment estimates."""
        return pd.DataFrame(self._est["cov"], index=self.xnames, columns=self.xnames)

    @property
    def bse(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self._est["cov"])), index=self.xnames)

    @property
    def tvalues(self) -> pd.Series:
        return self.fixef / self.bse

    @property
    def sigma(self) -> float:
        return float(np.sqrt(self._est["s2"][-1]))

    @property
    def ngroups(self) -> dict[str, int]:
        return {t.group: f.nlevels for t, f in zip(self.model.design.terms, self._stats.factors)}

    @property
    def vc_blocks(self) -> list[tuple[str, list[str], np.ndarray]]:
        return [(t.group, ["(Intercept)"], np.array([[s2]]))
                for t, s2 in zip(self.model.design.terms, self._est["s2"])]

    @property
    def varcorr(self) -> pd.DataFrame:
        """As lme4's ``as.data.frame(VarCorr(fit))``: grp, var1, var2, vcov, sdcor."""
        rows = [(t.group, "(Intercept)", None, s2, np.sqrt(s2))
                for t, s2 in zip(self.model.design.terms, self._est["s2"])]
        rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])

    def ranef(self, condvar: bool = False) -> dict[str, pd.DataFrame]:
        """The conditional modes (BLUPs) at the moment estimates, from the backfit."""
        if condvar:
            raise ModelSpecError("method='moments' gives no conditional variances of the random effects")
        return {t.group: pd.DataFrame({"(Intercept)": b}, index=pd.Index(t.levels, name=t.group))
                for t, b in zip(self.model.design.terms, self._est["ranef"])}

    def coef(self) -> dict[str, pd.DataFrame]:
        """Per-level coefficients: β̂ plus the level's random intercept."""
        out = {}
        for group, re in self.ranef().items():
            frame = pd.DataFrame(np.tile(self._est["beta"], (len(re), 1)), index=re.index,
                                 columns=self.xnames)
            if "(Intercept)" in frame:
                frame["(Intercept)"] += re["(Intercept)"]
            out[group] = frame
        return out

    def _on_rows(self, what: str):
        if self._dask is not None:
            data, plan = self._dask
            return data.map_partitions(_partition_fitted, plan, self._est["beta"], self._est["ranef"],
                                       what, meta=pd.Series([], dtype=float))
        d = self.model.design
        eta = _eta(d, self._est["beta"], self._est["ranef"])
        return pd.Series(eta if what == "fitted" else d.y - eta, index=d.rows)

    @cached_property
    def fittedvalues(self):
        """``Xβ̂ + Zb̂`` per row (a lazy Dask Series for Dask data)."""
        return self._on_rows("fitted")

    @property
    def resid(self):
        """``y − Xβ̂ − Zb̂`` per row (a lazy Dask Series for Dask data)."""
        return self._on_rows("resid")

    def predict(self, newdata=None, re_form=None, allow_new_levels: bool = False) -> pd.Series:
        """Predictions with lme4's semantics (``mixedfit.inference.predict.predict``)."""
        if newdata is None and re_form is None:
            return self.fittedvalues
        if self._dask is not None and newdata is None:
            raise ModelSpecError("predict(re_form=...) on the fitted rows of Dask data: pass newdata")
        return predict(self, newdata=newdata, re_form=re_form, allow_new_levels=allow_new_levels)

    def summary(self) -> "MomentsSummary":
        return MomentsSummary(self)

    def __str__(self) -> str:
        return str(self.summary())

    __repr__ = __str__

    def to_dict(self) -> dict:
        """The estimates as plain Python values, ready for ``json.dumps``."""
        vcov = self.vcov
        return {
            "method": "moments",
            "formula": self.formula,
            "data_name": self.data_name,
            "nobs": int(self.nobs),
            "ngroups": {g: int(k) for g, k in self.ngroups.items()},
            "beta": plain(self.fixef.to_dict()),
            "se": plain(self.bse.to_dict()),
            "vcov": {"names": list(vcov.index), "values": plain(vcov.to_numpy())},
            "sigma": plain(self.sigma),
            "varcorr": plain(self.varcorr.to_dict(orient="records")),
            "ranef": {g: {"levels": [str(v) for v in f.index], "values": plain(f.to_numpy())}
                      for g, f in self.ranef().items()},
            "truncated": list(self.truncated),
            "solver": self.solver,
            "iterations": int(self.iterations),
        }


class MomentsSummary:
    """The printed summary of a ``MomentsResults``: lme4's layout, no likelihood lines."""

    def __init__(self, fit: MomentsResults):
        self.fit = fit

    def __str__(self) -> str:
        fit = self.fit
        parts = [TITLE + "\n", call_block(fit), "\n",
                 varcorr_block(fit, PRINT_DIGITS, ("Variance", "Std.Dev.")), groups_block(fit),
                 fixef_block(fit, PRINT_DIGITS)]
        how = plural(fit.iterations, "conjugate-gradient iteration" if fit.solver == "cg" else "backfitting sweep")
        notes = [f"β by GLS at these variance components ({how})"]
        if fit.truncated:
            notes.append(f"negative moment estimates truncated at 0: {', '.join(fit.truncated)}")
        text = "".join(parts) + "".join(rf.cat_fill([n]) for n in notes)
        return text.rstrip("\n")

    __repr__ = __str__
