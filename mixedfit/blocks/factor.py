"""The blocked Cholesky factor at one θ, and the dense factorizations of the rest.

The rest's dense factor comes from LAPACK (``DenseCholesky``), or, where its
first term stays block diagonal through the first term's elimination
(nesting), level by level for that term and by LAPACK after it
(``NestedLeadCholesky``).
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas, lapack
from threadpoolctl import threadpool_info, threadpool_limits

from ..supernodal import SupernodalRest
from .levels import batched_lower_inverse, level_blocks_product, symmetric_from_lower

__all__ = ["Factor", "last_row_solution", "dense_cholesky", "DenseCholesky", "NestedLeadCholesky", "rest_factorization"]


def last_row_solution(L: np.ndarray) -> np.ndarray:
    """``v`` with ``L_topᵀ v = l`` for a lower triangular factor ``[L_top 0; lᵀ r]``.

    LAPACK's ``dtrtrs`` without scipy's wrapper (21 → 1.4 µs on 4 columns).
    Where L is C-ordered and r ≠ 0, on the whole of Lᵀ, which is then an
    upper triangular Fortran array as it stands, against ``(0, …, 0, −r)``: the
    last unknown is −1 and the others v.  ``L_topᵀ`` alone is a strided view
    that the wrapper copies first, a page-faulting copy of the whole factor
    (a 3,003-column rest: 184 ms in a fit, against 2 ms for the solve).
    """
    r = L[-1, -1]
    if L.flags.c_contiguous and r != 0.0:
        rhs = np.zeros(L.shape[0])
        rhs[-1] = -r
        v, info = lapack.dtrtrs(L.T, rhs, lower=0, trans=0, overwrite_b=1)
        v = v[:-1]
    else:
        v, info = lapack.dtrtrs(L[:-1, :-1].T, L[-1, :-1], lower=0, trans=0)
    if info != 0:
        raise np.linalg.LinAlgError(f"singular triangular factor (dtrtrs info = {info})")
    return v


class Factor:
    """The blocked Cholesky factor at one θ.

    ``L00`` (ℓ, S, S) is the first term's block-diagonal factor; ``Lrr`` is the
    dense factor of the rest (random rest, then X, then y).  The objective needs
    only ``log|L00|²`` (``logdet0``) and the diagonal of the rest's factor
    (``diagonal``: the random rest's entries in the factorization's order, then
    X's and y's), so ``L00``, and ``Lrr`` where the rest was factored sparse
    (``rest`` is then a callable that forms it), are formed on first use.
    """

    def __init__(self, logdet0: float, diagonal: np.ndarray, templates: list[np.ndarray],
                 first: Callable[[np.ndarray], np.ndarray], rest: np.ndarray | Callable[[], np.ndarray],
                 cholmod: tuple[SupernodalRest, int] | None = None):
        self.logdet0 = logdet0
        self.diagonal = diagonal
        self.templates = templates
        self._first = first
        self._rest = rest
        self._cholmod = cholmod  # CHOLMOD's factor and its generation, where it factored the rest
        self._L00: np.ndarray | None = None

    @property
    def L00(self) -> np.ndarray:
        if self._L00 is None:
            self._L00 = self._first(self.templates[0])
        return self._L00

    @property
    def Lrr(self) -> np.ndarray:
        if callable(self._rest):
            self._rest = self._rest()
        return self._rest

    def trailing(self, k: int) -> np.ndarray:
        """The last k rows and columns of the rest's factor (X's and y's for k = p + 1).

        Where the rest was factored sparse and its factor is still CHOLMOD's
        current one, read from that (``SupernodalRest.trailing``), without
        forming ``Lrr``.
        """
        block = self._cholmod[0].trailing(self._cholmod[1], k) if self._cholmod is not None else None
        return self.Lrr[-k:, -k:] if block is None else block

    def leading_solution(self) -> np.ndarray:
        """``v`` with ``L_topᵀ v = l`` for the rest's factor ``[L_top 0; lᵀ r]``: ``[v_random; β̂]``.

        From CHOLMOD's factor by one solve while it is this θ's
        (``SupernodalRest.leading_solution``), else from ``Lrr``.
        """
        v = self._cholmod[0].leading_solution(self._cholmod[1]) if self._cholmod is not None else None
        return last_row_solution(self.Lrr) if v is None else v


def dense_cholesky(G: np.ndarray, upper_zero: bool = False) -> np.ndarray | None:
    """The lower Cholesky factor of G from its lower triangle (zeros above); None if not positive definite.

    ``upper_zero`` says G's strict upper triangle holds zeros already, so
    LAPACK need not clear it (half a millisecond of a 1145×1145 factorization).
    A large G is factored on one thread where the BLAS is one known to crash
    there (``_unsafe_threaded_potrf``).
    """
    if _unsafe_threaded_potrf(G.shape[0]):
        with _single_threaded():
            return _potrf(G, upper_zero)
    return _potrf(G, upper_zero)  # no context entered: this runs at every evaluation of the smallest models


def _potrf(G: np.ndarray, upper_zero: bool) -> np.ndarray | None:
    """``dense_cholesky``'s LAPACK call."""
    # G's lower triangle is the upper triangle of the Fortran-ordered Gᵀ:
    # factoring that view spares LAPACK's wrapper a transposing copy (a
    # third of the time of a 1145×1145 factorization).
    U, info = lapack.dpotrf(G.T, lower=0, clean=0 if upper_zero else 1, overwrite_a=1)
    return U.T if info == 0 else None


