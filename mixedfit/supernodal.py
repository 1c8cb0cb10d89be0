"""A supernodal sparse Cholesky of the rest, through CHOLMOD as cvxopt ships it (the ``cholmod`` extra).

Where the rest is sparse (``SparseRest``), most of its
dense factorization multiplies zeros: InstEval's 1145×1145 rest is a fifth
nonzero, and a fill-reducing order leaves a fifth of the dense flops.
CHOLMOD's supernodal factorization does those on dense fronts with BLAS-3, so
it keeps LAPACK's speed per flop on the work that is left (InstEval: 5.8 ms
per θ, with the dense factorization 9.5 ms; egsingle's 125×125 rest: 29 µs
with 54).  The objective needs only the factor's diagonal; the results, which
read the factor itself, get the dense factor of the same matrix.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator

import numpy as np
from scipy.linalg import solve_triangular

__all__ = ["cholmod_available", "SupernodalRest", "factor_column_counts", "upper_pattern"]


@functools.lru_cache(maxsize=1)
def _cvxopt() -> tuple | None:
    """cvxopt's modules, imported on first use; None where cvxopt is not installed."""
    try:
        from cvxopt import amd, cholmod, matrix, sparse, spmatrix
    except ImportError:
        return None
    return amd, cholmod, matrix, spmatrix, sparse


def cholmod_available() -> bool:
    """Whether cvxopt, which the ``cholmod`` extra installs, can be imported.

    cvxopt is GPL-3 (and so is CHOLMOD's supernodal module), mixedfit MIT:
    mixedfit runs without it, factoring sparse rests densely, and uses it
    where the user has installed it.
    """
    return _cvxopt() is not None


# Rows of each block that ``upper_pattern`` builds by cvxopt's triplet constructor.
_BLOCK_ROWS = 64


