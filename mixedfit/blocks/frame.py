"""The exact change of variables in which the cross products of X and y are formed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from ..terms import RANK_TOLERANCE, tall_r_factor

__all__ = ["Frame", "least_squares", "subtract_columns", "gains"]


# Least ratio of a column's squared norm to that of what a change of variables
# leaves of it (its deviations from the mean; y's least squares residual) for
# the change to be made (see Frame).  Below it the factor loses at most about
# a hundred rounding units, and the data are used as they are.
_GAIN = 100.0


def gains(before: np.ndarray | float, after: np.ndarray | float) -> np.ndarray:
    """Where ‖·‖² ``before`` exceeds ``_GAIN`` times ``after``."""
    return np.asarray(before) > _GAIN * np.asarray(after)


@dataclass
class Frame:
    """The exact change of variables in which the cross products of X and y are formed.

    r² is read off a Cholesky factor of ``[Z X y]ᵀW[Z X y]``: it is what is left
    of ``yᵀWy`` once the fixed and random effects have taken their share, and
    it keeps only the digits that ``yᵀWy`` had beyond that share.  A response
    of mean 1e6 and unit noise leaves 1e-12 of it, near double precision's
    last digit (lme4 sums the squared residuals themselves).  Likewise an X
    column whose mean dwarfs its spread (epoch times, map coordinates) leaves
    little of its own square to the factor once the intercept is eliminated.
    So the cross products are those of

    * ``X̃ = X T = X − x_k cᵀ``: a column whose squared norm exceeds ``_GAIN``
      times that of its deviations from its mean is centered (``centers``; zero
      on the others and on ``intercept``, the column x_k of ones along which
      they are centered; none without an intercept);
    * ``ỹ = y − offset − X̃ b``: the residual of the data's own weighted least
      squares fit (``beta``), where y's squared norm exceeds ``_GAIN`` times
      that residual's (b = 0 otherwise).  Its terms are subtracted largest
      first, so that a shift of y or of a column cancels exactly.

    Any c and b give the same model: θ, σ, the random effects, r², and the
    objective (T has determinant 1, so REML's log|R_X|² too) do not change,
    and the fixed effects of ỹ on X̃ are γ = T⁻¹β − b: β = T(γ + b) and
    vcov(β) = T vcov(γ) Tᵀ (``coefficients``, ``rx_inverse``).
    Data whose columns are of their spread's scale (most) are used as they are.

    Examples
    --------
    >>> X = np.column_stack([np.ones(4), 1e9 + np.arange(4.0)])
    >>> frame, Xt, yt = Frame.of_data(X, 1e12 + 2.0 * np.arange(4.0) + [0, 1, 0, 0], None, 0)
    >>> frame.centers.tolist(), Xt[:, 1].tolist(), bool(np.abs(yt).max() < 1)
    ([0.0, 1000000001.5], [-1.5, -0.5, 0.5, 1.5], True)
    >>> gamma = least_squares(Xt, yt)[0]  # what the engine finds: the fixed effects of ỹ on X̃
    >>> (yt - Xt @ gamma).round(12).tolist(), frame.coefficients(gamma).round(9).tolist()
    ([-0.4, 0.7, -0.2, -0.1], [998100000000.4, 1.9])
    """

    centers: np.ndarray
    beta: np.ndarray
    intercept: int | None = None

    @classmethod
    def identity(cls, p: int) -> "Frame":
        """X and y as they are."""
        return cls(np.zeros(p), np.zeros(p))

    @classmethod
    def of_data(cls, X: np.ndarray, target: np.ndarray, sw: np.ndarray | None,
                intercept: int | None, r: np.ndarray | None = None) -> tuple["Frame", np.ndarray, np.ndarray]:
        """The frame of these rows (``target`` = y − offset, ``sw`` = √w or None), with X̃ and ỹ.

        ``r``: R of the QR of ``[X, target]`` where the caller has it (``Design.xy_r``),
        read where neither weights nor centering change those columns.
        """
        n, p = X.shape
        centers = np.zeros(p)
        if intercept is not None and n:
            means = X.sum(axis=0) / n
            squares = np.einsum("ij,ij->j", X, X)
            # ‖x − x̄‖² as ‖x‖² − n x̄²: its cancellation only blurs ratios far above _GAIN
            centered = gains(squares, squares - n * means * means)
            centered[intercept] = False
            centers[centered] = means[centered]
        Xt = X
        if np.any(centers):
            Xt = X.copy()
            Xt[:, centers != 0] -= np.outer(X[:, intercept], centers[centers != 0])
        beta, before, after = least_squares(Xt, target, sw, r if Xt is X and sw is None else None)
        if not gains(before, after):
            return cls(centers, np.zeros(p), intercept), Xt, target
        return cls(centers, beta, intercept), Xt, subtract_columns(target, Xt, beta)

    def coefficients(self, gamma: np.ndarray) -> np.ndarray:
        """β = T(γ + b) from the fixed effects γ of ỹ on X̃."""
        beta = gamma + self.beta
        if self.intercept is not None:
            beta[self.intercept] -= self.centers @ beta
        return beta

    def rx_inverse(self, inverse: np.ndarray) -> np.ndarray:
        """``R⁻¹Tᵀ`` from the R⁻¹ of X̃, so that vcov(β) = σ² (R⁻¹Tᵀ)ᵀ(R⁻¹Tᵀ)."""
        if self.intercept is None or not np.any(self.centers):
            return inverse
        out = inverse.copy()
        out[:, self.intercept] -= inverse @ self.centers
        return out

    def change_to(self, other: "Frame") -> np.ndarray:
        """K with ``[X̃ ỹ]`` of ``other`` = ``[X̃ ỹ]`` of this frame times K, both (p + 1) columns.

        The columns of X move by the difference of the centers, along the
        intercept column; ỹ by X̃δ, δ = (b' − b) − e_k (c' − c)ᵀb', formed
        from the differences so that two frames of similar rows give a K near I.
        """
        along = {f.intercept for f in (self, other) if np.any(f.centers)}
        if len(along) > 1:
            raise ValueError("frames centered along different columns")
        p = self.beta.size
        shift = other.centers - self.centers
        delta = other.beta - self.beta
        K = np.eye(p + 1)
        if along:
            k = along.pop()
            K[k, :p] -= shift
            delta[k] -= shift @ other.beta
        K[:p, p] = -delta
        return K

    def columns(self, keep: list[int]) -> "Frame":
        """The frame of X's columns ``keep`` alone (the others must have b = 0, and the intercept be kept)."""
        return Frame(self.centers[keep], self.beta[keep],
                     None if self.intercept is None else list(keep).index(self.intercept))


def least_squares(X: np.ndarray, target: np.ndarray, sw: np.ndarray | None = None,
                  R: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """b minimizing ‖√w (target − Xb)‖, by a QR of [X target] (``R``: its R, where the caller
    has it); over X's columns scaled to unit norm, directions of singular value below lme4's
    rank tolerance (1e-7) are left out.  With b, the squared norms of √w target and of its
    least squares residual, off R.

    The rows of one partition may hold X rank deficient (a factor's level
    missing, a predictor constant), or nearly so: a fit along those directions
    would cancel huge terms (b of 1e10 and −5e9 for x and 2x), and ỹ would
    keep their rounding.

    Examples
    --------
    >>> b, before, after = least_squares(np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]]), np.array([1.0, 3.0, 6.0]))
    >>> b.round(12).tolist(), round(before, 12), round(after, 12)
    ([0.833333333333, 2.5], 46.0, 0.166666666667)
    """
    n, p = X.shape
    if n == 0 or p == 0:
        t = target if sw is None else target * sw
        return np.zeros(p), float(t @ t), float(t @ t)
    if R is None:
        A = np.column_stack([X, target])
        if sw is not None:
            A *= sw[:, None]
        R = tall_r_factor(A)
    norms = np.sqrt(np.einsum("ij,ij->j", R[:, :p], R[:, :p]))
    norms[norms == 0] = 1.0
    scaled = R[:p, :p] / norms
    if R.shape[0] > p and np.all(np.abs(np.diagonal(scaled)) > RANK_TOLERANCE):
        # full rank: a triangular solve, by LAPACK itself (scipy's wrapper costs 0.1 ms)
        b = lapack.dtrtrs(scaled, R[:p, p])[0] / norms
    else:
        b = np.linalg.lstsq(R[:, :p] / norms, R[:, p], rcond=RANK_TOLERANCE)[0] / norms
    return b, float(R[:, p] @ R[:, p]), float(R[p:, p] @ R[p:, p])


def subtract_columns(target: np.ndarray, X: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``target − Xb``, the largest terms first.

    A term that carries target's leading digits (an intercept near a large
    mean) then cancels them exactly, before the smaller terms are rounded
    to target's scale; a matrix product would round the sum to the terms'.

    Examples
    --------
    >>> X = np.column_stack([np.ones(2), [0.25, 0.5]])
    >>> subtract_columns(np.array([1e12 + 0.25, 1e12 + 0.75]), X, np.array([1e12, 1.0])).tolist()
    [0.0, 0.25]
    """
    out = np.array(target, dtype=float, copy=True)
    if not X.size:
        return out
    size = np.abs(b) * np.abs(X).max(axis=0)
    for j in np.argsort(-size, kind="stable"):
        if b[j] != 0:
            out -= X[:, j] * b[j]
    return out