# OpenBLAS releases whose threaded dpotrf crashes on large matrices: 0.3.30
# (scipy's wheels) was reported to segfault factoring the 16,000-column rest
# of (1|g) + (1|h) on 400,000 rows (not reproduced on a Haswell core with 1,
# 2 or 16 threads), and 0.3.31 reverted a GEMM partitioning change of 0.3.30
# that "could lead to race conditions".  Such matrices are factored
# single-threaded from _UNSAFE_POTRF_COLUMNS on, half the reported size.
_UNSAFE_OPENBLAS = ("0.3.30",)


_UNSAFE_POTRF_COLUMNS = 8_000


def _unsafe_threaded_potrf(n: int) -> bool:
    """Whether factoring n columns on several threads risks a crash of the loaded BLAS."""
    return n >= _UNSAFE_POTRF_COLUMNS and _unsafe_blas_loaded()


@functools.lru_cache(maxsize=1)
def _unsafe_blas_loaded() -> bool:
    """Whether a BLAS library of ``_UNSAFE_OPENBLAS`` is loaded (scipy's LAPACK among them)."""
    return any(
        info.get("internal_api") == "openblas" and str(info.get("version", "")).startswith(_UNSAFE_OPENBLAS)
        for info in threadpool_info()
    )


def _single_threaded():
    """Every loaded BLAS on one thread, within the context."""
    return threadpool_limits(limits=1, user_api="blas")


_NESTED_MIN_COLUMNS = 256  # fewest columns of a block-diagonal lead of the rest worth eliminating by levels


def _stays_block_diagonal(R0: sp.csr_matrix, q: int, S: int) -> bool:
    """Whether the rest's first q columns (one term, S×S level blocks) stay block diagonal through the first term's elimination.

    The term's own cross products lie in its level blocks; the elimination
    adds ``R0 M R0ᵀ``, with entries where two rows of R0 share a column.  So
    the block stays block diagonal exactly when each first-term level (column
    of R0) meets one level of this term (nesting): one pass over R0's entries,
    not the product itself (0.29 s on the crossed 5e5 benchmark).
    """
    lead = R0[:q].tocsc()
    levels = lead.indices // S
    column = np.repeat(np.arange(lead.shape[1]), np.diff(lead.indptr))
    return bool(np.all(levels == levels[lead.indptr[column]]))


class DenseCholesky:
    """The rest factored whole by LAPACK (``dense_cholesky``)."""

    def factor(self, G: np.ndarray, upper_zero: bool = False) -> np.ndarray | None:
        """The dense factor of the rest G (lower triangle current); None if not positive definite."""
        return dense_cholesky(G, upper_zero=upper_zero)


class NestedLeadCholesky:
    """The rest factored level by level in its first term (its *lead*), by LAPACK after it.

    Attributes
    ----------
    lead : int
        The lead's columns (its levels times S).
    size : int
        The lead's S.
    """

    def __init__(self, lead: int, size: int):
        self.lead, self.size = lead, size

    def factor(self, G: np.ndarray, upper_zero: bool = False) -> np.ndarray | None:
        """The Cholesky factor of G (lower triangle current, upper not) where the rest's first term stays block diagonal.

        When the first term is nested in the rest's first term (classes in
        schools, ``(1|a/b/c)``), eliminating it leaves that term's own block
        with no entries between levels: its columns are eliminated level by
        level and only the block after them is factored densely (1000 classes
        with 40 fixed effects: 9.6 → 1 ms).  Works in place on G; None if G is
        not positive definite.
        """
        q1, S = self.lead, self.size
        ell = q1 // S
        blocks = G[:q1, :q1].reshape(ell, S, ell, S)[np.arange(ell), :, np.arange(ell), :]  # (ℓ, S, S)
        if S == 1 and not np.all(blocks > 0):
            return None
        try:
            L1 = np.sqrt(blocks) if S == 1 else np.linalg.cholesky(symmetric_from_lower(blocks))
        except np.linalg.LinAlgError:
            return None
        C = level_blocks_product(G[q1:, :q1], np.swapaxes(batched_lower_inverse(L1), 1, 2))
        rest = G[q1:, q1:]
        rest -= blas.dsyrk(1.0, C, lower=1)  # lower triangle only, all the trailing factorization reads
        trailing = dense_cholesky(np.array(rest))
        if trailing is None:
            return None
        # Above the diagonal, only the level blocks of the lead can hold
        # entries (G's symmetric cross products), and the blocks are written whole.
        G[:q1, q1:] = 0.0
        top = G[:q1, :q1].reshape(ell, S, ell, S)
        top[np.arange(ell), :, np.arange(ell), :] = L1
        G[q1:, :q1] = C
        G[q1:, q1:] = trailing
        return G


def rest_factorization(R0: sp.csr_matrix, lead: int, size: int) -> DenseCholesky | NestedLeadCholesky:
    """How to factor a rest whose first term has ``lead`` columns of S = ``size`` (0: no term)."""
    if lead >= _NESTED_MIN_COLUMNS and _stays_block_diagonal(R0, lead, size):
        return NestedLeadCholesky(lead, size)
    return DenseCholesky()
