"""A small model's whole penalized system, factored by one LAPACK call: its objective and exact gradient.

The blocked factor (``CrossProducts``) eliminates the first term level by
level, updates the rest and factors it; the gradient (``mixedfit.blocks.gradient``)
follows the same blocks back.  With a few dozen random effects every one of
those steps is a numpy call on a handful of entries, and the calls, not the
flops, are the cost: Machines' ``(0 + Machine|Worker)``, 18 random effects,
took 90 µs an objective and gradient that way.  Here the whole
``Λ̄ᵀAΛ̄ + I`` (Λ̄: every engine term's templates, then I on X and y) is
scaled term by term and factored at once, and the gradient is read off that
one factor: 43 µs.

With ``N`` the system's leading k×k block (k = q under ML, q + p under
REML) and ``C = N⁻¹ Λ̄ᵀ A_{k,q}``, the log-determinant's derivative in a
template entry ``T[s, t]`` is ``2 Σ_l C[lS + t, lS + s]`` (``∂N = EᵀAΛ̄ + Λ̄ᵀAE``
with E the entry's positions, one a level), and that of r² is
``2 Σ_l a_{l,s} u_{l,t}`` with ``a = A_{q,·} [Λu; γ; −1]`` at the solution
(``mixedfit.blocks.gradient`` has the envelope argument).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from ..theta import lower_template
from .crossproducts import CrossProducts, diagonal_logdets
from .factor import dense_cholesky, last_row_solution
from .levels import level_blocks_into, level_diagonal, symmetric_from_lower
from .rest import RestColumns

__all__ = ["WholeFactor", "WholeSystem", "whole_system"]


# Most columns (random effects, X and y) of a system factored whole.  Objective and
# gradient, whole against blocked, on simulated (0 + f|g) with f of 3 levels: 22 columns
# 43 against 90 µs, 52 columns 77 against 98, 76 columns 119 against 101; with f of 4
# levels, 69 columns 100 against 106, 101 columns 172 against 117.
_MOST_COLUMNS = 64


def whole_system(cross: CrossProducts) -> "WholeSystem | None":
    """The whole system of these cross products where it is small enough to gain (``_MOST_COLUMNS``), else None."""
    columns = sum(t.size * t.nlevels for t in cross.terms) + cross.p + 1
    return WholeSystem(cross) if columns <= _MOST_COLUMNS else None


@dataclass
class WholeFactor:
    """The whole system's factor at one θ.

    Attributes
    ----------
    L : ndarray (K, K)
        Lower Cholesky factor of ``Λ̄ᵀAΛ̄ + I``.
    scaled : ndarray (K, q)
        ``Λ̄ᵀA``'s random-effects columns (a view), which the gradient reads.
    templates : list of ndarray
        Each engine term's template.
    """

    L: np.ndarray
    scaled: np.ndarray
    templates: list[np.ndarray]


class WholeSystem:
    """``A = [Z X y]ᵀW[Z X y]`` as one dense (K, K) array, scaled by Λ̄ and factored whole at each θ.

    Parameters
    ----------
    cross : CrossProducts
        The model's cross products, in the engine's terms and ``Frame``.

    Attributes
    ----------
    A : ndarray (K, K)
        The cross products, every engine term's columns, then X's and y's.
    columns : RestColumns
        That layout.
    """

    def __init__(self, cross: CrossProducts):
        self.n, self.p = cross.n, cross.p
        self.columns = RestColumns([t.size for t in cross.terms], [t.nlevels for t in cross.terms], cross.p)
        q0, K = cross.first.size * cross.first.nlevels, self.columns.size
        self.A = np.zeros((K, K))
        level_blocks_into(self.A[:q0, :q0], cross.A00)
        below = np.vstack([cross.R0.toarray(), cross.F0])
        self.A[q0:, :q0] = below
        self.A[:q0, q0:] = below.T
        self.A[q0:, q0:] = symmetric_from_lower(cross.Arr)
        # Λ̄ at the θ factored last: I, each term's template written on its levels' diagonal blocks
        self._lam = np.eye(K)
        self._lam_blocks = [level_diagonal(self._lam, sl.start, S, ell) for sl, S, ell in self.columns.terms]

    def factor(self, theta_engine: list[np.ndarray]) -> WholeFactor | None:
        """The factor at θ (one array per term, engine order); None if not positive definite."""
        templates = [lower_template(th, S) for th, (_, S, _) in zip(theta_engine, self.columns.terms)]
        for blocks, T in zip(self._lam_blocks, templates):
            blocks[...] = T
        K, q = self.columns.size, self.columns.random
        # Λ̄ᵀAΛ̄ by two products with the whole Λ̄, not batched ones per term and side (Λ̄'s zeros
        # add nothing).  Both take Λ̄ᵀ on the left, Gt being Gᵀ: so they sum in the batched
        # products' order, the same bits, where (Λ̄ᵀA)Λ̄ differed on systems of odd size.
        scaled = np.dot(self._lam.T, self.A)
        Gt = np.dot(self._lam.T, scaled.T)
        Gt.reshape(-1)[: q * (K + 1): K + 1] += 1.0
        L = dense_cholesky(Gt.T)
        return None if L is None else WholeFactor(L, scaled[:, :q], templates)

    def logdets(self, f: WholeFactor) -> tuple[float, float, float]:
        """(log|L_Z|², log|L_X|², r²) from the factor's diagonal (``CrossProducts.logdets``)."""
        return diagonal_logdets(f.L.diagonal(), self.columns.random)

    def template_gradients(self, f: WholeFactor, reml: bool) -> list[np.ndarray]:
        """The objective's derivatives in each engine term's template entries (``gradient.template_gradients``)."""
        q = self.columns.random
        k = q + self.p if reml else q
        dof = self.n - self.p if reml else self.n
        v = last_row_solution(f.L)  # [u; γ]
        u = v[:q]
        b = np.concatenate((v, (-1.0,)))  # [Λu; γ; −1] once its random part is scaled
        for (sl, S, ell), T in zip(self.columns.terms, f.templates):
            b[sl] = (u[sl].reshape(ell, S) @ T.T).reshape(-1)
        a = self.A[:q] @ b
        C, info = lapack.dpotrs(f.L[:k, :k], f.scaled[:k], lower=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"dpotrs failed on the whole system's factor (info = {info})")
        weight = dof / float(f.L[-1, -1]) ** 2
        Ct = C.T  # C-ordered (dpotrs gives Fortran order): its levels' blocks are views
        grads = []
        for sl, S, ell in self.columns.terms:
            own = np.diagonal(Ct[sl, sl].reshape(ell, S, ell, S), axis1=0, axis2=2).sum(axis=-1)  # Σ_l C_llᵀ
            grads.append(2.0 * (own + weight * (a[sl].reshape(ell, S).T @ u[sl].reshape(ell, S))))
        return grads
