"""The blocked Cholesky factor of a GLMM's ``ΛᵀZᵀWZΛ + I`` at one PIRLS step, and the rest's entries.

``BlockFactor`` eliminates the first random-effects term level by level and
factors the rest (the other terms' columns) after it, the linear engine's way
(``mixedfit.blocks``), on the sums a PIRLS step solves from
(``mixedfit.glmm.PwlsSums``).  Where the rest is nearly nested in the first
term, its products are held as their entries: ``SparseGram`` takes F Fᵀ by
its nonzero products, ``EntryMatrix`` holds B and F = B L0⁻ᵀ on their pattern
(``EntryPattern``), and ``RestEntries`` holds C and C + I − F Fᵀ where the rest
has a diagonal block (``RestFactor``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import LinAlgError
from scipy.linalg.lapack import dpotrf, dtrtrs

from .blocks import batched_lower_inverse

__all__ = ["BlockFactor", "RestFactor", "EntryPattern", "EntryMatrix", "RestEntries", "SparseGram",
           "lower_cholesky", "solve_lower", "entry_sums"]


class BlockFactor:
    """The Cholesky factor of ``A = ΛᵀZᵀWZΛ + I`` in two blocks, the linear engine's way.

    The first random-effects term's block of A is block diagonal (one S×S
    block per level), so its factor ``L0`` is a batch of tiny
    factorizations; the other terms' columns (the rest) are factored after
    eliminating it, densely: ``A = [D Bᵀ; B C]``, ``L = [L0 0; F Lr]`` with
    ``F = B L0⁻ᵀ`` and ``Lr Lrᵀ = C − F Fᵀ``.  Where the first ``diagonal``
    rows of the rest have a diagonal block in ``C − F Fᵀ`` (see
    ``RestFactor``), they are eliminated first, by their square roots.  B
    and F, and C with ``entries``, may be held as their entries
    (``EntryMatrix``; ``gram``: F Fᵀ by ``SparseGram``).  Raises
    ``LinAlgError`` where A is not positive definite.
    """

    def __init__(self, D: np.ndarray, B: np.ndarray | EntryMatrix, C: np.ndarray | EntryMatrix,
                 gram: SparseGram | None = None, diagonal: int = 0, entries: RestEntries | None = None):
        self.ell, self.S = D.shape[0], D.shape[1]
        if isinstance(B, EntryMatrix) and not (gram is not None and B.pattern is gram.pattern):
            B = B.toarray()  # a partition's sums (the driver factors densely)
        try:
            self.L0 = _block_cholesky(D)
            self.M0 = batched_lower_inverse(self.L0)  # the blocks' inverses: solves are products
            self.F = _solve_block_columns(self.M0, B) if B.shape[0] else B
            if isinstance(C, EntryMatrix):  # on the rest's entries (RestEntries)
                self.Lr = RestFactor(C.data - entries.products(self.F), diagonal, entries)
            elif C.size:
                FFt = self.F @ self.F.T if gram is None else gram(self.F)
                self.Lr = RestFactor(C - FFt, diagonal)
            else:
                self.Lr = None
        except np.linalg.LinAlgError:  # scipy's LinAlgError is numpy's
            raise LinAlgError("the penalized weighted cross products are not positive definite") from None
        self.q0 = self.ell * self.S

    @property
    def logdet(self) -> float:
        """log|L|² = log|A|."""
        d0 = self.L0.reshape(-1) if self.S == 1 else np.diagonal(self.L0, axis1=1, axis2=2)
        rest = 0.0 if self.Lr is None else np.sum(np.log(self.Lr.diagonal()))
        return float(2.0 * (np.sum(np.log(d0)) + rest))

    def diagonal(self) -> np.ndarray:
        d0 = self.L0.reshape(-1) if self.S == 1 else np.diagonal(self.L0, axis1=1, axis2=2).reshape(-1)
        return d0 if self.Lr is None else np.concatenate([d0, self.Lr.diagonal()])

    def solve_lower(self, b: np.ndarray) -> np.ndarray:
        """L⁻¹ b, for b of shape (q,) or (q, k)."""
        b = np.asarray(b, float)
        x0 = _solve_blocks(self.M0, b[: self.q0], transpose=False)
        if self.Lr is None:
            return x0
        xr = self.Lr.solve(b[self.q0:] - self.F @ x0)
        return np.concatenate([x0, xr])

    def solve_upper(self, x: np.ndarray) -> np.ndarray:
        """L⁻ᵀ x."""
        x = np.asarray(x, float)
        if self.Lr is None:
            return _solve_blocks(self.M0, x, transpose=True)
        yr = self.Lr.solve(x[self.q0:], transpose=True)
        return np.concatenate([_solve_blocks(self.M0, x[: self.q0] - self.F.T @ yr, transpose=True), yr])

    def inverse_blocks(self, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
        """The diagonal blocks of A⁻¹ = L⁻ᵀL⁻¹ per level, per term: (ℓ, S, S) for each (ℓ, S) of ``sizes``.

        The first term's: ``M_jᵀ (I + K_jᵀ K_j) M_j`` with ``M_j = L0_j⁻¹`` and
        ``K = Lr⁻¹ F`` (its level-j columns); the rest's from ``Lr⁻ᵀ Lr⁻¹``.
        Never the whole q × q inverse.
        """
        S = self.S
        eye = np.broadcast_to(np.eye(S), (self.ell, S, S))
        M = self.M0  # (ℓ, S, S)
        inner = np.array(eye)
        out = []
        if self.Lr is not None:
            Rinv = self.Lr.solve(np.eye(len(self.Lr)))
            K = (self.F.T @ Rinv.T).T.reshape(-1, self.ell, S)
            inner = inner + np.einsum("rls,rlt->lst", K, K)
            rest = Rinv.T @ Rinv
            offset = 0
            for ell, size in sizes[1:]:
                block = rest[offset: offset + ell * size, offset: offset + ell * size].reshape(ell, size, ell, size)
                out.append(block[np.arange(ell), :, np.arange(ell), :])
                offset += ell * size
        return [np.swapaxes(M, 1, 2) @ inner @ M] + out


def lower_cholesky(A: np.ndarray) -> np.ndarray:
    """The lower Cholesky factor of a symmetric A by LAPACK's ``dpotrf`` itself.

    scipy's ``cholesky`` wrapper costs as much as the factorization of the
    small matrices PIRLS factors at every step; ``LinAlgError`` where A is
    not positive definite.
    """
    L, info = dpotrf(A, lower=1, clean=1)
    if info != 0:
        raise LinAlgError("not positive definite")
    return L


def solve_lower(L: np.ndarray, b: np.ndarray, transpose: bool = False) -> np.ndarray:
    """L⁻¹ b (or L⁻ᵀ b) for a lower-triangular L, by LAPACK's ``dtrtrs`` (see ``lower_cholesky``)."""
    x, info = dtrtrs(L, b, lower=1, trans=1 if transpose else 0)
    if info != 0:
        raise LinAlgError("singular triangular factor")
    return x


