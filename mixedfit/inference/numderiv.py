"""Numerical derivatives as R's numDeriv computes them (Richardson extrapolation).

lmerTest and the information-matrix intervals take their Hessians and
Jacobians from numDeriv; using the same steps and extrapolation reproduces
their numbers.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["richardson_hessian", "richardson_jacobian"]

_ZERO_TOL = float(np.sqrt(np.finfo(float).eps / 7e-7))  # numDeriv's zero.tol

def _steps(x: np.ndarray, d: float, eps: float = 1e-4) -> np.ndarray:
    """numDeriv's first step: ``|d·x|``, or ``eps`` where x is (nearly) zero."""
    return np.abs(d * x) + eps * (np.abs(x) < _ZERO_TOL)


def _richardson(a: list, r: int = 4):
    """numDeriv's Richardson extrapolation of r estimates at halving steps."""
    a = list(a)
    for m in range(1, r):
        a = [(a[k + 1] * 4.0**m - a[k]) / (4.0**m - 1.0) for k in range(r - m)]
    return a[0]


def richardson_hessian(f: Callable[[np.ndarray], float], x: np.ndarray, d: float = 0.1,
                       r: int = 4) -> np.ndarray:
    """Hessian of a scalar function exactly as ``numDeriv::hessian`` computes it.

    Examples
    --------
    >>> richardson_hessian(lambda v: v[0] ** 2 * v[1], np.array([1.0, 2.0])).round(8)
    array([[4., 2.],
           [2., 0.]])
    """
    x = np.asarray(x, float)
    n = x.size
    f0 = f(x)
    h0 = _steps(x, d)
    eye = np.eye(n)
    diag = np.empty(n)
    for i in range(n):
        h, est = h0.copy(), []
        for _ in range(r):
            f1, f2 = f(x + eye[i] * h), f(x - eye[i] * h)
            est.append((f1 - 2.0 * f0 + f2) / h[i] ** 2)
            h = h / 2.0
        diag[i] = _richardson(est, r)
    H = np.diag(diag)
    for i in range(n):
        for j in range(i):
            h, est = h0.copy(), []
            for _ in range(r):
                step = eye[i] * h + eye[j] * h
                f1, f2 = f(x + step), f(x - step)
                est.append((f1 - 2.0 * f0 + f2 - diag[i] * h[i] ** 2 - diag[j] * h[j] ** 2)
                           / (2.0 * h[i] * h[j]))
                h = h / 2.0
            H[i, j] = H[j, i] = _richardson(est, r)
    return H


def richardson_jacobian(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, d: float = 1e-4,
                        r: int = 4) -> np.ndarray:
    """Jacobian (one column per element of x) as ``numDeriv::jacobian`` computes it.

    Examples
    --------
    >>> richardson_jacobian(lambda v: np.array([v[0] * v[1], v[1] ** 3]), np.array([2.0, 1.0])).round(8)
    array([[1., 2.],
           [0., 3.]])
    """
    x = np.asarray(x, float)
    n = x.size
    h = _steps(x, d)
    eye = np.eye(n)
    est: list[list[np.ndarray]] = [[] for _ in range(n)]
    for _ in range(r):
        for i in range(n):
            diff = np.asarray(f(x + h * eye[i])) - np.asarray(f(x - h * eye[i]))
            est[i].append(np.ravel(diff) / (2.0 * h[i]))
        h = h / 2.0
    return np.column_stack([_richardson(e, r) for e in est])
