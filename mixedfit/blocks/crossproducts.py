"""``A = [Z X y]ᵀW[Z X y]`` in blocks, and its Λθ-scaled Cholesky factor at each θ."""

from __future__ import annotations

import collections

import numpy as np
from scipy.linalg import solve_triangular

from ..terms import Design
from ..theta import JoinedTheta, lower_template
from .factor import DenseCholesky, Factor, last_row_solution, rest_factorization
from .levels import FirstTerm, batched_cholesky_solve
from .rest import DenseRest, RestColumns, rest_strategy
from .schur import schur_update
from .sums import CrossBlocks, engine_plan, joined_term

__all__ = ["CrossProducts", "diagonal_logdets"]


_ELIMINATIONS_KEPT = 3  # first-term θs whose eliminated rest is kept (see CrossProducts._eliminated)


_ELIMINATIONS_BYTES = 128 * 2**20  # most memory those may hold


def diagonal_logdets(dr: np.ndarray, random: int, logdet0: float = 0.0) -> tuple[float, float, float]:
    """(log|L_Z|², log|L_X|², r²) from a factor's diagonal ``dr`` (its ``random`` random effects, then X's,
    then y's), with ``logdet0`` the log-determinant of random effects eliminated before it."""
    logs = np.log(dr[:-1])
    logdet_z = logdet0 + 2.0 * np.add.reduce(logs[:random]) if random else logdet0
    return float(logdet_z), float(2.0 * np.add.reduce(logs[random:])), float(dr[-1]) ** 2


