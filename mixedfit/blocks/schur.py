"""The Schur update of the rest, ``G ← G − A_r0 M A_r0ᵀ``, by one of a few strategies.

Eliminating the first term subtracts ``A_r0 M A_r0ᵀ`` from the rest, where
``A_r0`` stacks the random rest's rows (``R0``) on X's and y's (``F0``) and M
is block diagonal (``FirstTerm.eliminate``).  Each θ changes only M, so the
update is built once as the cheapest of:

* ``RankUpdate``: dense rows and S = 1, one symmetric rank-ℓ update (dsyrk);
* ``BlockUpdate``: ``PackedMap`` s where they are small enough to keep (the
  X/y block's dense map, the random columns' sparse Schur pattern), and
  products formed at each θ where not: ``XYProducts``, ``DenseRowProducts``
  (rows dense enough for BLAS), ``SparseRowProducts``.

Each also gives its transpose (``adjoint``): for weights W on the rest's lower
triangle, the packed planes D with ``Σ W ∘ A_r0 M A_r0ᵀ = Σ D ∘ M``, which
the gradient needs (``mixedfit.blocks.gradient``), at the cost of one more update.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas

from .. import cores
from ..formula.rvalues import distinct
from .levels import FirstTerm, lower_triangle, pair_index, planes_times_blocks, to_planes

__all__ = ["shared_blocks", "PackedMap", "RankUpdate", "XYProducts", "DenseRowProducts",
           "SparseRowProducts", "BlockUpdate", "schur_update"]


# Most (i, j, s, t) products the precomputed Schur pattern may hold.  Building
# it peaks at about 25 bytes a product: MixedModels.jl's InstEval model (its
# (0 + service|dept) puts 42 dense-ish dept rows in the rest) enumerates 6.7M,
# +150 MB and 0.8 s once, and then takes 13 ms per evaluation instead of 76 ms
# by sparse products formed at each θ.
_PATTERN_BUDGET = 10_000_000


_ROW_BLOCKS = 8  # most row blocks of the random rest's Schur products where there is no pattern


_ROW_BLOCK_ROWS = 256  # fewest rows per such block


_DENSE_BLOCK_ROWS = 64  # the same for dense rows (_dense_rest_rows)


def _pattern_size(Ar0: sp.csr_matrix, S0: int, qr: int) -> int:
    """Number of products the pattern of ``_schur_pattern`` would enumerate."""
    ell = Ar0.shape[1] // S0
    coo = Ar0.tocoo()
    level = coo.col // S0
    per_level = np.bincount(level, minlength=ell).astype(np.int64)
    random_rows = np.bincount(level[coo.row < qr], minlength=ell).astype(np.int64)
    return int(np.sum(per_level * random_rows))


def _schur_pattern(Ar0: sp.csr_matrix, S0: int, m: int, qr: int,
                   which: np.ndarray | None = None) -> tuple[sp.csr_matrix, np.ndarray]:
    """The fixed sparsity pattern of ``Ar0 M Ar0ᵀ`` in the random rest's columns, for block-diagonal M.

    ``Ar0`` stacks ``R0`` (the random rest's rows, 0 … q_r − 1) on ``F0`` (X and
    y).  Entry (i, j) of ``Ar0 M Ar0ᵀ`` is ``Σ_l Σ_st Ar0[i,(l,s)] M_l[s,t] Ar0[j,(l,t)]``:
    a fixed linear map of the entries of M.  Returns that map for the entries
    with i ≥ j and j < q_r (the lower triangle's random-rest columns) as a sparse
    matrix ``P``, one row per structurally nonzero (i, j), and the flat positions
    of those (i, j) in an (m, m) array, so that each θ costs one ``P @ packed.ravel()``
    with M in packed planes (see ``pair_index``).  ``which`` gives each
    level's column of M where levels share one (``shared_blocks``); by
    default each level has its own.
    """
    ell = Ar0.shape[1] // S0
    if which is not None and S0 == 1:
        # Levels in the order of their shared column: the products then come
        # with their columns ascending, so building P skips sorting each of
        # its rows (InstEval: 79 → 39 ms).
        by_column = np.argsort(which, kind="stable")
        Ar0, which = Ar0[:, by_column], which[by_column]
    coo = Ar0.tocsc().tocoo()  # column by column, rows ascending within each
    rows, vals = coo.row, coo.data
    level, s = np.divmod(coo.col, S0)
    # Pair every entry a with the random-rest entries b (rows < q_r) of its level
    # with rows[b] ≤ rows[a]: in each of the level's S columns a leading run, of a
    # length found by searching the rest's (column, row) keys.
    rest = np.flatnonzero(rows < qr)
    rest_rows = rows[rest]
    key = coo.col[rest].astype(np.int64) * m + rest_rows
    first = np.searchsorted(key, np.arange(Ar0.shape[1], dtype=np.int64) * m)
    partner = level[None, :] * S0 + np.arange(S0)[:, None]  # (S, entries): the level's columns
    run = first[partner].ravel()
    reps = np.searchsorted(key, (partner.astype(np.int64) * m + rows).ravel(), side="right") - run
    # The pairs' arrays make this the peak of a fit's memory (InstEval: 2.1M
    # pairs, 134 MB with int64 throughout): int32 where they fit, and each
    # freed once used.
    small = np.int32 if max(int(reps.sum()), m * m) < 2**31 else np.int64
    # Entry a (once per partner column) meets a run of reps[a] rest entries b:
    # a's own values are repeated, b's gathered from within the runs, so no
    # index array of a is formed (InstEval's pattern: 98 → 82 ms).
    within = np.repeat((run - (np.cumsum(reps) - reps)).astype(small), reps)
    within += np.arange(within.size, dtype=small)
    flat = _along_runs(rows.astype(small), S0, reps)
    flat *= m
    flat += rest_rows[within]
    pos, inverse = distinct(flat, m * m)
    del flat
    pairs = pair_index(S0)
    # which in level's own (int32) type: int64 column indices would add 16 MB to InstEval's peak
    column, width = (level, ell) if which is None else (which.astype(level.dtype)[level], int(which.max()) + 1)
    mcol = _along_runs(column, S0, reps)
    if S0 > 1:  # with S0 = 1, one pair: no lookup; a flat take is a third of a 2-d index's time
        mcol += pairs.ravel().take(_along_runs(s, S0, reps) * S0 + s[rest][within]) * width
    data = _along_runs(vals, S0, reps)
    data *= vals[rest][within]
    del within
    P = sp.csr_matrix((data, (inverse, mcol)), shape=(pos.size, (pairs.max() + 1) * width))
    P.sum_duplicates()  # the (s, t) and (t, s) twins of each entry, and the levels that share a column
    return P, pos


def _along_runs(values: np.ndarray, S0: int, reps: np.ndarray) -> np.ndarray:
    """Each entry's value (once per partner column of its level) repeated along its run of partners (``_schur_pattern``)."""
    return np.repeat(values if S0 == 1 else np.tile(values, S0), reps)


_DENSE_R0_FILL = 0.1  # fewest nonzeros, per entry of R0, for dense products with it


_DENSE_R0_BYTES = 64 * 2**20  # most memory R0 may take as a dense array


def _dense_rest_rows(R0: sp.csr_matrix, S0: int) -> np.ndarray | None:
    """R0 as a dense array in plane layout, where it is dense enough for BLAS products to win.

    A sparse product with R0 pays a few nanoseconds per product of entries, a
    dense one a few hundredths of that per multiply-add, so from about a tenth
    nonzero on (every subject seeing every item, say) the dense one is cheaper
    than the sparse products and the Schur pattern alike (a maximal model on
    60 subjects × 40 items with four-level conditions: fit 21 → 0.9 s).
    """
    qr, q0 = R0.shape
    if not qr or R0.nnz < _DENSE_R0_FILL * qr * q0 or 8 * qr * q0 > _DENSE_R0_BYTES:
        return None
    return np.ascontiguousarray(R0[:, to_planes(q0, S0)].toarray())


_MAP_BUDGET = 1_000_000  # most entries of the dense X/y map of ``_gram_map`` (8 MB)


def _gram_map(Fp: np.ndarray) -> np.ndarray:
    """The lower triangle of ``F M Fᵀ`` as a dense linear map of block-diagonal M's packed planes.

    ``Fp`` (k, S, ℓ) holds F's rows in plane layout.  Row ``r`` of the result
    gives entry (i, j) = ``np.tril_indices(k)[·][r]``; its columns follow
    M's packed planes raveled (see ``pair_index``).  One mat-vec with this map costs a
    fifth of forming ``F M`` and multiplying by ``Fᵀ`` when k is small (X and y).

    Examples
    --------
    >>> Fp = np.arange(8.0).reshape(2, 2, 2)  # k = 2 rows, S = 2, two levels
    >>> packed = np.array([[1.0, 2.0], [0.5, 0.0], [1.0, 1.0]])  # M_0 = [[1, .5], [.5, 1]], M_1 = diag(2, 1)
    >>> _gram_map(Fp) @ packed.ravel()
    array([ 15.,  47., 175.])
    """
    k, S, ell = Fp.shape
    i, j = lower_triangle(k)
    pairs = pair_index(S)
    K = np.zeros((i.size, pairs.max() + 1, ell))
    for s in range(S):
        for t in range(S):
            K[:, pairs[s, t]] += Fp[i, s] * Fp[j, t]
    return K.reshape(i.size, -1)


def _lower_positions(k: int, offset: int, m: int) -> np.ndarray:
    """Flat positions in an (m, m) array of the lower triangle of its trailing k×k block, row by row."""
    i, j = lower_triangle(k)
    return (offset + i) * m + offset + j


def _subtract_lower(G: np.ndarray, left, right, min_rows: int) -> None:
    """``G[:q, :q] −= left @ rightᵀ`` on the lower triangle only, q = left's rows; dense or sparse factors.

    The rows go in up to ``_ROW_BLOCKS`` blocks of at least ``min_rows``, each
    against the rows of ``right`` up to its own last, which spares most of the
    upper triangle; smaller blocks would cost more in calls than they save.
    A 400×400 block from 600 columns took 4.1 ms whole and 2.6 ms in 7 blocks.
    Dense blocks agree with the whole product to rounding only (OpenBLAS
    takes other kernels for small products), which can move BOBYQA's path:
    the benchmarks' sim_maximal took 479 evaluations instead of 531 with
    numpy's products, and 531 with scipy's, to the same optimum both ways.
    """
    q = left.shape[0]
    blocks = min(_ROW_BLOCKS, -(-q // min_rows))
    edges = np.linspace(0, q, blocks + 1).astype(int)
    for a, b in zip(edges[:-1], edges[1:]):
        if sp.issparse(left):
            G[a:b, :b] -= (left[a:b] @ right[:b].T).toarray()
        else:  # by scipy's BLAS, the one that factors (see model._numpy_own_blas); transposed views, no copies
            G[a:b, :b] -= blas.dgemm(1.0, left[a:b].T, right[:b].T, trans_a=1)


def _add_level_products(D: np.ndarray, left, right: np.ndarray, S: int) -> None:
    """``D[pair(s, t), l] += Σ_i left[i, (s, l)] right[i, (t, l)]`` for rows in plane layout (left dense or sparse).

    The adjoint of an update ``left M rightᵀ`` with weights already multiplied into ``right``.
    """
    ell = D.shape[1]
    pairs = pair_index(S)
    for s in range(S):
        rows = left[:, s * ell:(s + 1) * ell]
        for t in range(S):
            other = right[:, t * ell:(t + 1) * ell]
            if sp.issparse(rows):
                D[pairs[s, t]] += np.asarray(rows.multiply(other).sum(axis=0)).reshape(-1)
            else:
                D[pairs[s, t]] += np.einsum("il,il->l", rows, other)


_SHARED_LEVELS = 0.5  # most distinct first-term blocks, per level, for the Schur pattern to merge levels


_SHARED_MIN_PRODUCTS = 100_000  # fewest products in the Schur pattern for merging to repay finding the blocks


def shared_blocks(A00: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """One level per distinct block of ``A00`` (ℓ, S, S), and which of those each level has; None where most differ.

    A level's M (``FirstTerm.eliminate``) depends on its own block
    of A00 alone, so levels with equal blocks share it, and the Schur
    pattern's map of M's entries can sum their columns once instead of per θ
    (InstEval's 2972 students have 86 distinct counts: its map shrinks from
    2.1M entries to 1.2M).

    Examples
    --------
    >>> shared_blocks(np.array([2.0, 5.0, 2.0, 2.0]).reshape(4, 1, 1))
    (array([0, 1]), array([0, 1, 0, 0]))
    >>> shared_blocks(np.array([2.0, 5.0]).reshape(2, 1, 1)) is None
    True
    """
    ell = A00.shape[0]
    rows = np.ascontiguousarray(A00.reshape(ell, -1))
    # Each block as one opaque value: equal to the last bit, and found in one sort.
    _, first, which = np.unique(rows.view(np.dtype((np.void, rows.itemsize * rows.shape[1]))).reshape(-1),
                                return_index=True, return_inverse=True)
    if first.size > _SHARED_LEVELS * ell:
        return None
    return first, which.reshape(-1)


# Fewest nonzeros of a map whose product is split between two threads (``cores.beside``):
# InstEval's 1.15M took 1.55 ms on one, 0.90 ms on two; below this the hand-off would cost more than it saves.
_SPLIT_PRODUCTS = 400_000


def _row_halves(matrix: sp.csr_matrix) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Two CSR views of ``matrix``'s rows, cut where half its nonzeros are above (no copies of its entries)."""
    ptr = matrix.indptr
    top = int(np.searchsorted(ptr, ptr[-1] // 2))
    cut = ptr[top]
    cols = matrix.shape[1]
    upper = sp.csr_matrix((matrix.data[:cut], matrix.indices[:cut], ptr[: top + 1]), shape=(top, cols))
    lower = sp.csr_matrix((matrix.data[cut:], matrix.indices[cut:], ptr[top:] - cut),
                          shape=(matrix.shape[0] - top, cols))
    return upper, lower


# Most positions a map's span may skip, as a share of its rows, for ``_spanning`` to fill them with empty rows.
_SPAN_GAPS = 1 / 8


def _spanning(matrix, at: np.ndarray) -> tuple[sp.csr_matrix | np.ndarray, slice] | None:
    """The map with an empty row at each position its ascending positions ``at`` skip, and the slice of
    positions it then covers; None where they are not ascending, or skip more than ``_SPAN_GAPS`` of them.

    Only a sparse map is filled (its rows cost nothing); a dense one must be unbroken as it is.

    Examples
    --------
    >>> at = np.r_[3:11, 12]  # nine rows; position 11 is skipped
    >>> filled, where = _spanning(sp.csr_matrix(np.arange(1.0, 10.0).reshape(9, 1)), at)
    >>> where, filled.toarray().ravel().tolist()
    (slice(3, 13, None), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 0.0, 9.0])
    >>> _spanning(sp.csr_matrix(np.ones((2, 1))), np.array([4, 6])) is None  # half its span skipped
    True
    """
    if at.size == 0 or np.any(at[1:] <= at[:-1]):
        return None
    start, span = int(at[0]), int(at[-1] - at[0]) + 1
    where = slice(start, start + span)
    if span == at.size:
        return matrix, where
    if not (sp.issparse(matrix) and matrix.format == "csr") or span - at.size > _SPAN_GAPS * at.size:
        return None
    lengths = np.zeros(span, matrix.indptr.dtype)
    lengths[at - start] = np.diff(matrix.indptr)
    indptr = np.concatenate([matrix.indptr[:1], np.cumsum(lengths, dtype=matrix.indptr.dtype)])
    return sp.csr_matrix((matrix.data, matrix.indices, indptr), shape=(span, matrix.shape[1])), where


def _cut(where: slice | np.ndarray, top: int) -> tuple[slice | np.ndarray, slice | np.ndarray]:
    """The positions of a map's first ``top`` rows and of the others, where ``where`` holds all its rows'."""
    if isinstance(where, slice):
        return slice(where.start, where.start + top), slice(where.start + top, where.stop)
    return where[:top], where[top:]


class PackedMap:
    """A fixed linear map from M's packed planes to entries of the rest: ``g[at] −= matrix @ M``.

    Attributes
    ----------
    matrix : ndarray or scipy.sparse.csr_matrix
        One row per entry, one column per (plane, level) of M.
    at : ndarray
        The entries' flat positions in the rest (the (m, m) array, or the kept entries of ``SparseRest``).
    levels : ndarray or None
        Where levels share a column of the map (``shared_blocks``): the level whose M each column takes.
    """

    def __init__(self, matrix, at: np.ndarray, levels: np.ndarray | None = None):
        self.matrix, self.at, self.levels = matrix, at, levels
        # Where the positions run (nearly) unbroken, as the kept entries of
        # SparseRest do, the product is written to a slice of g: a fancy
        # index's gather and scatter cost more than the product's own writes
        # (InstEval's 145,756 positions: 0.74 ms against 0.04 a slice).
        spanned = _spanning(matrix, at)
        self._product, where = (matrix, at) if spanned is None else spanned
        split = sp.issparse(self._product) and self._product.nnz >= _SPLIT_PRODUCTS
        self._halves = _row_halves(self._product) if split else None
        self._where = (where, *_cut(where, 0 if self._halves is None else self._halves[0].shape[0]))

    def __reduce__(self):
        return PackedMap, (self.matrix, self.at, self.levels)  # the halves are views: made again, not copied

    def moved(self, at: np.ndarray) -> "PackedMap":
        """The same map onto other positions."""
        return PackedMap(self.matrix, at, self.levels)

    def subtract(self, g: np.ndarray, packed: np.ndarray) -> None:
        at_levels = (packed if self.levels is None else packed[:, self.levels]).reshape(-1)
        job = None if self._halves is None else cores.beside(self._halves[0].__matmul__, at_levels)
        where, top, bottom = self._where
        if job is None:
            g[where] -= self._product.dot(at_levels)  # dense or sparse; a dense map's dot skips @'s ufunc overhead
            return
        g[bottom] -= self._halves[1] @ at_levels
        g[top] -= job.result()

    def adjoint(self, w: np.ndarray, D: np.ndarray) -> None:
        """``D += `` the transpose of the map applied to the weights ``w`` (flat, the layout of ``g``).

        Levels sharing a column share their M, so their weights go to the
        level that column takes (the gradient is linear in them: ``FirstTerm``).
        """
        moved = (self.matrix.T @ w[self.at]).reshape(D.shape[0], -1)
        if self.levels is None:
            D += moved
        else:
            D[:, self.levels] += moved


class RankUpdate:
    """``G −= BBᵀ`` with B = A_r0 M^½, for dense rows and a diagonal M ≥ 0 (S = 1): one dsyrk, X and y included.

    Attributes
    ----------
    rows : ndarray (m, ℓ)
        A_r0, dense: the random rest's rows, then X's and y's.
    """

    def __init__(self, rows: np.ndarray):
        self.rows = rows

    @property
    def multiply_adds(self) -> float:
        """The dsyrk's multiply-adds per θ: the lower triangle of an (m, m) product over ℓ."""
        m, ell = self.rows.shape
        return m * m * ell / 2

    def subtract(self, G: np.ndarray, packed: np.ndarray) -> None:
        G -= blas.dsyrk(1.0, (self.rows * np.sqrt(packed[0])).T, trans=1, lower=1)  # lower triangle only

    def adjoint(self, W: np.ndarray) -> np.ndarray:
        """The packed planes D (1, ℓ) with ``Σ W ∘ (B Bᵀ) = Σ D ∘ M``, for weights W on G's lower triangle."""
        return np.einsum("il,il->l", self.rows, W @ self.rows)[None, :]


class XYProducts:
    """The X/y block formed at each θ, ``G[q_r:, q_r:] −= (F M) Fᵀ``, where its map would be too large."""

    def __init__(self, xy_rows: np.ndarray, start: int):
        self.xy_rows, self.start = xy_rows, start

    @property
    def multiply_adds(self) -> float:
        """The (k, k) product of X's and y's rows over q0, per θ."""
        k, q0 = self.xy_rows.shape
        return k * k * q0

    def subtract(self, G: np.ndarray, blocks: np.ndarray, xy_times_m: np.ndarray) -> None:
        G[self.start:, self.start:] -= xy_times_m @ self.xy_rows.T

    def adjoint(self, W: np.ndarray, D: np.ndarray, xy_rows: np.ndarray, S: int) -> None:
        _add_level_products(D, self.xy_rows, W[self.start:, self.start:] @ self.xy_rows, S)


class DenseRowProducts:
    """The random rest's rows, dense enough for BLAS (``_dense_rest_rows``), times M at each θ.

    Attributes
    ----------
    rows : ndarray (q_r, q0)
        R0 in plane layout.
    """

    def __init__(self, rows: np.ndarray):
        self.rows = rows

    @property
    def multiply_adds(self) -> float:
        """The lower triangle of the rows' (q_r, q_r) product over q0, per θ (the X/y rows' share aside)."""
        count, q0 = self.rows.shape
        return count * count * q0 / 2

    def subtract(self, G: np.ndarray, blocks: np.ndarray, xy_times_m: np.ndarray) -> None:
        count = self.rows.shape[0]
        size, nlevels = blocks.shape[0], blocks.shape[2]
        rows_times_m = planes_times_blocks(self.rows.reshape(count, size, nlevels), blocks).reshape(count, -1)
        _subtract_lower(G, rows_times_m, self.rows, _DENSE_BLOCK_ROWS)
        G[count:, :count] -= xy_times_m @ self.rows.T

    def adjoint(self, W: np.ndarray, D: np.ndarray, xy_rows: np.ndarray, S: int) -> None:
        count = self.rows.shape[0]
        # (W_b R) = (Rᵀ W_bᵀ)ᵀ by scipy's BLAS, the one that factors and may thread (see
        # model._numpy_own_blas), on R's transposed view: the (q_r, q_r) product over q0 is
        # the gradient's largest (crossed slopes on 400 × 200: 5.1 → 2.5 ms on two cores).
        # W_b holds the update's lower triangle as weights: a triangular product, half the
        # multiply-adds of a general one (400 × 800 rows: 6.1 → 3.7 ms on one core).
        weighted = blas.dtrmm(1.0, W[:count, :count].T, self.rows.T, side=1, lower=0).T
        _add_level_products(D, self.rows, weighted, S)
        _add_level_products(D, xy_rows, W[count:, :count] @ self.rows, S)


class SparseRowProducts:
    """The random rest's rows times M by sparse products at each θ, where no Schur pattern is kept.

    Attributes
    ----------
    rows : scipy.sparse.csr_matrix (q_r, q0)
        R0 in plane layout.
    """

    def __init__(self, rows: sp.csr_matrix):
        self.rows = rows

    multiply_adds = 0.0  # sparse products: scipy runs them on one thread

    def subtract(self, G: np.ndarray, blocks: np.ndarray, xy_times_m: np.ndarray) -> None:
        size = blocks.shape[0]
        diagonal = sp.bmat([[sp.diags(blocks[s, t]) for t in range(size)] for s in range(size)], format="csr")
        # Sparse products cost per product: by row blocks the crossed 5e5
        # benchmark's 2000×2000 block went from 220 to 120 ms.
        _subtract_lower(G, self.rows @ diagonal, self.rows, _ROW_BLOCK_ROWS)
        G[self.rows.shape[0]:, : self.rows.shape[0]] -= (self.rows @ xy_times_m.T).T

    def adjoint(self, W: np.ndarray, D: np.ndarray, xy_rows: np.ndarray, S: int) -> None:
        count = self.rows.shape[0]
        rows_t = self.rows.T.tocsr()
        _add_level_products(D, self.rows, (rows_t @ W[:count, :count].T).T, S)
        _add_level_products(D, xy_rows, (rows_t @ W[count:, :count].T).T, S)


class BlockUpdate:
    """The update by fixed maps where they are kept (``maps``), by products at each θ where not (``products``).

    Each map is one mat-vec per θ: the X/y block's dense map (``_gram_map``)
    and the random columns' sparse Schur pattern (``_schur_pattern``).  The
    products share X's and y's rows times M, formed once per θ.
    """

    def __init__(self, maps: list[PackedMap], products: list, xy_rows: np.ndarray, size: int, nlevels: int):
        self.maps, self.products = maps, products
        self.xy_rows, self.size, self.nlevels = xy_rows, size, nlevels

    @property
    def multiply_adds(self) -> float:
        """The dense products' multiply-adds per θ (the maps' sparse mat-vecs run on one thread)."""
        return sum(piece.multiply_adds for piece in self.products)

    def moved(self, positions: np.ndarray) -> "BlockUpdate":
        """The same maps onto the kept entries at sorted flat ``positions`` (no products)."""
        maps = [piece.moved(np.searchsorted(positions, piece.at)) for piece in self.maps]
        return BlockUpdate(maps, [], self.xy_rows, self.size, self.nlevels)

    def subtract(self, G: np.ndarray, packed: np.ndarray) -> None:
        """In place ``G ← G − A_r0 M A_r0ᵀ`` on the lower triangle (G: the kept entries, where all is mapped)."""
        g = G.reshape(-1)
        for piece in self.maps:
            piece.subtract(g, packed)
        if not self.products:
            return
        blocks = packed[pair_index(self.size)]  # (S, S, ℓ)
        k = self.xy_rows.shape[0]
        xy_times_m = planes_times_blocks(self.xy_rows.reshape(k, self.size, self.nlevels), blocks).reshape(k, -1)
        for piece in self.products:
            piece.subtract(G, blocks, xy_times_m)

    def adjoint(self, W: np.ndarray) -> np.ndarray:
        """The packed planes D (S(S+1)/2, ℓ) with ``Σ W ∘ (A_r0 M A_r0ᵀ) = Σ D ∘ M``.

        ``W`` holds weights on the rest's lower triangle in G's layout (the
        kept entries where all is mapped); zero above the diagonal.
        """
        D = np.zeros((self.size * (self.size + 1) // 2, self.nlevels))
        w = W.reshape(-1)
        for piece in self.maps:
            piece.adjoint(w, D)
        for piece in self.products:
            piece.adjoint(W, D, self.xy_rows, self.size)
        return D


def schur_update(first: FirstTerm, R0: sp.csr_matrix, F0: np.ndarray, m: int) -> RankUpdate | BlockUpdate:
    """The cheapest update of the rest for these cross products: see the module's docstring.

    ``R0`` (q_r, q0) and ``F0`` (p + 1, q0) are the random rest's and X/y's
    cross products with the first term, ``m`` the rest's size.
    """
    size, nlevels = first.size, first.nlevels
    random = R0.shape[0]
    xy_rows = np.ascontiguousarray(F0[:, to_planes(nlevels * size, size)])  # per-θ products run in plane layout
    dense = _dense_rest_rows(R0, size)
    if dense is not None and size == 1:
        return RankUpdate(np.vstack([dense, xy_rows]))
    maps, products = [], []
    k = F0.shape[0]
    if k * (k + 1) // 2 * first.packed.shape[0] * nlevels <= _MAP_BUDGET:
        maps.append(PackedMap(_gram_map(xy_rows.reshape(k, size, nlevels)), _lower_positions(k, random, m)))
    else:
        products.append(XYProducts(xy_rows, random))
    if dense is not None:
        products.append(DenseRowProducts(dense))
    elif random:
        pattern = _pattern_map(first, R0, F0, m)
        if pattern is not None:
            maps.append(pattern)
        else:
            rows = R0[:, to_planes(nlevels * size, size)].tocsr() if size > 1 else R0
            products.append(SparseRowProducts(rows))
    return BlockUpdate(maps, products, xy_rows, size, nlevels)


def _pattern_map(first: FirstTerm, R0: sp.csr_matrix, F0: np.ndarray, m: int) -> PackedMap | None:
    """The Schur pattern of the random rest's columns as a map, or None where it has too many products."""
    Ar0 = sp.vstack([R0, sp.csr_matrix(F0)]).tocsr()
    products = _pattern_size(Ar0, first.size, R0.shape[0])
    if products > _PATTERN_BUDGET:
        return None
    # A large pattern takes M at one level per distinct first-term block
    # (see shared_blocks); the X/y map is small, and is left as it is.
    shared = shared_blocks(first.crossprods) if products >= _SHARED_MIN_PRODUCTS else None
    matrix, at = _schur_pattern(Ar0, first.size, m, R0.shape[0], None if shared is None else shared[1])
    return PackedMap(matrix, at, None if shared is None else shared[0])
