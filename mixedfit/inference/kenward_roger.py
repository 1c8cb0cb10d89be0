"""Kenward–Roger's degrees of freedom and adjusted covariance (pbkrtest 0.5.2, through lmerTest).

``ddf="kenward-roger"`` ports pbkrtest's ``vcovAdj``, ``Lb_ddf`` and
``KRmodcomp`` as lmerTest calls them, for REML fits; it works with dense
n × n matrices, so it refuses more than 5000 observations.

Examples
--------
>>> import mixedfit as mf
>>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
>>> round(contest1d_kr(fit, np.array([0.0, 1.0]))["df"], 2)
17.0
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from ..distributions import f_sf, t_sf
from ..errors import ModelSpecError
from .satterthwaite import f_test_row

__all__ = ["KenwardRoger", "kenward_roger", "contest1d_kr", "contest_md_kr"]

_KR_MAX_NOBS = 5000  # the method works with dense n x n matrices


@dataclass(frozen=True)
class KenwardRoger:
    """pbkrtest's ``vcovAdj``: the adjusted covariance of β̂ and what its tests reuse.

    Attributes
    ----------
    phi : ndarray
        The unadjusted covariance of β̂ (``vcov``).
    phi_adj : ndarray
        Kenward and Roger's adjusted covariance (small-sample bias and the
        variability of the variance parameters).
    P : list of ndarray
        ``−Xᵀ Σ⁻¹ G_r Σ⁻¹ X`` per variance parameter.
    W : ndarray
        Twice the inverse expected information of the variance parameters.
    """

    phi: np.ndarray
    phi_adj: np.ndarray
    P: list[np.ndarray]
    W: np.ndarray


_KR_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _kr_covariance_basis(fit) -> tuple[list[np.ndarray], np.ndarray]:
    """pbkrtest's ``get_SigmaG``: Σ = Σ_r γ_r G_r over the VarCorr entries and σ².

    For each term and each entry (i ≥ j) of its covariance, ``G = Z (I ⊗ E_ij) Zᵀ``
    with ``E_ij`` symmetric, so ``G[a, b] = [same level] (z_a,i z_b,j + z_a,j z_b,i)``.
    """
    design = fit.model.design
    G, gamma = [], []
    for term, (_, _, cov) in zip(design.terms, fit.vc_blocks):
        same = term.codes[:, None] == term.codes[None, :]
        for j in range(term.size):
            for i in range(j, term.size):
                zi, zj = term.z[:, i], term.z[:, j]
                block = np.outer(zi, zj)
                if i != j:
                    block = block + block.T
                G.append(np.where(same, block, 0.0))
                gamma.append(cov[i, j])
    G.append(np.eye(design.nobs))
    gamma.append(fit.sigma**2)
    return G, np.asarray(gamma)


def kenward_roger(fit) -> KenwardRoger:
    """pbkrtest's ``vcovAdj`` for a REML fit (computed once per fit, then cached).

    Raises
    ------
    ModelSpecError
        For ML fits (lmerTest refuses them), weighted fits (pbkrtest ignores
        prior weights) and more than 5000 observations (dense n × n algebra).
    """
    try:
        return _KR_CACHE[fit]
    except (KeyError, TypeError):
        pass
    design = fit.model.design
    if not fit.reml:
        raise ModelSpecError("Kenward-Roger's method is only available for REML model fits")
    if design.weights is not None:
        raise ModelSpecError("Kenward-Roger's method is not available for fits with prior weights")
    if design.nobs > _KR_MAX_NOBS:
        raise ModelSpecError(f"Kenward-Roger's method needs dense {design.nobs} x {design.nobs} "
                             "matrices; use ddf='satterthwaite'")
    G, gamma = _kr_covariance_basis(fit)
    X, phi = design.X, fit.vcov.to_numpy()
    Sigma = sum(g * Gr for g, Gr in zip(gamma, G))
    Sinv = np.linalg.inv(np.linalg.cholesky(Sigma))
    Sinv = Sinv.T @ Sinv
    T = Sinv @ X
    H = [Gr @ Sinv for Gr in G]
    O = [Hr @ X for Hr in H]
    k = len(G)
    P = [_symmetric(-(Or.T @ T)) for Or in O]
    Q = {(r, s): O[r].T @ Sinv @ O[s] for r in range(k) for s in range(r, k)}
    info = np.empty((k, k))
    for r in range(k):
        phi_P = phi @ P[r]
        for s in range(r, k):
            ktrace = np.sum(H[r].T * H[s])
            info[r, s] = info[s, r] = (ktrace - 2.0 * np.sum(phi * Q[r, s])
                                       + np.sum(phi_P * (P[s] @ phi)))
    condition = np.min(np.abs(np.linalg.eigvalsh(info)))
    W = _symmetric(2.0 * (np.linalg.inv(info) if condition > 1e-10 else np.linalg.pinv(info)))
    U = np.zeros_like(phi)
    for r in range(k - 1):
        for s in range(r + 1, k):
            U += W[r, s] * (Q[r, s] - P[r] @ phi @ P[s])
    U = U + U.T
    for r in range(k):
        U += W[r, r] * (Q[r, r] - P[r] @ phi @ P[r])
    result = KenwardRoger(phi, phi + 2.0 * phi @ U @ phi, P, W)
    try:
        _KR_CACHE[fit] = result
    except TypeError:
        pass
    return result


def _symmetric(A: np.ndarray) -> np.ndarray:
    """Matrix's ``forceSymmetric``: the upper triangle mirrored."""
    return np.triu(A) + np.triu(A, 1).T


