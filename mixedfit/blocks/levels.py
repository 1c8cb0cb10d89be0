"""Per-level algebra on stacks of tiny S×S blocks, and the first term's elimination.

The first engine term's ``ZᵀWZ`` is block diagonal, one S×S block a level, so
its Cholesky factor and the matrix M its elimination leaves in the Schur
complement are ``ℓ`` independent tiny problems, worked out for all levels at
once.  Symmetric per-level blocks are kept in *packed planes* (``pair_index``).
"""

from __future__ import annotations

import functools

import numpy as np

from ..theta import lower_template

try:  # numpy.linalg's batched kernels without its wrappers' checks: the same LAPACK calls
    from numpy.linalg import _umath_linalg

    def batched_cholesky(a: np.ndarray) -> np.ndarray:
        """Lower Cholesky factors of a stack of positive definite matrices (``numpy.linalg.cholesky``)."""
        return _umath_linalg.cholesky_lo(a, signature="d->d")

    def batched_inverse(a: np.ndarray) -> np.ndarray:
        """Inverses of a stack of nonsingular matrices (``numpy.linalg.inv``)."""
        return _umath_linalg.inv(a, signature="d->d")
except (ImportError, AttributeError):  # a numpy without that private module: its public functions
    batched_cholesky, batched_inverse = np.linalg.cholesky, np.linalg.inv

__all__ = ["batched_cholesky", "batched_inverse", "pair_index", "level_blocks_product", "batched_lower_inverse",
           "batched_cholesky_solve", "to_planes", "planes_times_blocks", "symmetric_from_lower", "level_blocks_into",
           "level_diagonal", "FirstTerm", "lower_triangle"]


_PLANES_MIN_LEVELS = 200  # fewest first-term levels for _packed_inverse's planes (S ≥ 4)
_CLOSED_3X3_MIN_LEVELS = 12  # fewest first-term levels for _packed_inverse's closed form (S = 3)
# Fewest levels for FirstTerm.inverses' closed forms (S = 2, 3): they cost 16-20 µs whatever
# the levels, batched LAPACK inverses 6 µs on 10 levels, as much on 40 (S = 3) to 60 (S = 2).
_CLOSED_INVERSE_MIN_LEVELS = 48


