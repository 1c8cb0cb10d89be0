"""The sums over rows that make up ``A = [Z X y]ᵀW[Z X y]``, on the engine's terms."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..formula.model_matrix import INTERCEPT
from ..terms import Design, RandomEffectsTerm, sparse_rows
from .frame import Frame, gains
from .levels import level_blocks_into, symmetric_from_lower
from .memory import check_dense_memory

__all__ = ["engine_plan", "joined_term", "intercepts_only", "ResponseSums", "CrossBlocks"]


def _weighted(z: np.ndarray, sw: np.ndarray | None) -> np.ndarray:
    """``W^½ z``, each row times its √w; z itself where there are no weights (``sw`` None)."""
    return z if sw is None else z * sw[:, None]


def _level_crossprod(term: RandomEffectsTerm, sw: np.ndarray | None) -> np.ndarray:
    """Per-level ``zᵀWz`` blocks of one term, shape (ℓ, S, S)."""
    z = _weighted(term.z, sw)
    S = term.size
    out = np.empty((term.nlevels, S, S))
    for s in range(S):
        for t in range(s + 1):
            out[:, s, t] = np.bincount(term.codes, weights=z[:, s] * z[:, t], minlength=term.nlevels)
            out[:, t, s] = out[:, s, t]
    return out


def _dense_by_term(F: np.ndarray, term: RandomEffectsTerm, sw: np.ndarray | None) -> np.ndarray:
    """``Fᵀ W Z_t`` for a dense (n, k) matrix ``F`` already scaled by √w: shape (k, q_t)."""
    z = _weighted(term.z, sw)
    out = np.empty((F.shape[1], term.nlevels, term.size))
    for s in range(term.size):
        for j in range(F.shape[1]):
            out[j, :, s] = np.bincount(term.codes, weights=F[:, j] * z[:, s], minlength=term.nlevels)
    return out.reshape(F.shape[1], -1)


def _weighted_rows(term: RandomEffectsTerm, sw: np.ndarray | None) -> sp.csr_matrix:
    """``W^½ Z_t`` as a sparse (n, q_t) matrix: each row's S entries in its level's columns."""
    return sparse_rows(_weighted(term.z, sw), term.columns, term.nlevels * term.size)


def _term_by_term(left: sp.csr_matrix, right: sp.csr_matrix) -> sp.csr_matrix:
    """``Z_aᵀ W Z_b`` from ``(W^½ Z_a)ᵀ`` (q_a, n) and ``W^½ Z_b`` (n, q_b), each entry summed over
    the rows in their order.

    A sparse product touches each row's S_a × S_b products once and sums them
    in place; a list of all n S_a S_b of them, sorted and summed as duplicates,
    cost more than the rest of the sums (``CrossBlocks.from_design`` on
    (x|school/class), 36,000 rows: 21 → 11 ms; MixedModels.jl's InstEval model 52 → 21 ms).
    """
    product = left @ right
    product.sort_indices()
    return product


def engine_plan(terms: list[RandomEffectsTerm]) -> list[list[int]]:
    """The engine's terms, each as the indices of the model's terms it joins: most random effects first (stable).

    Terms on one grouping factor (the pieces of ``(x || g)``, or ``(1 | g) +
    (0 + x | g)``) are joined in one term with a block-diagonal template, so
    that their effects are eliminated together, level by level, instead of
    the later ones filling the dense rest (a fit of ``(x || g)`` on 1000
    groups: 0.34 s as two terms, 0.012 s joined).

    Examples
    --------
    >>> import mixedfit as mf
    >>> from mixedfit.terms import build_design
    >>> d = build_design("Reaction ~ Days + (1|Days) + (Days||Subject)", mf.load_dataset("sleepstudy"))
    >>> [t.label for t in d.terms], engine_plan(d.terms)
    (['0 + Days | Subject', '1 | Subject', '1 | Days'], [[0, 1], [2]])
    """
    plan: list[list[int]] = []
    for i, t in enumerate(terms):
        same = [parts for parts in plan if _same_factor(terms[parts[0]], t)]
        if same:
            same[0].append(i)
        else:
            plan.append([i])
    return sorted(plan, key=lambda parts: -sum(terms[i].size for i in parts) * terms[parts[0]].nlevels)


def _same_factor(a: RandomEffectsTerm, b: RandomEffectsTerm) -> bool:
    return a.group == b.group and a.levels == b.levels and np.array_equal(a.codes, b.codes)


def joined_term(terms: list[RandomEffectsTerm], parts: list[int]) -> RandomEffectsTerm:
    """The model's terms ``parts``, all on one grouping factor, as one term: their columns side by side."""
    if len(parts) == 1:
        return terms[parts[0]]
    ts = [terms[i] for i in parts]
    return RandomEffectsTerm(ts[0].group, [c for t in ts for c in t.cnames], np.hstack([t.z for t in ts]),
                             ts[0].codes, ts[0].levels, correlated=False,
                             label=" + ".join(f"({t.label})" for t in ts))


def intercepts_only(terms: list[RandomEffectsTerm]) -> bool:
    """Whether every term is a random intercept ``(1 | g)`` of a grouping factor of its own."""
    return all(t.cnames == ["(Intercept)"] for t in terms) and len({t.group for t in terms}) == len(terms)


@dataclass
class ResponseSums:
    """Per level of each term, the number of observations and the sum of the raw response y
    (before weights and offset), with n, Σy and Σy²: what lme4's starting θ for random
    intercepts is made of (``mixedfit.model.lme4_start``).  Like ``CrossBlocks``,
    they add up over row partitions.  Terms in the order of the blocks they came with.

    The sums are of y − ``shift``, the rows' mean where it dwarfs their spread
    (as for ``Frame``; else 0): the start depends on variances alone, which
    Σy² − (Σy)²/n would lose to cancellation there.
    """

    n: int
    total: float
    squares: float
    counts: list[np.ndarray]
    sums: list[np.ndarray]
    shift: float = 0.0

    def __add__(self, other: "ResponseSums") -> "ResponseSums":
        other = other.shifted(self.shift)
        return ResponseSums(self.n + other.n, self.total + other.total, self.squares + other.squares,
                            [a + b for a, b in zip(self.counts, other.counts)],
                            [a + b for a, b in zip(self.sums, other.sums)], self.shift)

    def shifted(self, shift: float) -> "ResponseSums":
        """The same sums of y − ``shift``: no cancellation where both shifts lie within the rows' spread."""
        d = shift - self.shift
        if d == 0:
            return self
        return ResponseSums(self.n, self.total - self.n * d, self.squares - 2.0 * d * self.total + self.n * d * d,
                            self.counts, [s - c * d for c, s in zip(self.counts, self.sums)], shift)

    @classmethod
    def from_design(cls, design: Design, terms: list[RandomEffectsTerm]) -> "ResponseSums":
        y = np.asarray(design.y, float)
        shift = float(np.mean(y)) if y.size else 0.0
        if gains(y.size * shift * shift, np.sum((y - shift) ** 2)):
            y = y - shift
        else:
            shift = 0.0
        return cls(y.size, float(np.sum(y)), float(y @ y),
                   [np.bincount(t.codes, minlength=t.nlevels).astype(float) for t in terms],
                   [np.bincount(t.codes, weights=y, minlength=t.nlevels) for t in terms], shift)


@dataclass
class CrossBlocks:
    """The sums over rows that make up ``A = [Z X y]ᵀW[Z X y]``, in engine order.

    Every field is a sum over observations, so the blocks of two sets of rows
    add up to the blocks of their union: partitions of a large data set can be
    reduced with ``+`` (see ``__add__``).

    Attributes
    ----------
    A00 : ndarray (ℓ, S, S)
        The first term's per-level ``zᵀWz``.
    R0 : scipy.sparse.csr_matrix (q_r, q0)
        ``Z_restᵀ W Z_0``.
    F0 : ndarray (p + 1, q0)
        ``[X y]ᵀ W Z_0``.
    Arr : ndarray (m, m)
        The rest's cross products (symmetric).
    n : int
        Number of observations.
    sum_log_w : float
        Σ log wᵢ.
    response : ResponseSums or None
        The raw response's sums per level, kept only when every term is a
        random intercept (see ``intercepts_only``).
    frame : Frame
        The change of variables X and y are in: F0 and Arr hold ``[X̃ ỹ]``
        where they say ``[X y]`` (default: X and y as they are).
    """

    A00: np.ndarray
    R0: sp.csr_matrix
    F0: np.ndarray
    Arr: np.ndarray
    n: int
    sum_log_w: float
    response: ResponseSums | None = None
    frame: Frame | None = None

    def __post_init__(self) -> None:
        if self.frame is None:
            self.frame = Frame.identity(self.F0.shape[0] - 1)

    def __add__(self, other: "CrossBlocks") -> "CrossBlocks":
        """The blocks of both sets of rows, in this one's frame."""
        other = other.in_frame(self.frame)
        return CrossBlocks(
            self.A00 + other.A00,
            (self.R0 + other.R0).tocsr(),
            self.F0 + other.F0,
            self.Arr + other.Arr,
            self.n + other.n,
            self.sum_log_w + other.sum_log_w,
            None if self.response is None or other.response is None else self.response + other.response,
            self.frame,
        )

    def in_frame(self, frame: Frame) -> "CrossBlocks":
        """The same rows' blocks with X and y in ``frame`` (see ``Frame``): the X/y rows of F0 and Arr change."""
        if frame is self.frame:
            return self
        K = self.frame.change_to(frame)
        q = self.Arr.shape[0] - K.shape[0]
        Arr = self.Arr.copy()
        Arr[q:, :] = K.T @ Arr[q:, :]
        Arr[:, q:] = Arr[:, q:] @ K
        return dataclasses.replace(self, F0=K.T @ self.F0, Arr=Arr, frame=frame)

    def in_least_squares_frame(self, keep: list[int] | None = None) -> "CrossBlocks":
        """The blocks in the frame whose ỹ is the weighted least squares residual on X's columns ``keep`` alone.

        The other columns get b = 0 (so they can be dropped:
        ``Frame.columns``), and no column is centered where the intercept
        is not kept.  Partitions summed in the first one's frame
        (``__add__``) are put in the frame of all their rows.
        """
        p = self.F0.shape[0] - 1
        q = self.Arr.shape[0] - p - 1
        keep = list(range(p)) if keep is None else list(keep)
        dropped = ~np.isin(np.arange(p), keep)
        old = self.frame
        centers = old.centers if old.intercept in keep else np.zeros(p)
        # In the frame with these centers and b = 0 on the dropped columns, solve for the kept ones.
        moved = self.in_frame(Frame(centers, np.where(dropped, 0.0, old.beta),
                                    old.intercept if old.intercept in keep else None))
        G, r = moved.Arr[q:, q:][np.ix_(keep, keep)], moved.Arr[q:, q:][keep, p]
        scale = np.sqrt(np.diagonal(G)).copy()
        scale[scale == 0] = 1.0
        step = np.linalg.lstsq(G / np.outer(scale, scale), r / scale, rcond=None)[0] / scale if keep else np.zeros(0)
        # As in Frame.of_data, ỹ changes only where that removes most of it (its
        # norm after the step, by the normal equations: small there, or negative).
        unmoved = not np.any(old.beta[dropped]) and (old.intercept in keep or not np.any(old.centers))
        if unmoved and not gains(moved.Arr[-1, -1], moved.Arr[-1, -1] - step @ r):
            return self
        beta = moved.frame.beta.copy()
        beta[keep] += step
        return self.in_frame(Frame(centers, beta, moved.frame.intercept))

    @classmethod
    def from_design(cls, design: Design, plan: list[list[int]] | None = None) -> "CrossBlocks":
        """The blocks of a design's rows, on the engine's terms of ``plan`` (default: ``engine_plan``).

        X and y enter in the ``Frame`` of these rows.
        """
        plan = engine_plan(design.terms) if plan is None else plan
        terms = [joined_term(design.terms, parts) for parts in plan]
        n = design.nobs
        # Without weights nothing is multiplied by their ones (√w = 1, Σ log w = 0).
        w = None if design.weights is None else np.asarray(design.weights, float)
        sw = None if w is None else np.sqrt(w)
        yo = design.y - (0.0 if design.offset is None else design.offset)
        intercept = design.xnames.index(INTERCEPT) if INTERCEPT in design.xnames else None
        frame, X, yo = Frame.of_data(np.asarray(design.X, float), np.asarray(yo, float), sw, intercept, design.xy_r)
        F = _weighted(np.column_stack([X, yo]), sw)
        first, rest = terms[0], terms[1:]
        sizes = [t.size * t.nlevels for t in rest]
        offsets = np.array(list(itertools.accumulate(sizes, initial=0)), dtype=int)
        qr = int(offsets[-1])
        m = qr + F.shape[1]
        weighted = [_weighted_rows(t, sw) for t in terms] if rest else []
        by_level = [z.T.tocsr() for z in weighted[1:]]  # the rest terms' levels' rows, in their order
        R0 = (
            sp.vstack([_term_by_term(levels, weighted[0]) for levels in by_level]).tocsr()
            if rest
            else sp.csr_matrix((0, first.size * first.nlevels))
        )
        check_dense_memory(first, rest, m)
        # Each block below the diagonal is written with its mirror image above, and
        # the diagonal blocks level by level, not by passes over the whole array
        # (two np.tril copies: 5 ms of a 1,043-column rest).
        Arr = np.zeros((m, m))
        for i, ti in enumerate(rest):
            rows = slice(offsets[i], offsets[i] + sizes[i])
            for j in range(i):
                block = _term_by_term(by_level[i], weighted[1 + j]).toarray()
                Arr[rows, offsets[j] : offsets[j] + sizes[j]] = block
                Arr[offsets[j] : offsets[j] + sizes[j], rows] = block.T
            level_blocks_into(Arr[rows, rows], _level_crossprod(ti, sw))
            Arr[qr:, rows] = _dense_by_term(F, ti, sw)
            Arr[rows, qr:] = Arr[qr:, rows].T
        Arr[qr:, qr:] = symmetric_from_lower(F.T @ F)
        response = ResponseSums.from_design(design, terms) if intercepts_only(terms) else None
        sum_log_w = 0.0 if w is None else float(np.sum(np.log(w)))
        return cls(_level_crossprod(first, sw), R0, _dense_by_term(F, first, sw), Arr, n, sum_log_w, response, frame)