def upper_pattern(rows: np.ndarray, cols: np.ndarray, m: int):
    """cvxopt's (m, m) sparse matrix of ones at (rows, cols), built in blocks of rows.

    cvxopt's triplet constructor checks each entry against those already
    placed in its column, which is quadratic in a column's length: the 3,003
    columns of the crossed 20,000 × 3,000 benchmark's rest, 261 of them
    nearly full, took 0.32 s.  Row blocks of ``_BLOCK_ROWS`` keep every
    block's columns short, and stacking the blocks copies them in linear
    time (0.07 s; InstEval's 1,145 columns 17 → 8 ms).

    Examples
    --------
    >>> A = upper_pattern(np.array([0, 0, 1, 0, 2]), np.array([0, 1, 1, 2, 2]), 3)
    >>> A.size, list(A.CCS[0]), list(A.CCS[1])
    ((3, 3), [0, 1, 3, 5], [0, 0, 1, 0, 2])
    """
    _, _, matrix, spmatrix, sparse = _cvxopt()
    block = rows // _BLOCK_ROWS
    order = np.argsort(block, kind="stable")  # radix sort: linear in the entries
    bounds = np.searchsorted(block[order], np.arange(-(-m // _BLOCK_ROWS) + 1))
    pieces = []
    for k, start in enumerate(range(0, m, _BLOCK_ROWS)):
        at = order[bounds[k]: bounds[k + 1]]
        pieces.append(spmatrix(1.0, matrix(rows[at] - start, tc="i"), matrix(cols[at], tc="i"),
                               (min(_BLOCK_ROWS, m - start), m)))
    return sparse(pieces)


@contextlib.contextmanager
def _supernodal_options() -> Iterator[None]:
    """CHOLMOD's options for a supernodal factor, the caller's own restored after.

    cvxopt keeps them in one module-level dict that its users may set; only a
    supernodal factor gives its diagonal.
    """
    options = _cvxopt()[1].options
    saved = dict(options)
    options.clear()
    options.update(supernodal=2, postorder=True)
    try:
        yield
    finally:
        options.clear()
        options.update(saved)


def _symbolic(A, order):
    """CHOLMOD's supernodal symbolic factor of the pattern A (upper triangle) in this order."""
    with _supernodal_options():
        return _cvxopt()[1].symbolic(A, p=order, uplo="U")


def factor_column_counts(pos: np.ndarray, m: int, order: np.ndarray) -> np.ndarray:
    """The entries of each column of the Cholesky factor, the diagonal's included, by symbolic elimination.

    ``pos`` holds the flat positions, in the (m, m) row-major array, of the
    lower triangle's entries that can be nonzero; ``order`` gives the order
    the columns are eliminated in (column k of the factor is ``order[k]``).
    Eliminating column j puts its entries below the diagonal into the
    column of its first one, its parent in the elimination tree: one pass of
    array operations per column on a dense (m, m) pattern of bytes, an eighth
    of the rest's own dense cross products.  These are the nonzeros of the
    factor of generic values (``tests/test_supernodal.py`` checks them against
    LAPACK's).

    Examples
    --------
    >>> arrow = np.flatnonzero(np.tril(np.eye(4) + np.eye(4)[[0, 0, 0, 0]]))  # column 0 meets every row
    >>> factor_column_counts(arrow, 4, np.arange(4)).tolist(), factor_column_counts(arrow, 4, np.array([1, 2, 3, 0])).tolist()
    ([4, 3, 2, 1], [2, 2, 2, 1])
    """
    where = np.empty(m, np.intp)
    where[order] = np.arange(m)
    a, b = (where[index] for index in np.divmod(pos, m))
    below = np.zeros((m, m), bool)  # below[j, i]: the factor's entry (i, j), i > j, in elimination order
    below[np.minimum(a, b), np.maximum(a, b)] = True
    counts = np.ones(m, np.int64)
    for j in range(m - 1):
        column = below[j, j + 1:]
        first = int(column.argmax())
        if column[first]:
            counts[j] += np.count_nonzero(column)
            parent = below[j + 1 + first, j + 2 + first:]
            np.logical_or(parent, column[first + 1:], out=parent)
    return counts


class SupernodalRest:
    """The rest's nonzero pattern, ordered and analysed once, and its numeric factorization at each θ.

    The random rest's columns are ordered by approximate minimum degree among
    themselves, X's and y's come last in their own order, so that the last
    ``p + 1`` entries of the factor's diagonal are those of ``R_X`` and ``r``,
    as in the dense factor.

    Parameters
    ----------
    pos : ndarray
        Sorted flat positions, in the (m, m) row-major array, of the lower
        triangle's entries that can be nonzero (the diagonal among them).
    m, qr : int
        The rest's size and its random columns.

    Examples
    --------
    >>> import numpy as np
    >>> G = np.array([[4.0, 0.0, 2.0], [0.0, 9.0, 3.0], [2.0, 3.0, 6.0]])
    >>> pos = np.flatnonzero(np.tril(G))
    >>> d = SupernodalRest(pos, 3, 2).diagonal(G.reshape(-1)[pos])
    >>> bool(np.isclose(np.prod(d) ** 2, np.linalg.det(G))), bool(np.isclose(d[-1], np.linalg.cholesky(G)[-1, -1]))
    (True, True)
    """

    def __init__(self, pos: np.ndarray, m: int, qr: int):
        self.pos, self.m, self.qr = pos, m, qr
        self.generation = 0  # numeric factorizations so far: CHOLMOD's factor holds the last one's
        self._ordering: tuple | None = None
        self._factor = None  # CHOLMOD's factor: symbolic, then the last numeric factorization's
        self._values = None  # cvxopt's matrix of the values, rewritten at each θ (_held_values)

    def __getstate__(self) -> dict:
        # CHOLMOD's factor does not pickle; it is analysed again where it is used.
        return {"pos": self.pos, "m": self.m, "qr": self.qr, "generation": 0, "_ordering": None, "_factor": None,
                "_values": None}

    def _ordered(self) -> tuple:
        """The pattern as cvxopt's (upper triangle) sparse matrix, and the order CHOLMOD factors it in."""
        if self._ordering is None:
            amd, _, matrix, _, _ = _cvxopt()
            # Row-major order of the lower triangle is column-major order of
            # the upper: the positions are the order of the matrix's values.
            rows, cols = np.divmod(self.pos.astype(np.int64), self.m)[::-1]
            A = upper_pattern(rows, cols, self.m)
            order = np.concatenate([np.asarray(amd.order(A[: self.qr, : self.qr], "U")).ravel(),
                                    np.arange(self.qr, self.m)])
            self._ordering = A, matrix(order.astype(np.int64))
        return self._ordering

    def _analysed(self) -> tuple:
        """``_ordered``'s matrix, and CHOLMOD's symbolic factor of it in that order."""
        A, order = self._ordered()
        if self._factor is None:
            self._factor = _symbolic(A, order)
        return A, self._factor

    def _held_values(self) -> np.ndarray:
        """A writable view of the cvxopt matrix that carries the values into CHOLMOD's, made once:
        a new one converted from numpy at each θ took the hand-over of InstEval's 145,762 values
        from 65–83 µs to 141–191."""
        if self._values is None:
            self._values = _cvxopt()[2](np.zeros(self.pos.size))
        return np.asarray(memoryview(self._values))

    def dense_share(self) -> float:
        """The flops of the factorization in CHOLMOD's order as a share of a dense one's, from the pattern alone.

        Column j of the factor with c_j entries costs about c_j² flops, a dense
        column (m − j)².  The counts come from the pattern and the order
        (``factor_column_counts``), before any numeric factorization: where
        the share sends the rest to LAPACK, CHOLMOD factors nothing.
        """
        _, order = self._ordered()
        counts = factor_column_counts(self.pos, self.m, np.asarray(order).ravel())
        dense = np.arange(self.m, 0, -1, dtype=float)
        return float(counts @ counts / (dense @ dense))

    def diagonal(self, values: np.ndarray) -> np.ndarray | None:
        """The diagonal of the Cholesky factor of the matrix with these values at ``pos``; None if not positive definite.

        The random rest's entries come in the factorization's order, then X's and y's.
        """
        A, F = self._analysed()
        cholmod = _cvxopt()[1]
        np.copyto(self._held_values(), values.reshape(-1, 1))
        A.V = self._values
        self.generation += 1
        try:
            with _supernodal_options():  # numeric reads them too (its lower bound on the diagonal)
                cholmod.numeric(A, F)
        except ArithmeticError:
            return None
        return np.array(cholmod.diag(F)).reshape(-1)

    def _solved(self, generation: int, k: int, system: int) -> np.ndarray | None:
        """CHOLMOD's solve of ``system`` with the last k columns of I as right-hand sides, by the
        factor from numeric factorization ``generation``; None if CHOLMOD's factor holds a later one."""
        if generation != self.generation or self._factor is None:
            return None
        _, cholmod, matrix, _, _ = _cvxopt()
        E = np.zeros((self.m, k))
        E[-k:] = np.eye(k)
        Y = matrix(E)
        cholmod.solve(self._factor, Y, sys=system)
        return np.array(Y)

    def trailing(self, generation: int, k: int) -> np.ndarray | None:
        """The last k rows and columns of the factor from numeric factorization ``generation``; None if CHOLMOD's factor holds a later one.

        Solving ``L Y = [0; I]`` gives the inverse of that block in Y's last
        k rows (L is lower triangular), at the cost of one sparse solve with k
        right-hand sides instead of a dense factorization of the whole rest.
        """
        Y = self._solved(generation, k, 4)  # sys=4: L Y = E, in the factorization's order (X, y last)
        return None if Y is None else solve_triangular(Y[-k:], np.eye(k), lower=True)

    def leading_solution(self, generation: int) -> np.ndarray | None:
        """``H₁₁⁻¹ h`` for the matrix ``H = [H₁₁ h; hᵀ c]`` of numeric factorization ``generation``; None if not current.

        One solve of ``H x = e_m`` (sys=0, the permutation included) gives
        ``x = [−H₁₁⁻¹h; 1] / (c − hᵀH₁₁⁻¹h)``.  For the rest, whose last column is
        y's, that is the random effects' and β's solution ``[v; β̂]``.
        """
        x = self._solved(generation, 1, 0)
        return None if x is None else -x[:-1, 0] / x[-1, 0]