def _right_multiply(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A[..., l, :, :] @ B[l]`` for stacks of tiny blocks: A (..., ℓ, R, S), B (ℓ, S, T).

    Written as S broadcast products: for S ≤ 3 this is several times faster
    than ``matmul``/``einsum`` on stacks of thousands of tiny matrices.
    """
    out = A[..., 0, None] * B[..., 0, None, :]
    for s in range(1, B.shape[-2]):
        out = out + A[..., s, None] * B[..., s, None, :]
    return out


def to_planes(q0: int, S: int) -> np.ndarray:
    """Column order taking a term's level-major columns (l, s) to plane-major (s, l).

    In plane layout each of the S effects of all ℓ levels is one contiguous run,
    so per-level S×S products become S² elementwise products of long vectors
    instead of strided ones (about ten times faster on thousands of levels).
    """
    return np.arange(q0).reshape(q0 // S, S).T.ravel()


def planes_times_blocks(F: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """``F[k, :, l] @ M_l`` for rows in plane layout F (k, S, ℓ) and blocks M (S, T, ℓ), one plane per (s, t).

    einsum sums the S products in the same order as a loop over s would, and
    without its temporaries: 400 rows, S = 2 on 300 levels took 1.8 ms by the
    loop and 0.23 ms this way.  With S = 1 it is one broadcast product.
    """
    if blocks.shape[0] == 1:
        return F * blocks[0]
    return np.einsum("ksl,stl->ktl", F, blocks)


def level_blocks_product(C: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``C · blockdiag(B_1, …, B_ℓ)`` for C (k, ℓ·S) with level-major columns and B (ℓ, S, T).

    Examples
    --------
    >>> C = np.arange(8.0).reshape(2, 4)  # two levels, S = 2
    >>> level_blocks_product(C, np.stack([np.eye(2), 2 * np.eye(2)]))
    array([[ 0.,  1.,  4.,  6.],
           [ 4.,  5., 12., 14.]])
    """
    ell, S, T = B.shape
    k = C.shape[0]
    return np.matmul(C.reshape(k, ell, S).transpose(1, 0, 2), B).transpose(1, 0, 2).reshape(k, ell * T)


def _congruence(A: np.ndarray, T: np.ndarray) -> np.ndarray:
    """``Tᵀ A_l T`` for every block of a stack (ℓ, S, S)."""
    Tb = np.broadcast_to(T, A.shape)
    return _right_multiply(np.swapaxes(Tb, 1, 2), _right_multiply(A, Tb))


def batched_cholesky_solve(L: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(L_l L_lᵀ)⁻¹ y_l`` for a stack of lower-triangular blocks L (ℓ, S, S) and rows y (ℓ, S).

    Forward and back substitution, each step one array operation over the
    levels: numpy's batched ``solve`` calls LAPACK once a block (50,000 levels
    of S = 1: 9.3 ms against 0.07; 3,000 of S = 4: 1.8 against 0.2).  With
    S = 1 the same bits as that solve, ``y / L / L``.

    Examples
    --------
    >>> L = np.array([[[2.0, 0.0], [1.0, 3.0]]])
    >>> x = batched_cholesky_solve(L, np.array([[4.0, 5.0]]))
    >>> bool(np.allclose(L[0] @ L[0].T @ x[0], [4.0, 5.0]))
    True
    """
    S = L.shape[-1]
    x = np.array(y, dtype=float)
    for i in range(S):  # L z = y
        if i:
            x[:, i] -= np.einsum("lk,lk->l", L[:, i, :i], x[:, :i])
        x[:, i] /= L[:, i, i]
    for i in reversed(range(S)):  # Lᵀ x = z
        if i < S - 1:
            x[:, i] -= np.einsum("lk,lk->l", L[:, i + 1:, i], x[:, i + 1:])
        x[:, i] /= L[:, i, i]
    return x


def batched_lower_inverse(L: np.ndarray) -> np.ndarray:
    """Inverses of a stack of lower-triangular blocks; closed form for S ≤ 2."""
    S = L.shape[-1]
    if S == 1:
        return 1.0 / L
    if S == 2:
        inv = np.zeros_like(L)
        inv[:, 0, 0] = 1.0 / L[:, 0, 0]
        inv[:, 1, 1] = 1.0 / L[:, 1, 1]
        inv[:, 1, 0] = -L[:, 1, 0] * inv[:, 0, 0] * inv[:, 1, 1]
        return inv
    return np.linalg.solve(L, np.broadcast_to(np.eye(S), L.shape))


def _packed_congruence(T: np.ndarray) -> np.ndarray:
    """The map taking a symmetric X in packed planes to ``TᵀXT`` in packed planes (see ``pair_index``).

    Entry (i, j) of TᵀXT is ``Σ_(k ≥ l) X_kl (T_ki T_lj + T_li T_kj)``, the second
    product only where k ≠ l, since X_kl stands for X_lk as well.

    Examples
    --------
    >>> T = np.array([[1.0, 0.0], [0.5, 2.0]])
    >>> X = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> packed = X[np.tril_indices(2)]
    >>> bool(np.allclose(_packed_congruence(T) @ packed, (T.T @ X @ T)[np.tril_indices(2)]))
    True
    """
    ki, lj, li, kj, off = _congruence_indices(T.shape[0])
    flat = T.reshape(-1)
    return flat[ki] * flat[lj] + off * flat[li] * flat[kj]


@functools.lru_cache(maxsize=None)
def _congruence_indices(size: int) -> tuple[np.ndarray, ...]:
    """Flat positions in T of the four factors of ``_packed_congruence``, and where k ≠ l."""
    i, j = np.tril_indices(size)
    k, l = i[None, :], j[None, :]
    i, j = i[:, None], j[:, None]
    return k * size + i, l * size + j, l * size + i, k * size + j, (k != l).astype(float)


def _first_block_2x2(A: np.ndarray, t00: float, t10: float, t11: float) -> tuple[float, np.ndarray]:
    """``log|L00|²`` and M of ``FirstTerm.eliminate`` for S = 2 (random slopes), in closed form.

    ``A`` holds the per-level ``zᵀWz`` in packed planes, then each level's
    determinant and a row of ones (``_extended_2x2``, (5, ℓ)).  For
    B = TᵀA_lT + I, ``det B = det(T)² det A_l + tr(TᵀA_lT) + 1``, and
    M = T B⁻¹ Tᵀ = (det(T)² adj A_l + TTᵀ) / det B: both are linear in
    A_l's packed entries, its determinant and 1, so one 4×5 map of Python
    floats and one matrix product give every level's det B and M's packed
    entries times det B (this runs on every evaluation of models with few
    levels: 9 → 5 µs on sleepstudy's 18).  B ≥ I, so det B ≥ 1; det A_l,
    formed once from the data, spares ``b00 b11 − b10²`` its cancellation
    where T is large.  T's entries come as Python floats: the same products,
    without numpy's scalar overhead.
    """
    P, d0, d1, d2 = (t00 * t11) ** 2, t00 * t00, t00 * t10, t10 * t10 + t11 * t11  # det(T)², TTᵀ packed
    # np.dot: the same BLAS product as @, without the ufunc machinery (1.4 against 2.8 µs here)
    R = np.dot(np.array([d0, 2.0 * d1, d2, P, 1.0,
                         0.0, 0.0, P, 0.0, d0,
                         0.0, -P, 0.0, 0.0, d1,
                         P, 0.0, 0.0, 0.0, d2]).reshape(4, 5), A)
    det = R[0]
    return float(np.add.reduce(np.log(det))), R[1:] / det  # add.reduce: np.sum's wrapper doubled its cost on 18 levels


def _extended_2x2(packed: np.ndarray) -> np.ndarray:
    """S = 2 blocks in packed planes (3, ℓ), with each level's determinant and a row of ones: ``_first_block_2x2``'s A."""
    return np.vstack([packed, packed[0] * packed[2] - packed[1] * packed[1], np.ones(packed.shape[1])])


# The adjugate of a symmetric 3×3 block in packed planes (b00, b10, b11, b20, b21, b22):
# entry k is b[_ADJ3[0][k]] b[_ADJ3[1][k]] − b[_ADJ3[2][k]] b[_ADJ3[3][k]], and the
# determinant is b00 adj00 + b10 adj10 + b20 adj20.
_ADJ3 = (np.array([2, 3, 0, 1, 1, 0]), np.array([5, 4, 5, 4, 3, 2]),
         np.array([4, 1, 3, 2, 0, 1]), np.array([4, 5, 3, 3, 4, 1]))
_DET3 = np.array([0, 1, 3])


def _inverse_3x3(B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The adjugates and determinants of symmetric 3×3 blocks in packed planes (6, ℓ): B_l⁻¹ = adjugate / det."""
    adjugate = B[_ADJ3[0]] * B[_ADJ3[1]] - B[_ADJ3[2]] * B[_ADJ3[3]]
    return adjugate, np.add.reduce(B[_DET3] * adjugate[_DET3], axis=0)


def _packed_inverse(A: np.ndarray, T: np.ndarray) -> tuple[float, np.ndarray]:
    """``Σ log|B_l|`` and the B_l⁻¹ in packed planes, B_l = TᵀA_lT + I, for S ≥ 3 (A in packed planes).

    B comes in packed planes from ``_packed_congruence``.  For S = 3, B⁻¹ is
    its adjugate over its determinant: a dozen operations on ℓ-vectors.  The
    batched LAPACK calls (a Cholesky factor, its inverse and two stacked
    products) cost per block, and the planes below have S³ operations: CPU
    times of ``FirstTerm.eliminate``, 12 levels and up (``_CLOSED_3X3_MIN_LEVELS``)
    where this becomes the faster: 26 levels (Oxboys) 48 µs batched and 35 µs
    this way; 200, 156 µs on planes and 43 µs; 10 000, 3.2 and 2.1 ms.

    For larger S, the Cholesky factor of each B_l, its inverse and
    B⁻¹ = L⁻ᵀL⁻¹ are worked out entry by entry (``_planes_inverse``), each
    entry one operation on ℓ-vectors for all levels at once.  Batched LAPACK
    routines on the stack of S×S blocks cost per block: for S = 3 on 10 000
    levels they took 6.8 ms, this 0.4 ms.  The operations' own overhead,
    growing as S³, makes the batched routines faster below about 150–200
    levels, for S from 3 to 16 (``_PLANES_MIN_LEVELS``).  B ≥ I, so no
    determinant or pivot can vanish, as with ``_first_block_2x2``.
    """
    S = T.shape[0]
    B = _packed_congruence(T) @ A + _unit_planes(S)
    if S == 3:
        adjugate, det = _inverse_3x3(B)
        return float(np.add.reduce(np.log(det))), adjugate / det
    return _planes_inverse(B, S)


def _planes_inverse(B: np.ndarray, S: int) -> tuple[float, np.ndarray]:
    """``Σ log|B_l|`` and the B_l⁻¹, for symmetric S×S blocks in packed planes (S(S + 1)/2, ℓ), each B_l ≥ I.

    B ≥ I, so no pivot of the Cholesky factor can vanish.
    """
    at = pair_index(S)
    L = np.empty_like(B)
    for j in range(S):
        L[at[j, j]] = np.sqrt(B[at[j, j]] - sum(L[at[j, k]] ** 2 for k in range(j)))
        for i in range(j + 1, S):
            L[at[i, j]] = (B[at[i, j]] - sum(L[at[i, k]] * L[at[j, k]] for k in range(j))) / L[at[j, j]]
    inv = np.empty_like(B)  # L⁻¹, lower triangular, by forward substitution
    for j in range(S):
        inv[at[j, j]] = 1.0 / L[at[j, j]]
        for i in range(j + 1, S):
            inv[at[i, j]] = -sum(L[at[i, k]] * inv[at[k, j]] for k in range(j, i)) / L[at[i, i]]
    s, t = lower_triangle(S)
    Binv = np.stack([sum(inv[at[i, a]] * inv[at[i, b]] for i in range(a, S)) for a, b in zip(s, t)])
    diagonal = np.prod(L[at[np.arange(S), np.arange(S)]], axis=0)
    return 2.0 * float(np.add.reduce(np.log(diagonal))), Binv


@functools.lru_cache(maxsize=None)
def _unit_planes(size: int) -> np.ndarray:
    """The identity in packed planes, one column to broadcast over the levels."""
    out = np.zeros((size * (size + 1) // 2, 1))
    out[pair_index(size).diagonal()] = 1.0
    out.flags.writeable = False  # cached: shared by every caller
    return out


def symmetric_from_lower(blocks: np.ndarray) -> np.ndarray:
    """A new array of square blocks (the last two axes), each symmetric from its lower triangle.

    One matrix is taken from a cached mask, entry by entry (``np.tril`` builds
    its mask on every call: a 3×3 took 10 µs that way, 1.7 µs this; 1128×1128
    7.9 and 2.2 ms); a stack is copied and its upper triangles overwritten
    (26 3×3 blocks 11 → 2.9 µs, 3,000 4×4 158 → 38 µs, where the mask's
    strided selection took 125).

    Examples
    --------
    >>> symmetric_from_lower(np.array([[1.0, 9.0], [2.0, 3.0]]))
    array([[1., 2.],
           [2., 3.]])
    """
    size = blocks.shape[-1]
    if blocks.ndim == 2:
        return np.where(_lower_mask(size), blocks, blocks.T)
    out = blocks.copy()
    cols, rows = lower_triangle(size)  # each (row, column) above the diagonal takes (column, row)
    out[..., rows, cols] = out[..., cols, rows]
    return out


def level_blocks_into(target: np.ndarray, blocks: np.ndarray) -> None:
    """Write a term's per-level (ℓ, S, S) blocks on the diagonal of ``target`` (ℓS × ℓS, zero between levels)."""
    ell, S, _ = blocks.shape
    level_diagonal(target, 0, S, ell)[...] = blocks


def level_diagonal(M: np.ndarray, start: int, S: int, ell: int) -> np.ndarray:
    """The ℓ diagonal S×S blocks of ``M`` from ``(start, start)`` on, as an (ℓ, S, S) view: writing it writes M.

    Examples
    --------
    >>> M = np.arange(16.0).reshape(4, 4)
    >>> level_diagonal(M, 0, 2, 2)[1].tolist()
    [[10.0, 11.0], [14.0, 15.0]]
    """
    rows, cols = M.strides
    return np.lib.stride_tricks.as_strided(M[start:, start:], shape=(ell, S, S),
                                           strides=(S * (rows + cols), rows, cols))


@functools.lru_cache(maxsize=None)
def _lower_mask(size: int) -> np.ndarray:
    """True on and below the diagonal of a size×size matrix (read-only: cached)."""
    mask = np.tri(size, dtype=bool)
    mask.flags.writeable = False
    return mask


@functools.lru_cache(maxsize=None)
def lower_triangle(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.tril_indices(size)``, kept (read-only): per evaluation it cost a sixth of a small model's."""
    rows, cols = np.tril_indices(size)
    rows.flags.writeable = cols.flags.writeable = False  # cached: shared by every caller
    return rows, cols


@functools.lru_cache(maxsize=None)
def pair_index(size: int) -> np.ndarray:
    """Row of each (s, t) in *packed planes*: ``packed[pair_index(S)[s, t], l] = M_l[s, t]`` for symmetric M_l.

    The rows are the lower triangle (s ≥ t) row by row; both (s, t) and (t, s)
    map to the same row, so symmetric per-level blocks are stored and used once.

    Examples
    --------
    >>> pair_index(3)
    array([[0, 1, 3],
           [1, 2, 4],
           [3, 4, 5]])
    """
    s, t = np.tril_indices(size)
    out = np.empty((size, size), dtype=np.intp)
    out[s, t] = out[t, s] = np.arange(s.size)
    out.flags.writeable = False  # cached: shared by every caller
    return out


class FirstTerm:
    """The first engine term's per-level ``zᵀWz`` blocks, and their elimination at a template T.

    Parameters
    ----------
    crossprods : ndarray (ℓ, S, S)
        The per-level blocks (``CrossBlocks.A00``).

    Attributes
    ----------
    size, nlevels : int
        S and ℓ.
    packed : ndarray (S(S + 1)/2, ℓ)
        The blocks in packed planes (see ``pair_index``).
    """

    def __init__(self, crossprods: np.ndarray):
        self.crossprods = crossprods
        self.nlevels, self.size = crossprods.shape[0], crossprods.shape[1]
        s, t = lower_triangle(self.size)
        self.packed = np.ascontiguousarray(crossprods[:, s, t].T)
        self._extended = _extended_2x2(self.packed) if self.size == 2 else None
        self._identity = np.eye(self.size)
        self._kept: tuple[bytes, tuple[float, np.ndarray]] | None = None

    def factor(self, T: np.ndarray) -> np.ndarray:
        """L00: the batched Cholesky factors of TᵀA_lT + I, shape (ℓ, S, S)."""
        if self.size == 1:
            return np.sqrt(T[0, 0] ** 2 * self.crossprods + 1.0)
        B = _congruence(self.crossprods, T)
        for s in range(self.size):
            B[:, s, s] += 1.0
        return np.linalg.cholesky(B)

    def _blocks(self, T: np.ndarray) -> np.ndarray:
        """B_l = TᵀA_lT + I for every level, shape (ℓ, S, S), by stacked matrix products."""
        return T.T @ self.crossprods @ T + self._identity

    def inverses(self, T: np.ndarray) -> np.ndarray:
        """B_l⁻¹ = (TᵀA_lT + I)⁻¹ for every level, shape (ℓ, S, S).

        Those ``eliminate`` formed at this T, where it was the last T
        eliminated on packed planes (the gradient's, at the θ just factored);
        else for S = 2 in closed form, for larger S on packed planes
        (``_packed_inverse``), where there are enough levels for these to be
        the faster, and by batched LAPACK inverses on fewer.  B ≥ I, so each
        determinant is at least 1.

        Examples
        --------
        >>> first = FirstTerm(np.array([[[2.0, 1.0], [1.0, 3.0]]]))
        >>> T = np.array([[1.0, 0.0], [0.5, 2.0]])
        >>> B = T.T @ first.crossprods[0] @ T + np.eye(2)
        >>> bool(np.allclose(first.inverses(T)[0] @ B, np.eye(2)))
        True
        """
        S = self.size
        if S == 1:
            return (1.0 / (T[0, 0] ** 2 * self.crossprods + 1.0))
        kept = self._kept
        if kept is not None and kept[0] == T.tobytes():
            inverse = kept[1][1]
        elif self.nlevels < (_CLOSED_INVERSE_MIN_LEVELS if S <= 3 else _PLANES_MIN_LEVELS):
            return batched_inverse(self._blocks(T))
        elif S == 2:
            B = _packed_congruence(T) @ self.packed + _unit_planes(S)
            inverse = np.stack([B[2], -B[1], B[0]]) / (B[0] * B[2] - B[1] * B[1])
        else:  # batched LAPACK inverses took 1.1 ms on 3,000 4×4 blocks
            inverse = _packed_inverse(self.packed, T)[1]
        return inverse[pair_index(S)].transpose(2, 0, 1)  # not np.moveaxis: its checks cost more than the gather

    def _keep_inverse(self, T: np.ndarray) -> tuple[float, np.ndarray]:
        """``_packed_inverse`` of the blocks at T, kept for ``inverses`` at the same T.

        The gradient at a θ follows its objective, and forming the B_l⁻¹ again
        took a sixth of the gradient on 3,000 4×4 blocks.  Only the last T's
        are kept: a new tuple replaces the old whole, so a reader never sees
        one T's key with another's inverses.
        """
        out = _packed_inverse(self.packed, T)
        out[1].flags.writeable = False  # kept: callers get copies (``inverses``) or products
        self._kept = T.tobytes(), out
        return out

    def eliminate_at(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """``eliminate`` at the template of this term's θ (its entries column by column, as
        ``mixedfit.theta.lower_template`` places them), without forming it for S = 2."""
        if self.size == 2:
            return _first_block_2x2(self._extended, *theta.tolist())
        return self.eliminate(lower_template(theta, self.size))

    def eliminate(self, T: np.ndarray) -> tuple[float, np.ndarray]:
        """log|L00|² and M = T (TᵀA_lT + I)⁻¹ Tᵀ per level, in packed planes (see ``pair_index``)."""
        if self.size == 1:
            B = T[0, 0] ** 2 * self.crossprods + 1.0
            return float(np.add.reduce(np.log(B), axis=None)), (T[0, 0] ** 2 / B).reshape(1, -1)
        if self.size == 2:
            (t00, _), (t10, t11) = T.tolist()
            return _first_block_2x2(self._extended, t00, t10, t11)
        if self.nlevels >= (_CLOSED_3X3_MIN_LEVELS if self.size == 3 else _PLANES_MIN_LEVELS):
            logdet, inverse = self._keep_inverse(T)
            return logdet, _packed_congruence(T.T) @ inverse
        # Fewer levels: a few batched calls on the stack of blocks, whose count is
        # the cost (S = 3 on 26 levels: 139 µs with broadcast products and a
        # batched solve for L⁻¹, 56 µs this way).
        # numpy.linalg's own batched kernels, without its wrappers' checks and
        # error-state contexts (Machines' 6 levels: 42 of the 67 µs here): the
        # same LAPACK calls, so the same numbers.  B ≥ I, so the factor exists.
        L00 = batched_cholesky(self._blocks(T))
        # M = (T L⁻ᵀ)(T L⁻ᵀ)ᵀ, symmetric to rounding by construction.
        TL = T @ batched_inverse(L00).transpose(0, 2, 1)
        M = TL @ TL.transpose(0, 2, 1)
        s, t = lower_triangle(self.size)
        return 2.0 * float(np.add.reduce(np.log(L00.diagonal(axis1=1, axis2=2)), axis=None)), M[:, s, t].T
