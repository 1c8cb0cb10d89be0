"""R's ``splines::bs`` and ``splines::ns``, keeping their knots for new data.

Both are stateful transforms (formulaic's protocol): the first evaluation,
on the data fitted, chooses the knots (quantiles of ``x`` for ``df``) and
boundary knots (``range(x)``) and stores them in ``_state``; a later
evaluation, on new rows, reuses them, as R's ``predvars`` do
(``bs(Days, degree = 3L, knots = numeric(0), Boundary.knots = c(0, 9))``).
Values outside the boundary knots are extrapolated as R does: ``bs``
continues the end polynomial pieces, ``ns`` is linear beyond them.
Missing values stay missing.

Examples
--------
>>> import numpy as np
>>> state = {}
>>> ns(np.arange(10.0), df=3, _state=state).shape, state["knots"]
((10, 3), [3.0, 6.0])
>>> bs(np.array([0.0, 4.5, 9.0]), _state={}).round(3).tolist()[1]
[0.375, 0.375, 0.125]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import qr

from ._compat import stateful

__all__ = ["bs", "ns"]


def _design(knots: np.ndarray, x: np.ndarray, order: int, deriv: int = 0) -> np.ndarray:
    """R's ``splineDesign(knots, x, order, derivs)``: every B-spline (or its derivative) at *x*.

    Outside the knots the end polynomial pieces continue (``bs``'s extrapolation).
    """
    from scipy.interpolate import BSpline

    count = len(knots) - order
    spline = BSpline(knots, np.eye(count), order - 1, extrapolate=True)
    return spline(x, nu=deriv).reshape(len(x), count)


def _knots_state(x: np.ndarray, df: Any, knots: Any, free: int, boundary: Any,
                 state: dict) -> tuple[list[float], list[float]]:
    """The interior and boundary knots: from *state* when set, else chosen as R chooses them.

    *free* is the number of interior knots that ``df`` asks for, less ``df``.
    """
    if "boundary" not in state:
        chosen = [float(np.min(x)), float(np.max(x))] if boundary is None \
            else sorted(float(b) for b in np.atleast_1d(boundary))
        inside = x[(x >= chosen[0]) & (x <= chosen[1])]
        if knots is not None:
            interior = [float(k) for k in np.atleast_1d(knots)]
        elif df is not None:
            count = max(int(df) + free, 0)
            probs = np.linspace(0.0, 1.0, count + 2)[1:-1]
            interior = np.quantile(inside, probs).tolist() if count else []  # R's type 7
        else:
            interior = []
        state["knots"], state["boundary"] = sorted(interior), chosen
    return state["knots"], state["boundary"]


def _present(x: Any) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(x, dtype=float).reshape(-1)
    return values, ~np.isnan(values)


def _with_missing(basis: np.ndarray, present: np.ndarray) -> np.ndarray:
    out = np.full((len(present), basis.shape[1]), np.nan)
    out[present] = basis
    return out


@stateful
def bs(x: Any, df: Any = None, knots: Any = None, degree: int = 3, intercept: bool = False,
       Boundary_knots: Any = None, _state: dict = {}) -> np.ndarray:  # noqa: B006, N803 (R's names)
    """R's ``bs``: the B-spline basis of a polynomial spline of *degree*."""
    values, present = _present(x)
    order = int(degree) + 1
    interior, boundary = _knots_state(values[present], df, knots, -order + (1 - bool(intercept)),
                                      Boundary_knots, _state)
    all_knots = np.sort(np.r_[np.repeat(boundary, order), interior])
    basis = _design(all_knots, values[present], order)
    return _with_missing(basis if intercept else basis[:, 1:], present)


@stateful
def ns(x: Any, df: Any = None, knots: Any = None, intercept: bool = False,
       Boundary_knots: Any = None, _state: dict = {}) -> np.ndarray:  # noqa: B006, N803 (R's names)
    """R's ``ns``: the B-spline basis of a natural cubic spline (linear beyond the boundary knots)."""
    values, present = _present(x)
    interior, boundary = _knots_state(values[present], df, knots, -1 - bool(intercept),
                                      Boundary_knots, _state)
    all_knots = np.sort(np.r_[np.repeat(boundary, 4), interior])
    xs = values[present]
    basis = _design(all_knots, xs, 4)
    for edge, outside in ((boundary[0], xs < boundary[0]), (boundary[1], xs > boundary[1])):
        if outside.any():  # R: the tangent line at the boundary knot
            point = np.array([edge])
            value, slope = _design(all_knots, point, 4), _design(all_knots, point, 4, 1)
            basis[outside] = value + (xs[outside] - edge)[:, None] * slope
    const = _design(all_knots, np.asarray(boundary, float), 4, 2)
    if not intercept:
        const, basis = const[:, 1:], basis[:, 1:]
    q, _ = qr(const.T)  # R: t(qr.qty(qr(t(const)), t(basis)))[, -(1:2)]
    return _with_missing((basis @ q)[:, 2:], present)