def _kr_a1_a2(kr: KenwardRoger, L: np.ndarray) -> tuple[float, float]:
    """The A₁, A₂ sums of Kenward and Roger (pbkrtest's ``Lb_ddf`` / ``.KR_adjust``)."""
    theta = L.T @ np.linalg.solve(L @ kr.phi @ L.T, L)
    theta_phi = theta @ kr.phi
    u = [theta_phi @ Pr @ kr.phi for Pr in kr.P]
    A1 = A2 = 0.0
    for r in range(len(u)):
        for s in range(r, len(u)):
            e = 1.0 if r == s else 2.0
            A1 += e * kr.W[r, s] * np.trace(u[r]) * np.trace(u[s])
            A2 += e * kr.W[r, s] * np.sum(u[r] * u[s].T)
    return A1, A2


def _kr_ddf(A1: float, A2: float, q: int) -> tuple[float, float]:
    """Kenward and Roger's denominator df and F scaling from A₁, A₂."""
    B = (A1 + 6.0 * A2) / (2.0 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    denom = 3.0 * q + 2.0 * (1.0 - g)
    c1, c2, c3 = g / denom, (q - g) / denom, (q + 2 - g) / denom
    V0 = 1.0 + c1 * B
    V0 = 0.0 if abs(V0) < 1e-10 else V0
    V1, V2 = 1.0 - c2 * B, 1.0 - c3 * B
    ratio = 1.0 if abs(1.0 - A2 / q) < 1e-14 and abs(V1) < 1e-14 else (1.0 - A2 / q) / V1
    rho = ratio**2 * V0 / (q * V2)
    df2 = 4.0 + (q + 2) / (q * rho - 1.0)
    scaling = 1.0 if abs(df2 - 2.0) < 0.01 else df2 * (1.0 - A2 / q) / (df2 - 2.0)
    return df2, scaling


def contest1d_kr(fit, L: np.ndarray) -> dict[str, float]:
    """lmerTest's ``contest1D`` with ``ddf = "Kenward-Roger"`` (pbkrtest's ``Lb_ddf``)."""
    kr = kenward_roger(fit)
    L = np.asarray(L, float).ravel()
    estimate = float(L @ np.asarray(fit.fixef, float))
    var_con = float(L @ kr.phi_adj @ L)
    ddf, _ = _kr_ddf(*_kr_a1_a2(kr, L[None, :]), 1)
    t = estimate / np.sqrt(var_con)
    return {"Estimate": estimate, "Std. Error": float(np.sqrt(var_con)), "df": float(ddf),
            "t value": float(t), "Pr(>|t|)": float(2.0 * t_sf(abs(t), ddf))}


def contest_md_kr(fit, L: np.ndarray) -> dict[str, float] | None:
    """lmerTest's ``contestMD`` with ``ddf = "Kenward-Roger"`` (pbkrtest's ``KRmodcomp``)."""
    L = np.atleast_2d(np.asarray(L, float))
    if L.shape[0] == 0:
        return None
    kr = kenward_roger(fit)
    q = int(np.linalg.matrix_rank(L))
    ddf, scaling = _kr_ddf(*_kr_a1_a2(kr, L), q)
    Lb = L @ np.asarray(fit.fixef, float)
    wald = float(Lb @ np.linalg.solve(L @ kr.phi_adj @ L.T, Lb))
    row = f_test_row(wald / q, q, ddf, fit.sigma)
    row["F value"] = wald / q * scaling
    row["Pr(>F)"] = float(f_sf(row["F value"], q, ddf))
    return row