class RestFactor:
    """The lower Cholesky factor of the rest's A = C − F Fᵀ, whose leading ``diagonal`` × ``diagonal``
    block is diagonal, held as its parts.

    That block's factor is its square roots √P, the columns below it are
    divided by them, and only the trailing block after their elimination is
    factored densely: ``[P Eᵀ; E G] = [√P 0; E √P⁻¹ R][…]ᵀ`` with
    ``R Rᵀ = G − E P⁻¹ Eᵀ`` (grouseticks' 118 broods, in which its
    observation-level first term is nested, before its 63 locations:
    a 63-wide factorization instead of 181, and solves of that width).
    ``entries``: where A is held as its entries on ``RestEntries``' pattern
    (``A`` is then their values), and E = A[d:, :d] √P⁻¹ as its entries too
    (grouseticks: 118 of 63 × 118, a brood in one location).  Raises
    ``LinAlgError`` where A is not positive definite.
    """

    def __init__(self, A: np.ndarray, diagonal: int, entries: RestEntries | None = None):
        d = diagonal
        pivots = np.diagonal(A)[:d] if entries is None else A[entries.diagonal]
        if not np.all(pivots > 0):  # NaN included
            raise LinAlgError("not positive definite")
        self.root = np.sqrt(pivots)
        if entries is None:
            self.E = A[d:, :d] / self.root
            G = A[d:, d:] - self.E @ self.E.T if d else A
        else:
            below = entries.below
            self.E = EntryMatrix(A[entries.below_at] / self.root[below.pattern.cols], below.pattern)
            G = A[entries.trailing].reshape(entries.width, entries.width) - below(self.E)
        self.R = lower_cholesky(G) if G.size else G

    def __len__(self) -> int:
        return self.root.size + self.R.shape[0]

    def diagonal(self) -> np.ndarray:
        return np.concatenate([self.root, np.diagonal(self.R)])

    def solve(self, b: np.ndarray, transpose: bool = False) -> np.ndarray:
        """L⁻¹ b (or L⁻ᵀ b), for b of shape (m,) or (m, k)."""
        d = self.root.size
        if not d:
            return solve_lower(self.R, b, transpose)
        root = self.root if b.ndim == 1 else self.root[:, None]
        if transpose:
            y = solve_lower(self.R, b[d:], transpose=True) if self.R.size else b[d:]
            return np.concatenate([(b[:d] - self.E.T @ y) / root, y])
        x = b[:d] / root
        return np.concatenate([x, solve_lower(self.R, b[d:] - self.E @ x) if self.R.size else b[d:]])


