"""The rest (the terms after the first, then X and y): how it is kept, scaled by Λr and factored.

* ``DenseRest``: a dense (m, m) array, copied, updated, scaled and factored
  whole; crossed terms fill it in, so dense storage costs nothing extra there.
* ``KeptRest``: only the entries that can be nonzero (``SparseRest``), where
  the Schur update is all fixed maps and most of the rest stays empty; they
  are written into a zeroed array for LAPACK, or, where cvxopt is installed,
  factored by CHOLMOD (``CholmodRest``, ``mixedfit.supernodal``), unless its
  factor comes out nearly dense: LAPACK on all the cores is the faster there.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from .. import cores
from ..formula.rvalues import distinct
from ..supernodal import SupernodalRest, cholmod_available
from .factor import Factor
from .levels import symmetric_from_lower
from .schur import BlockUpdate

__all__ = ["RestColumns", "SparseRest", "DenseRest", "KeptRest", "CholmodRest", "kept_rest", "rest_strategy"]


_SPARSE_FILL = 0.5  # most scaling products, per entry of the rest's lower triangle, for a sparse assembly


@dataclass
class RestColumns:
    """The rest's columns: each rest term's levels, S columns a level, then X's and y's (``p + 1``).

    Attributes
    ----------
    sizes, levels : list of int
        Each rest term's S and ℓ.
    p : int
        X's columns.
    offsets : ndarray
        Where each rest term's columns start, and (last) where X's do.
    terms : list of (slice, int, int)
        Per rest term: its columns, S and ℓ.
    random : int
        The random rest's columns (q_r).
    size : int
        All the rest's columns (m).
    """

    sizes: list[int]
    levels: list[int]
    p: int

    def __post_init__(self) -> None:
        widths = [S * ell for S, ell in zip(self.sizes, self.levels)]
        self.offsets = np.array(list(itertools.accumulate(widths, initial=0)), dtype=int)
        self.random = int(self.offsets[-1])
        self.size = self.random + self.p + 1
        self.terms = [(slice(int(o), int(o) + w), S, ell)
                      for o, w, S, ell in zip(self.offsets, widths, self.sizes, self.levels)]


@dataclass
class SparseRest:
    """The rest's structurally nonzero lower-triangle entries and the map that scales them by Λr.

    The terms after the first often leave most of the rest empty (egsingle's
    schools: a tenth of its lower triangle; InstEval's lecturers: a fifth):
    there each θ updates and scales only the entries that can be nonzero, and
    hands them to CHOLMOD (``CholmodRest``) or, without cvxopt,
    writes them into a zeroed array, instead of copying, updating and scaling
    the whole dense block (dense: egsingle 20 %, InstEval 8 % faster per evaluation).
    Entry ``pos[t]`` of ``ΛrᵀGΛr`` is ``tv[a] tv[b] g[t]``, plus, where t
    is in a level block of S > 1 (``touched``), ``Σ tv[a] tv[b] g[source]``
    over the rows where ``target`` names t, with ``tv`` the rest's templates
    flattened, then a 1 for X and y, and ``code == a · len(tv) + b``.

    Attributes
    ----------
    pos : ndarray
        Sorted flat positions in the (m, m) array of the entries kept.
    arr : ndarray
        ``Arr`` at those positions.
    touched, target, source : ndarray or None
        The entries that sum several products (``touched``), and their sums'
        rows: each such entry's own product, then the products of other
        entries, in that order, ``target`` indexing ``touched``.  None where
        every entry is its own single product (all terms S = 1).  Summing
        only these rows, not one row for every entry too (MixedModels.jl's
        InstEval model: 27,930 of 173,692 entries), takes the scaling from
        1.18 to 0.87 ms, and each entry's products are added in the same
        order, so to the same bits.
    code : ndarray
        Indexes the flattened outer product of ``tv`` with itself, for each
        entry's own product, then for the rows of ``target``: one gather per
        θ instead of two and a product (InstEval: 0.44 → 0.24 ms).
    diagonal : ndarray
        Where the random rest's diagonal falls in ``pos``.
    """

    pos: np.ndarray
    arr: np.ndarray
    touched: np.ndarray | None
    target: np.ndarray | None
    source: np.ndarray | None
    code: np.ndarray
    diagonal: np.ndarray

    @classmethod
    def build(cls, Arr: np.ndarray, updated: np.ndarray, columns: "RestColumns") -> "SparseRest | None":
        """The structure of a rest with these columns whose Schur update writes the flat positions
        ``updated``, or None where it is too full to gain."""
        m = Arr.shape[0]
        budget = _SPARSE_FILL * m * (m + 1) / 2
        if updated.size > budget:
            return None
        size, effect, base = _effect_blocks(columns.offsets, columns.sizes, columns.levels, m)
        nonzero = np.flatnonzero(Arr)
        lower = nonzero[nonzero // m >= nonzero % m]
        diagonal = np.arange(columns.random) * (m + 1)
        pos = _block_closure(np.concatenate([lower, updated, diagonal]), size, effect, m)
        if pos.size > budget:
            return None
        target, source, code_a, code_b = _congruence_map(pos, size, effect, base, m)
        if target.size > budget:
            return None
        code = code_a * (int(base[-1]) + 1) + code_b  # base[-1]: y's, the last entry of tv
        touched, target, source, code = _summed_rows(pos.size, target, source, code)
        return cls(pos, Arr.reshape(-1)[pos], touched, target, source, code, np.searchsorted(pos, diagonal))

    def penalized(self, g: np.ndarray, templates: list[np.ndarray]) -> np.ndarray:
        """The kept entries of ``ΛrᵀGΛr + I`` (I on the random rest) from G's kept entries ``g``."""
        tv = np.concatenate([T.ravel() for T in templates] + [_ONE])
        scale = np.outer(tv, tv).reshape(-1).take(self.code)
        n = self.pos.size
        values = scale[:n] * g
        if self.target is not None:
            values[self.touched] = np.bincount(self.target, weights=scale[n:] * g[self.source],
                                               minlength=self.touched.size)
        values[self.diagonal] += 1.0
        return values

    def dense(self, values: np.ndarray, m: int) -> np.ndarray:
        """The (m, m) array holding these kept entries in its lower triangle, zeros elsewhere."""
        G = np.zeros((m, m))
        G.reshape(-1)[self.pos] = values
        return G


_ONE = np.ones(1)


def _effect_blocks(offsets: np.ndarray, sizes: list[int], levels: list[int],
                   m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per index of the rest: its level block's size S, its effect s in the block, and where
    Λr's entries for it start in the flattened templates (X and y: at their final 1, S = 1)."""
    one = sum(S * S for S in sizes)
    size, effect, base = np.ones(m, np.intp), np.zeros(m, np.intp), np.full(m, one, np.intp)
    flat = 0
    for o, S, ell in zip(offsets, sizes, levels):
        idx = np.arange(o, o + S * ell)
        size[idx], effect[idx], base[idx] = S, (idx - o) % S, flat
        flat += S * S
    return size, effect, base


def _block_closure(flat: np.ndarray, size: np.ndarray, effect: np.ndarray, m: int) -> np.ndarray:
    """Sorted lower-triangle positions of every level block pair that holds one of ``flat``.

    Λr mixes entries only within a pair of S×S level blocks, so keeping whole
    block pairs keeps every entry a scaled entry is made of.
    """
    i, j = np.divmod(flat, m)
    i0, j0 = i - effect[i], j - effect[j]
    out = []
    for u in range(int(size.max())):
        for v in range(int(size.max())):
            keep = (u < size[i]) & (v < size[j]) & (i0 + u >= j0 + v)
            out.append((i0[keep] + u) * m + j0[keep] + v)
    return distinct(np.concatenate(out), m * m)[0]


def _congruence_map(pos: np.ndarray, size: np.ndarray, effect: np.ndarray, base: np.ndarray,
                    m: int) -> tuple[np.ndarray, ...]:
    """(target, source, code_a, code_b) of ``(ΛᵀGΛ)[i, j] = Σ_ab Λ[a, i] Λ[b, j] G[a, b]``; the first
    ``pos.size`` rows are each entry's own product (a = i, b = j), in order.

    Within a level block Λ[a, i] = T[s_a, s_i], stored at ``base + s_a S + s_i``
    of the flattened templates; T is lower triangular, so a runs over i's block
    from i on, b likewise, and G[a, b] is read from the lower triangle.
    """
    i, j = np.divmod(pos, m)
    rows, srcs, ca, cb = [], [], [], []
    for da in range(int(size.max())):
        for db in range(int(size.max())):
            t = np.flatnonzero((effect[i] + da < size[i]) & (effect[j] + db < size[j]))
            it, jt = i[t], j[t]
            a, b = it + da, jt + db
            rows.append(t)
            # No shift reads the entry itself (i ≥ j): only shifted sources need a search.
            srcs.append(t if da == db == 0 else np.searchsorted(pos, np.maximum(a, b) * m + np.minimum(a, b)))
            ca.append(base[it] + (effect[it] + da) * size[it] + effect[it])
            cb.append(base[jt] + (effect[jt] + db) * size[jt] + effect[jt])
    return tuple(np.concatenate(x) for x in (rows, srcs, ca, cb))


def _summed_rows(n: int, target: np.ndarray, source: np.ndarray,
                 code: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """``SparseRest``'s (touched, target, source, code) from ``_congruence_map``'s rows, whose first
    ``n`` are each entry's own product in order.

    Each touched entry's own row comes first among its rows, then its other
    rows as they were: the order ``np.bincount`` adds them in, as before.
    """
    if target.size == n:  # one product per entry: no sums
        return None, None, None, code
    touched = np.unique(target[n:])
    rows = np.concatenate([touched, np.arange(n, target.size)])
    return touched, np.searchsorted(touched, target[rows]), source[rows], np.concatenate([code[:n], code[rows]])


def _diagonal_block_mirror(offset: int, S: int, ell: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat positions (upper, lower) of the strictly upper entries of a term's S×S
    diagonal blocks in an (m, m) array, and of their mirror images below the diagonal."""
    a, b = np.triu_indices(S, 1)
    base = offset + np.arange(ell)[:, None] * S
    rows, cols = (base + a).ravel(), (base + b).ravel()
    return rows * m + cols, cols * m + rows


class DenseRest:
    """The rest as a dense (m, m) array: copied, updated, scaled by Λr and factored whole.

    Parameters
    ----------
    Arr : ndarray (m, m)
        The rest's cross products.
    update : RankUpdate or BlockUpdate
        Its Schur update (``mixedfit.blocks.schur``).
    columns : RestColumns
    factorization : DenseCholesky or NestedLeadCholesky
    """

    def __init__(self, Arr: np.ndarray, update, columns: RestColumns, factorization):
        self.Arr, self.update, self.columns, self.factorization = Arr, update, columns, factorization
        self.entries = Arr.size  # of one eliminated rest
        # Mirror images of the diagonal level blocks, made symmetric before a template with S > 1 mixes them.
        self._mirrors = [_diagonal_block_mirror(cols.start, S, ell, columns.size) for cols, S, ell in columns.terms]

    def eliminated(self, packed: np.ndarray) -> np.ndarray:
        """``Arr − A_r0 M A_r0ᵀ`` (lower triangle): the rest after eliminating the first term, whose M is ``packed``."""
        G = self.Arr.copy()
        self.update.subtract(G, packed)
        return G

    def symmetric(self, g: np.ndarray) -> np.ndarray:
        """The eliminated rest ``g`` (its lower triangle current) as a new symmetric (m, m) array."""
        return symmetric_from_lower(g)

    def in_layout(self, W: np.ndarray) -> np.ndarray:
        """An (m, m) array as this rest keeps G: whole."""
        return W

    def factor(self, logdet0: float, g: np.ndarray, templates: list[np.ndarray], first, kept: bool) -> Factor | None:
        """The factor of ``ΛᵀGΛ + I`` from the eliminated rest ``g`` (``kept``: it must stay as it is)."""
        G = g.copy() if kept else g
        self._scale(G, templates)
        random, m = self.columns.random, self.columns.size
        if random:
            G.reshape(-1)[: random * (m + 1) : m + 1] += 1.0  # the random rest's diagonal
        L = self.factorization.factor(G)
        if L is None:
            return None
        return Factor(logdet0, L.diagonal(), templates, first.factor, L)

    def _scale(self, G: np.ndarray, templates: list[np.ndarray]) -> None:
        """In place ``G ← ΛrᵀGΛr`` for the random rest (X and y rows are not scaled).

        Only G's lower triangle is current (the Schur update writes no more); a
        template with S > 1 mixes the columns within each level's S×S diagonal
        block, so those blocks are made symmetric first.
        """
        flat = G.reshape(-1)
        m = self.columns.size
        for (sl, S, ell), T, (upper, lower) in zip(self.columns.terms, templates[1:], self._mirrors):
            if S == 1:
                G[sl, :] *= T[0, 0]
                G[:, sl] *= T[0, 0]
            else:
                flat[upper] = flat[lower]
                G[:, sl] = (G[:, sl].reshape(m, ell, S) @ T).reshape(m, -1)
                G[sl, :] = (T.T @ G[sl, :].reshape(ell, S, m)).reshape(-1, m)


class KeptRest:
    """The rest as its kept entries (``SparseRest``): updated and scaled entry by entry, factored by LAPACK
    from a zeroed array.

    Parameters
    ----------
    sparse : SparseRest
    update : BlockUpdate
        The Schur update, all by maps onto the kept entries.
    columns : RestColumns
    factorization : DenseCholesky or NestedLeadCholesky
    """

    def __init__(self, sparse: SparseRest, update: BlockUpdate, columns: RestColumns, factorization):
        self.sparse, self.update, self.columns, self.factorization = sparse, update, columns, factorization
        self.entries = sparse.arr.size

    def eliminated(self, packed: np.ndarray) -> np.ndarray:
        """The kept entries of the rest after eliminating the first term, whose M is ``packed``."""
        g = self.sparse.arr.copy()
        self.update.subtract(g, packed)
        return g

    def symmetric(self, g: np.ndarray) -> np.ndarray:
        """The eliminated rest's kept entries ``g`` as a dense symmetric (m, m) array."""
        return symmetric_from_lower(self.sparse.dense(g, self.columns.size))

    def in_layout(self, W: np.ndarray) -> np.ndarray:
        """An (m, m) array as this rest keeps G: its entries at the kept positions."""
        return W.reshape(-1)[self.sparse.pos]

    def factor(self, logdet0: float, g: np.ndarray, templates: list[np.ndarray], first, kept: bool) -> Factor | None:
        """The factor of ``ΛᵀGΛ + I`` from the eliminated rest's kept entries ``g`` (left as they are)."""
        L = self._lapack_factor(self.sparse.penalized(g, templates[1:]))
        if L is None:
            return None
        return Factor(logdet0, L.diagonal(), templates, first.factor, L)

    def _lapack_factor(self, values: np.ndarray) -> np.ndarray | None:
        """The dense factor of the rest with these kept entries, written into a zeroed array."""
        return self.factorization.factor(self.sparse.dense(values, self.columns.size), upper_zero=True)


# Least share of a dense factorization's flops (SupernodalRest.dense_share: the factor's
# own, counted from the pattern) from which LAPACK on several cores factors the rest: on
# crossed (1|a) + (1|b) with 1,000 to 5,000 levels of b (benchmarks/cholmod_fill.py,
# RESULTS_cholmod_fill.md, two runs), LAPACK on two cores took 1.07-2.4 times CHOLMOD's time
# at shares of 0.13-0.36 but for the smallest rest (0.82-0.90 at 0.32), 0.72-0.74 at 0.38,
# 0.83-1.43 at 0.43, 0.45-0.87 from 0.45 on; on one core 0.69-0.94 at 0.50-0.69 and more below.
# CHOLMOD's supernodal factor computes more (its relaxed supernodes hold explicit zeros: a
# share of 0.81 where the factor's is 0.69), and the 0.5 this was on that share makes the
# same choice as 0.37 on the factor's on every rest of the sweep.
_DENSE_SHARE = 0.37


class CholmodRest(KeptRest):
    """The kept entries factored by CHOLMOD (``mixedfit.supernodal``), which gives the diagonal the objective
    needs; LAPACK's whole factor is formed only where the results read it.

    Where the fill-reducing order still leaves the factor nearly dense (crossed
    factors that share many rows), LAPACK's dense factorization of the same
    entries, on all the cores, is the faster: before the first factorization
    the pattern gives the fill (``SupernodalRest.dense_share``), and from a
    share of ``_DENSE_SHARE`` on, where LAPACK runs on several cores
    (``cores.threaded``), every factorization is LAPACK's.

    Attributes
    ----------
    dense : bool or None
        Whether the rest is factored by LAPACK; None until the first factorization.
    """

    def __init__(self, sparse: SparseRest, update: BlockUpdate, columns: RestColumns, factorization):
        super().__init__(sparse, update, columns, factorization)
        self.cholmod = SupernodalRest(sparse.pos, columns.size, columns.random)
        self.dense: bool | None = None

    def __reduce__(self):
        # A model pickled where cvxopt is installed factors its rest by LAPACK where it is not.
        return kept_rest, (self.sparse, self.update, self.columns, self.factorization)

    def _fills_in(self) -> bool:
        """Whether LAPACK, on several cores, should factor the rest (by the fill of its factor in CHOLMOD's order).

        On one core LAPACK would need nearly the dense flops' worth of fill to
        gain, so there the fill is not counted.
        """
        return cores.threaded(self.columns.size) and self.cholmod.dense_share() >= _DENSE_SHARE

    def factor(self, logdet0: float, g: np.ndarray, templates: list[np.ndarray], first, kept: bool) -> Factor | None:
        if self.dense is None:
            self.dense = self._fills_in()
        if self.dense:
            return super().factor(logdet0, g, templates, first, kept)
        values = self.sparse.penalized(g, templates[1:])
        diagonal = self.cholmod.diagonal(values)
        if diagonal is None:
            return None
        return Factor(logdet0, diagonal, templates, first.factor, functools.partial(self._checked_factor, values),
                      (self.cholmod, self.cholmod.generation))

    def _checked_factor(self, values: np.ndarray) -> np.ndarray:
        """LAPACK's factor of a rest that CHOLMOD factored, from its kept entries (for the results, which read it whole)."""
        L = self._lapack_factor(values)
        if L is None:  # CHOLMOD found it positive definite: only a matrix on the edge of singularity gets here
            raise np.linalg.LinAlgError("the rest is positive definite to CHOLMOD but not to LAPACK")
        return L


def kept_rest(sparse: SparseRest, update: BlockUpdate, columns: RestColumns, factorization) -> KeptRest:
    """The rest of these kept entries, factored by CHOLMOD where cvxopt is installed."""
    kind = CholmodRest if cholmod_available() else KeptRest
    return kind(sparse, update, columns, factorization)


def rest_strategy(Arr: np.ndarray, update, columns: RestColumns, factorization) -> DenseRest | KeptRest:
    """The rest kept entry by entry where its update is all maps and it is sparse enough to gain, else dense."""
    if isinstance(update, BlockUpdate) and not update.products and columns.random:
        sparse = SparseRest.build(Arr, np.concatenate([piece.at for piece in update.maps]), columns)
        if sparse is not None:
            return kept_rest(sparse, update.moved(sparse.pos), columns, factorization)
    return DenseRest(Arr, update, columns, factorization)
