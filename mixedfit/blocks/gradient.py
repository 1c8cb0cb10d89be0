"""The exact gradient in θ of lme4's profiled deviance (ML) or REML criterion, read off the blocked factor.

With ``A = [Z X y]ᵀW[Z X y]``, Λ block diagonal (one template T a level of
each term) and the leading system ``N = Λ̄ᵀ A_kk Λ̄ + I_q`` over the random
effects (ML) or the random and fixed effects (REML), the objective is
``log|N| + d · log r² + const``, with d = n (ML) or n − p (REML) and
r² the penalized residual sum of squares.  Its derivatives in a template T:

* ``log r²``: by the envelope theorem (u and γ minimize r²),
  ``∂r²/∂T = 2 Σ_l a_l u_lᵀ`` with ``a = Zᵀ W (ZΛu + Xγ − y)`` at the solution;
* ``log|N|``, split as the blocked factor splits it, ``log|B| + log|H|``
  with the first term's blocks ``B_l = TᵀA_lT + I`` and the rest's
  ``H = Λ̄rᵀ G Λ̄r + I``, G the rest after eliminating the first term
  (``G = A_rr − A_r0 M A_r0ᵀ``, ``M_l = T B_l⁻¹ Tᵀ``):

  - a rest term: ``∂ log|H| / ∂T = 2 Σ_l (G Λ̄ H⁻¹)_ll``;
  - the first term: ``∂ log|B| / ∂T = 2 Σ_l A_l T W_l`` (W = B⁻¹), and
    through G, ``−Σ_l tr(Q_l dM_l)`` with ``Q = A_r0ᵀ Λ̄ H⁻¹ Λ̄ᵀ A_r0``, whose
    derivative is ``2 Σ_l (Q_l T W_l − A_l T W_l Tᵀ Q_l T W_l)``.

H⁻¹ is formed densely from the rest's factor (LAPACK's ``dpotri``), which
costs about one more factorization of the rest, whatever strategy kept and
factored it (a sparse rest is made dense for this: ``CrossProducts.eliminated_rest``,
``Factor.Lrr``).  Q is the Schur update's transpose applied to
``Λ̄ H⁻¹ Λ̄ᵀ`` (one more update); every other piece is per level.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack

from .crossproducts import CrossProducts
from .factor import Factor
from .levels import pair_index, symmetric_from_lower

__all__ = ["theta_gradient", "template_gradients"]


def theta_gradient(cross: CrossProducts, f: Factor, reml: bool) -> np.ndarray:
    """The gradient of the objective in θ (lme4's order) at the factor ``f``'s θ."""
    return cross.joined.theta_gradient(template_gradients(cross, f, reml))


def template_gradients(cross: CrossProducts, f: Factor, reml: bool) -> list[np.ndarray]:
    """The objective's derivatives in each engine term's template entries, one (S, S) array a term.

    Entries above a template's diagonal (and between the parts of a joined
    term) are derivatives along directions θ does not take.
    """
    n, p = cross.n, cross.p
    dof = n - p if reml else n
    r2 = float(f.diagonal[-1]) ** 2
    W = cross.first.inverses(f.templates[0])
    gamma, us = cross.solution(f, W)
    grads = [g * (dof / r2) for g in _pwrss_gradients(cross, f.templates, gamma, us)]
    k = cross.rest_columns.random + (p if reml else 0)
    Q = None
    if k:
        inverse = _leading_inverse(f.Lrr, k)
        if cross.rest_columns.random:
            G = cross.eliminated_rest(f.templates[0])[:k, :k]
            for e, g in enumerate(_rest_logdet_gradients(cross, G, inverse, f.templates), start=1):
                grads[e] += g
            Q = _first_term_weights(cross, _scaled_inverse(cross, inverse, f.templates), k)
        else:
            Q = _fixed_only_weights(cross.F0[:k], inverse, cross.first.size)
    grads[0] += _first_logdet_gradient(cross.first.crossprods, f.templates[0], W, Q)
    return grads


def _pwrss_gradients(cross: CrossProducts, templates: list[np.ndarray], gamma: np.ndarray,
                     us: list[np.ndarray]) -> list[np.ndarray]:
    """∂r²/∂T per engine term: ``2 Σ_l a_l u_lᵀ``, with ``a = A_Z· [Λu; γ; −1]`` (the Z rows of A)."""
    cols = cross.rest_columns
    random = cols.random
    b = [u @ T.T for u, T in zip(us, templates)]  # b_l = T u_l, each (ℓ, S)
    tail = np.concatenate((gamma, (-1.0,)))
    b0 = b[0].reshape(-1)
    a0 = np.matmul(cross.first.crossprods, b[0][..., None])[..., 0].reshape(-1) + cross.F0.T @ tail
    a = [a0]
    if random:
        br = np.concatenate([x.reshape(-1) for x in b[1:]])
        a0 += cross.R0.T @ br
        ar = cross.R0 @ b0 + cross.Arr[:random] @ np.concatenate([br, tail])
        a += [ar[sl] for sl, _, _ in cols.terms]
    return [2.0 * ae.reshape(u.shape).T @ u for ae, u in zip(a, us)]


def _leading_inverse(L: np.ndarray, k: int) -> np.ndarray:
    """``(L_k L_kᵀ)⁻¹`` for the leading k×k block L_k of a lower Cholesky factor, symmetric."""
    inverse, info = lapack.dpotri(L[:k, :k], lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"dpotri failed inverting the rest's factor (info = {info})")
    return symmetric_from_lower(inverse)


def _rest_logdet_gradients(cross: CrossProducts, G: np.ndarray, inverse: np.ndarray,
                           templates: list[np.ndarray]) -> list[np.ndarray]:
    """``∂ log|H| / ∂T = 2 Σ_l (G Λ̄ H⁻¹)_ll`` for each rest term (G: the leading k×k of the eliminated rest)."""
    k = G.shape[0]
    scaled = G.copy()  # G Λ̄: each level's columns times T
    for (sl, S, ell), T in zip(cross.rest_columns.terms, templates[1:]):
        scaled[:, sl] = (G[:, sl].reshape(k, ell, S) @ T).reshape(k, -1)
    out = []
    for sl, S, ell in cross.rest_columns.terms:
        rows, inv_rows = scaled[sl].reshape(ell, S, k), inverse[sl].reshape(ell, S, k)
        out.append(2.0 * np.einsum("lsc,ltc->st", rows, inv_rows))
    return out


def _scaled_inverse(cross: CrossProducts, inverse: np.ndarray, templates: list[np.ndarray]) -> np.ndarray:
    """``K = Λ̄ H⁻¹ Λ̄ᵀ`` (Λ̄: the rest terms' templates, then I on X)."""
    K = inverse.copy()
    k = K.shape[0]
    for (sl, S, ell), T in zip(cross.rest_columns.terms, templates[1:]):
        K[sl] = (T @ K[sl].reshape(ell, S, k)).reshape(-1, k)
        K[:, sl] = (K[:, sl].reshape(k, ell, S) @ T.T).reshape(k, -1)
    return K


def _first_term_weights(cross: CrossProducts, K: np.ndarray, k: int) -> np.ndarray:
    """``Q_l = (A_r0ᵀ K A_r0)_ll`` (ℓ, S, S), with A_r0 the leading k rows of ``[R0; F0]``.

    ``Σ_l tr(Q_l M_l) = tr(K A_r0 M A_r0ᵀ)`` is K's inner product with the
    Schur update, so Q is the update's transpose applied to K
    (``BlockUpdate.adjoint``): K's lower triangle as weights, off the diagonal
    twice.  One more update's work, where sparse products ``R0ᵀ K`` took
    most of a gradient (MixedModels.jl's InstEval model: 130 of 180 ms).
    """
    m, S = cross.rest_columns.size, cross.first.size
    W = np.zeros((m, m))
    W[:k, :k] = 2.0 * np.tril(K, -1)
    W.reshape(-1)[: k * (m + 1) : m + 1] = np.diagonal(K)
    D = cross.rest.update.adjoint(cross.rest.in_layout(W))  # (planes, ℓ): Q's entries, off the diagonal twice
    pairs = pair_index(S)
    twice = np.where(np.eye(S, dtype=bool), 1.0, 2.0)
    return (D[pairs] / twice[..., None]).transpose(2, 0, 1)


def _fixed_only_weights(X0: np.ndarray, K: np.ndarray, S: int) -> np.ndarray:
    """``Q_l = X0_lᵀ K X0_l`` (ℓ, S, S) where the rest is X alone: A_r0 is then X's rows of F0, ``X0`` (k, q0)."""
    k, q0 = X0.shape
    rows = X0.reshape(k, q0 // S, S)
    return np.matmul(rows.transpose(1, 2, 0), (K @ X0).reshape(k, q0 // S, S).transpose(1, 0, 2))


def _first_logdet_gradient(A: np.ndarray, T: np.ndarray, W: np.ndarray, Q: np.ndarray | None) -> np.ndarray:
    """∂ log|N| / ∂T for the first term: ``2 Σ_l A_l T W_l``, less ``2 Σ_l (Q_l T W_l − A_l T W_l Tᵀ Q_l T W_l)``.

    W: the levels' ``B_l⁻¹`` (``FirstTerm.inverses``).  Products with T are
    single matrix products on the stacked rows; only ``X_l = (A_l T) W_l`` and
    ``Y_l = (Q_l T) W_l`` are per level.  The sums over levels are products
    with the levels' rows: ``Σ_l X_l − Y_l`` a product with ones, and
    ``Σ_l (X_l Tᵀ) Y_l`` the trace of the S²×S² matrix ``Σ_l vec(X_l Tᵀ) vec(Y_l)ᵀ``
    over its inner pair of indices (3,000 4×4 levels: 1.36 → 0.40 ms, where
    summing a stack over its levels and gathering ``X_l Tᵀ`` level-major took
    most of it).
    """
    ell, S = A.shape[0], T.shape[0]
    X = (A.reshape(-1, S) @ T).reshape(A.shape) @ W
    ones = np.ones(ell)
    if Q is None:
        return 2.0 * (ones @ X.reshape(ell, -1)).reshape(S, S)
    Y = (Q.reshape(-1, S) @ T).reshape(Q.shape) @ W
    XT = (X.reshape(-1, S) @ T.T).reshape(ell, -1)
    across = (XT.T @ Y.reshape(ell, -1)).reshape(S, S, S, S).trace(axis1=1, axis2=2)
    return 2.0 * ((ones @ (X - Y).reshape(ell, -1)).reshape(S, S) + across)