class CrossProducts:
    """``A = [Z X y]ᵀW[Z X y]`` in blocks, and its Λθ-scaled Cholesky factor.

    Parameters
    ----------
    design : Design
        The model's data. Terms on one grouping factor are joined and the
        terms re-ordered internally (``engine_plan``, kept as ``plan``);
        ``theta`` passed to ``factor`` is per engine term
        (``joined``: ``JoinedTheta.engine``).
    blocks : CrossBlocks, optional
        Cross products already summed (e.g. over the partitions of a data set
        too large for memory); then ``design`` only supplies the structure
        (terms, their levels and column names; X's column count).

    Attributes
    ----------
    first : FirstTerm
        The first engine term, eliminated level by level.
    rest_columns : RestColumns
        The rest's layout: the other terms' columns, then X's and y's.
    rest : DenseRest, KeptRest or CholmodRest
        How the rest is kept, updated by the first term's elimination (its
        ``update``: ``RankUpdate`` or ``BlockUpdate``) and factored (its
        ``factorization``: ``DenseCholesky`` or ``NestedLeadCholesky``).
    """

    def __init__(self, design: Design, blocks: CrossBlocks | None = None):
        self.plan = engine_plan(design.terms)
        self.terms = [joined_term(design.terms, parts) for parts in self.plan]
        self.joined = JoinedTheta(self.plan, [t.size for t in design.terms])
        blocks = CrossBlocks.from_design(design, self.plan) if blocks is None else blocks
        self.p = design.X.shape[1]
        self.n = blocks.n
        self.sum_log_w = blocks.sum_log_w
        self.A00, self.R0, self.F0, self.Arr = blocks.A00, blocks.R0, blocks.F0, blocks.Arr
        self.response = blocks.response
        self.frame = blocks.frame  # X and y are in it: the engine's fixed effects are γ (see Frame)
        rest = self.terms[1:]
        self.first = FirstTerm(self.A00)
        self.rest_columns = RestColumns([t.size for t in rest], [t.nlevels for t in rest], self.p)
        lead, lead_size = (int(self.rest_columns.offsets[1]), rest[0].size) if rest else (0, 0)
        self.rest = rest_strategy(self.Arr, schur_update(self.first, self.R0, self.F0, self.rest_columns.size),
                                  self.rest_columns, rest_factorization(self.R0, lead, lead_size))
        # With one term every θ is the first term's: no elimination comes back, and keeping them cost an
        # evaluation of sleepstudy a tenth (a key, the dict's upkeep and a copy of the rest to factor).
        self._elimination_slots = min(_ELIMINATIONS_KEPT, _ELIMINATIONS_BYTES // (8 * self.rest.entries)) if rest else 0
        self._eliminations: collections.OrderedDict[bytes, tuple] = collections.OrderedDict()

    @property
    def factors_whole_rest(self) -> bool:
        """Whether each evaluation factors the whole rest densely (LAPACK on the (m, m) array).

        The gradient inverts the whole rest densely (``mixedfit.blocks.gradient``):
        about one more factorization there, many more where the rest is factored
        sparse or level by level.
        """
        return isinstance(self.rest, DenseRest) and isinstance(self.rest.factorization, DenseCholesky)

    @property
    def blocks(self) -> CrossBlocks:
        """The cross products this was built from (to refit without the rows)."""
        return CrossBlocks(self.A00, self.R0, self.F0, self.Arr, self.n, self.sum_log_w, self.response, self.frame)

    # -- per-θ work -----------------------------------------------------------
    def templates(self, theta_engine: list[np.ndarray]) -> list[np.ndarray]:
        return [lower_template(th, t.size) for th, t in zip(theta_engine, self.terms)]

    def _eliminated(self, T0: np.ndarray) -> tuple[float, np.ndarray]:
        """log|L00|² and the rest after eliminating the first term, at its template T0.

        The rest comes before its Λr scaling, as the rest strategy keeps it
        (``DenseRest.eliminated``, ``KeptRest.eliminated``); callers must not
        modify it.  Both depend on the first term's θ alone, and that θ comes
        back within a few evaluations, because BOBYQA's first steps and lme4's
        derivative check move one or two coordinates at a time (InstEval: 21
        of 93 evaluations, the crossed 5e5 benchmark 9 of 46), so the last few
        are kept.
        """
        if not self._elimination_slots:
            return self._eliminate(T0)
        key = T0.tobytes()
        kept = self._eliminations.get(key)
        if kept is not None:
            self._eliminations.move_to_end(key)
            return kept
        kept = self._eliminate(T0)
        self._eliminations[key] = kept
        if len(self._eliminations) > self._elimination_slots:
            self._eliminations.popitem(last=False)
        return kept

    def _eliminate(self, T0: np.ndarray) -> tuple[float, np.ndarray]:
        """``_eliminated``'s work, kept or not."""
        logdet0, packed = self.first.eliminate(T0)
        return logdet0, self.rest.eliminated(packed)

    def factor(self, theta_engine: list[np.ndarray]) -> Factor | None:
        """Factor at θ (one array per term, engine order); None if not positive definite."""
        templates = self.templates(theta_engine)
        logdet0, g = self._eliminated(templates[0])
        return self.rest.factor(logdet0, g, templates, self.first, kept=bool(self._elimination_slots))

    def logdets_at(self, theta_engine: list[np.ndarray]) -> tuple[float, float, float] | None:
        """``logdets`` of the factor at θ (engine order); None where there is none.

        With one term the rest is X's and y's alone: nothing of it is scaled
        by Λ, and its factor's diagonal is all the objective reads, so no
        ``Factor`` is made (the same numbers, sleepstudy's objective 32 → 25 µs).
        """
        if self.rest_columns.random:
            f = self.factor(theta_engine)
            return None if f is None else self.logdets(f)
        logdet0, packed = self.first.eliminate_at(theta_engine[0])
        L = self.rest.factorization.factor(self.rest.eliminated(packed))
        return None if L is None else diagonal_logdets(L.diagonal(), 0, logdet0)

    # -- quantities read off the factor ---------------------------------------
    def logdets(self, f: Factor) -> tuple[float, float, float]:
        """(log|L_Z|², log|L_X|², r²) from the factor's diagonal."""
        return diagonal_logdets(f.diagonal, self.rest_columns.random, f.logdet0)

    def beta(self, f: Factor) -> np.ndarray:
        """β̂ alone: the factor's trailing block is ``[R_X 0; c_Xᵀ r]`` and ``R_Xᵀ β̂ = c_X``.

        What ``solve`` gives as its first value, without the random effects
        and so, where CHOLMOD factored the rest, without LAPACK's whole factor.
        The factor's is γ̂, that of X̃ and ỹ: β̂ is mapped back (``Frame.coefficients``).
        """
        return self.frame.coefficients(last_row_solution(f.trailing(self.p + 1)))

    def rx_inverse(self, f: Factor) -> np.ndarray:
        """A matrix Q with vcov(β) = σ² QᵀQ: R_X⁻¹ from the factor's lower triangular block for X̃,
        times Tᵀ (``Frame.rx_inverse``; R_X⁻¹ itself where X is not centered)."""
        inverse = solve_triangular(f.trailing(self.p + 1)[: self.p, : self.p], np.eye(self.p), lower=True)
        return self.frame.rx_inverse(inverse)

    def scale_rows(self, B: np.ndarray, templates: list[np.ndarray]) -> np.ndarray:
        """``Λr B`` for an array of the rest's rows (or of its q_r random rows): scale the random-rest rows."""
        B = B.copy()
        for (sl, S, ell), T in zip(self.rest_columns.terms, templates[1:]):
            B[sl, :] = (T @ B[sl, :].reshape(ell, S, -1)).reshape(-1, B.shape[1])
        return B

    def eliminated_rest(self, T0: np.ndarray) -> np.ndarray:
        """The rest after eliminating the first term at its template T0, before Λr: dense, symmetric (m, m).

        For the gradient (``mixedfit.blocks.gradient``), whatever the rest strategy keeps.
        """
        return self.rest.symmetric(self._eliminated(T0)[1])

    def solve(self, f: Factor) -> tuple[np.ndarray, list[np.ndarray]]:
        """β̂ and the spherical random effects u (engine term order, each (ℓ, S)).

        β̂ is mapped back from the engine's γ̂ (``solution``).
        """
        gamma, us = self.solution(f)
        return self.frame.coefficients(gamma), us

    def solution(self, f: Factor, inverses: np.ndarray | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """γ̂, the fixed effects of the engine's X̃ (see ``Frame``), and the spherical random effects u.

        The first term's u solves ``B_l u_l = T0ᵀ z_l`` level by level (``right_hand_side``):
        by two triangular solves with ``L00``, or, given ``inverses`` (the B_l⁻¹ of
        ``FirstTerm.inverses``, which the gradient needs anyway), by their products.
        """
        v, z = self.right_hand_side(f)
        y = z @ f.templates[0]  # rows T0ᵀ z_l
        if inverses is None:
            u0 = batched_cholesky_solve(f.L00, y)
        else:
            u0 = np.matmul(inverses, y[..., None])[..., 0]
        us = [u0] + [v[sl].reshape(ell, S) for sl, S, ell in self.rest_columns.terms]
        return v[self.rest_columns.random:], us

    def right_hand_side(self, f: Factor) -> tuple[np.ndarray, np.ndarray]:
        """The rest's solution v (``Factor.leading_solution``) and the first term's ``z = A_r0ᵀ Λr [−v; 1]`` (ℓ, S).

        z comes from sparse products with the stored cross products, never
        the dense (m, q0) ``L_r0``; ``L_r0ᵀ [−v; 1]`` is ``L00⁻¹ T0ᵀ z`` level by level.
        """
        v = f.leading_solution()
        random = self.rest_columns.random
        tail = np.concatenate((-v[random:], (1.0,)))
        z = self.F0.T @ tail
        if random:  # an empty R0's sparse product took a fifth of a small model's results
            w = self.scale_rows(-v[:random, None], f.templates)[:, 0]
            z = self.R0.T @ w + z
        return v, z.reshape(self.first.nlevels, self.first.size)