def _block_cholesky(D: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of a stack of S×S blocks (ℓ, S, S); closed form for S ≤ 2.

    Raises ``LinAlgError`` where a block is not positive definite.
    """
    S = D.shape[1]
    if S > 2:
        return np.linalg.cholesky(D)
    if S == 1:
        if not np.all(D > 0):  # NaN included
            raise LinAlgError("a block is not positive definite")
        return np.sqrt(D)
    pivots = D[:, 1, 1] - D[:, 1, 0] ** 2 / D[:, 0, 0]
    if not (np.all(D[:, 0, 0] > 0) and np.all(pivots > 0)):
        raise LinAlgError("a block is not positive definite")
    L = np.empty_like(D)
    L[:, 0, 0] = np.sqrt(D[:, 0, 0])
    L[:, 0, 1] = 0.0
    L[:, 1, 0] = D[:, 1, 0] / L[:, 0, 0]
    L[:, 1, 1] = np.sqrt(D[:, 1, 1] - L[:, 1, 0] ** 2)
    return L


def _solve_blocks(M0: np.ndarray, b: np.ndarray, transpose: bool) -> np.ndarray:
    """Per level, L0ⱼ⁻¹ bⱼ (or L0ⱼ⁻ᵀ bⱼ) for b of shape (ℓS,) or (ℓS, k), from M0 = the blocks' L0ⱼ⁻¹.

    Products with the inverses, elementwise for S ≤ 2: a batched solve of
    thousands of 2×2 systems costs several times more.
    """
    ell, S = M0.shape[0], M0.shape[1]
    if S == 1:
        scale = M0.reshape(-1)
        return b * (scale if b.ndim == 1 else scale[:, None])
    rhs = b.reshape(ell, S, -1)
    if S == 2:
        m00, m10, m11 = (M0[:, i, j, None] for i, j in ((0, 0), (1, 0), (1, 1)))
        r0, r1 = rhs[:, 0], rhs[:, 1]
        x = (np.stack([m00 * r0 + m10 * r1, m11 * r1], axis=1) if transpose
             else np.stack([m00 * r0, m10 * r0 + m11 * r1], axis=1))
        return x.reshape(b.shape)
    factors = np.swapaxes(M0, 1, 2) if transpose else M0
    return (factors @ rhs).reshape(b.shape)


def _solve_block_columns(M0: np.ndarray, B: np.ndarray | EntryMatrix) -> np.ndarray | EntryMatrix:
    """B L0⁻ᵀ for B of shape (m, ℓS): per level j, its S columns times M0ⱼᵀ (M0 = the blocks' L0ⱼ⁻¹);
    on B's pattern where B is held as its entries (``_solve_entries``).

    ``_solve_blocks`` of Bᵀ, transposed back, with the same products, but
    in B's own memory order: no transposed copies, and F comes out
    C-contiguous for the products and solves that read it.
    """
    ell, S = M0.shape[0], M0.shape[1]
    if isinstance(B, EntryMatrix):
        return EntryMatrix(_solve_entries(M0, B), B.pattern)
    if S == 1:
        return B * M0.reshape(-1)
    cols = B.reshape(B.shape[0], ell, S)
    if S == 2:
        F = np.empty_like(cols)
        np.multiply(M0[:, 0, 0], cols[:, :, 0], out=F[:, :, 0])
        F[:, :, 1] = M0[:, 1, 0] * cols[:, :, 0] + M0[:, 1, 1] * cols[:, :, 1]
        return F.reshape(B.shape)
    return np.swapaxes(np.swapaxes(cols, 0, 1) @ np.swapaxes(M0, 1, 2), 0, 1).reshape(B.shape)


def _solve_entries(M0: np.ndarray, B: EntryMatrix) -> np.ndarray:
    """The entries of B L0⁻ᵀ on B's pattern, whose rows have all S columns of each level they meet
    (``EntryPattern``): per such group of S entries b, M0ⱼ b."""
    S = M0.shape[1]
    if S == 1:
        return B.data * M0.reshape(-1)[B.pattern.cols]
    groups = B.data.reshape(-1, S)
    return np.einsum("gst,gt->gs", M0[B.pattern.cols[::S] // S], groups).reshape(-1)


class EntryPattern:
    """Where a matrix of shape ``shape`` may be nonzero: its entries' flat positions ``positions``,
    sorted (row by row), and their rows and columns.

    The rest's products with the first term's columns B, and F = B L0⁻ᵀ,
    where the rest is nearly nested in the first term (``SparseGram``):
    grouseticks' F is 181 × 403 with 806 entries, and held dense its
    products and copies cost more than the rest's factorization.
    """

    def __init__(self, positions: np.ndarray, shape: tuple[int, int]):
        self.positions, self.shape = positions, shape
        self.rows, self.cols = np.divmod(positions, shape[1])
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(self.rows, minlength=shape[0]))])


class EntryMatrix:
    """A matrix held as its entries ``data`` on an ``EntryPattern``: ``@`` a vector or matrix, ``.T``,
    ``+`` (entry by entry on the same pattern, else dense: partitions' patterns differ)."""

    __array_ufunc__ = None  # ndarray + EntryMatrix defers to __radd__

    def __init__(self, data: np.ndarray, pattern: EntryPattern, transposed: bool = False):
        self.data, self.pattern, self._transposed = data, pattern, transposed

    @property
    def shape(self) -> tuple[int, int]:
        return self.pattern.shape[::-1] if self._transposed else self.pattern.shape

    @property
    def T(self) -> EntryMatrix:
        return EntryMatrix(self.data, self.pattern, not self._transposed)

    def toarray(self) -> np.ndarray:
        out = np.zeros(self.pattern.shape[0] * self.pattern.shape[1])
        out[self.pattern.positions] = self.data
        out = out.reshape(self.pattern.shape)
        return out.T if self._transposed else out

    def __matmul__(self, x: np.ndarray) -> np.ndarray:
        rows, cols = self.pattern.rows, self.pattern.cols
        if self._transposed:
            rows, cols = cols, rows
        if x.ndim == 1:
            return np.bincount(rows, weights=self.data * x[cols], minlength=self.shape[0])
        # columns by scipy's product: np.add.at took 50 µs for four, a bincount a column 0.9 ms for 181
        stored = sp.csr_matrix((self.data, self.pattern.cols, self.pattern.indptr), shape=self.pattern.shape)
        return (stored.T if self._transposed else stored) @ x

    def __add__(self, other: EntryMatrix | np.ndarray) -> EntryMatrix | np.ndarray:
        if isinstance(other, EntryMatrix) and other.pattern is self.pattern and other._transposed == self._transposed:
            return EntryMatrix(self.data + other.data, self.pattern, self._transposed)
        return self.toarray() + (other.toarray() if isinstance(other, EntryMatrix) else other)

    __radd__ = __add__


class RestEntries:
    """The rest's A = C + I − F Fᵀ held as its entries where its leading ``d`` × ``d`` block is
    diagonal (``GlmmModel._diagonal_rows``) and the block E below it has few entries: that
    diagonal, E's entries (``below``, a ``SparseGram`` of E Eᵀ on them) and the dense trailing
    block, of width ``m − d`` (``RestFactor``).  The block right of the diagonal one is Eᵀ, and
    the diagonal block's off-diagonal entries are zeros: neither is held.

    On a rest nested in the first term, with a diagonal block of thousands
    of levels, the dense m × m arrays of C and F Fᵀ and their sums, copies
    and differences cost most of a PIRLS step.  ``products`` gives F Fᵀ at
    these entries (``gram`` of F, restricted to them), ``rest_sums`` C there
    from the rows (``pairs``: ``GlmmModel._pair_indices``' rest-by-rest).
    """

    def __init__(self, gram: SparseGram, pairs: tuple, below: SparseGram, m: int, d: int):
        w = m - d
        trailing = (np.arange(w)[:, None] + d) * m + (np.arange(w)[None, :] + d)
        at = np.concatenate([np.arange(d) * (m + 1), (below.pattern.rows + d) * m + below.pattern.cols,
                             trailing.reshape(-1)])
        order = np.argsort(at)
        self.pattern = EntryPattern(at[order], (m, m))
        place = np.empty_like(order)
        place[order] = np.arange(order.size)
        self.diagonal, self.below_at = place[:d], place[d: d + below.pattern.positions.size]
        self.trailing = place[d + below.pattern.positions.size:]
        self.identity = np.zeros(at.size)
        self.identity[np.concatenate([self.diagonal, self.trailing[:: w + 1]])] = 1.0
        self.below, self.width = below, w
        target = self._places(gram.target)
        kept = target < at.size  # products outside the entries (right of the diagonal block)
        self._first, self._second, self._target = gram.first[kept], gram.second[kept], target[kept]
        slots, positions = pairs
        where = self._places(np.arange(m * m) if positions is None else positions)
        self._slots = [(a, b, where[index]) for a, b, index in slots]

    def _places(self, positions: np.ndarray) -> np.ndarray:
        """Each flat position's place among the entries; their number where it is not one."""
        found = np.searchsorted(self.pattern.positions, positions)
        clipped = np.minimum(found, self.pattern.positions.size - 1)
        return np.where(self.pattern.positions[clipped] == positions, found, self.pattern.positions.size)

    def products(self, F: EntryMatrix) -> np.ndarray:
        """F Fᵀ at the entries."""
        return np.bincount(self._target, weights=F.data[self._first] * F.data[self._second],
                           minlength=self.pattern.positions.size)

    def rest_sums(self, rest: np.ndarray) -> EntryMatrix:
        """C, the rest's weighted products with itself (``rest``: the rows' weighted entries), at the entries."""
        n = self.pattern.positions.size
        return EntryMatrix(entry_sums(self._slots, rest, rest, n + 1)[:n], self.pattern)


def entry_sums(slots: list[tuple[int, int, np.ndarray]], left: np.ndarray, right: np.ndarray, size: int) -> np.ndarray:
    """Σᵢ leftᵢₐ rightᵢᵦ at each row's place (``index``) among ``size`` entries, over the pairs of slots (a, b)."""
    sums = np.zeros(size)
    for a, b, index in slots:
        sums += np.bincount(index, weights=left[:, a] * right[:, b], minlength=size)
    return sums


class SparseGram:
    """F Fᵀ for an F (m × ℓS) with few entries per column, by the pairs of entries that share a column.

    F = B L0⁻ᵀ has B's pattern per level: a row of the rest has entries in
    level j's S columns where it meets level j in some observation.  When
    the terms are nearly nested (grouseticks' observation-level INDEX
    first, BROOD and LOCATION in the rest: two entries per column), the
    dense product's m²ℓS multiplications are almost all by zero.  ``keys``:
    the distinct (level, row) pairs of F's entries as ``level · m + row``
    (``entries``).  ``pattern``: where F is held as its entries
    (``EntryMatrix``) on that pattern of F's, whose entries the product then
    reads; None: F is dense.
    """

    def __init__(self, keys: np.ndarray, m: int, S: int, pattern: EntryPattern | None = None):
        level, row = keys // m, keys % m
        counts = np.bincount(level)
        starts = np.cumsum(counts) - counts
        sizes = counts[level]
        left = np.repeat(np.arange(keys.size), sizes)
        offsets = np.arange(left.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        right = starts[level[left]] + offsets
        width = pattern.shape[1] if pattern is not None else counts.size * S  # every level has entries
        self.m, self.target = m, row[left] * m + row[right]
        self.first, self.second = [], []
        for s in range(S):
            column = level[left] * S + s
            self.first.append(row[left] * width + column)
            self.second.append(row[right] * width + column)
        self.first, self.second = np.concatenate(self.first), np.concatenate(self.second)
        if pattern is not None:
            self.first, self.second = (np.searchsorted(pattern.positions, self.first),
                                       np.searchsorted(pattern.positions, self.second))
        self.target = np.tile(self.target, S)
        self.pattern = pattern

    @staticmethod
    def entries(rest_rows: np.ndarray, levels: np.ndarray, m: int) -> np.ndarray:
        """The distinct (level, row of the rest) pairs of the rows' entries, as ``level · m + row``."""
        return np.unique(levels.astype(np.int64) * m + rest_rows)

    @staticmethod
    def products(keys: np.ndarray, m: int, S: int) -> int:
        """The number of products F Fᵀ takes this way (pairs of entries in a common column), before
        building their index arrays: as large as the dense product's where the terms are crossed."""
        counts = np.bincount(keys // m)
        return int(S * np.sum(counts.astype(np.int64) ** 2))

    def __call__(self, F: np.ndarray | EntryMatrix) -> np.ndarray:
        flat = F.reshape(-1) if self.pattern is None else F.data
        return np.bincount(self.target, weights=flat[self.first] * flat[self.second],
                           minlength=self.m * self.m).reshape(self.m, self.m)
