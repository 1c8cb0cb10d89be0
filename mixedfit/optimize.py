"""Minimizing the profiled deviance over θ, and the record of how it went.

The default optimizer is BOBYQA from NLopt, the one lme4's default
``nloptwrap`` calls, with the settings lme4 ends up with: its own
``xtol_abs = ftol_abs = 1e-8`` and nloptr's default ``xtol_rel = 1e-4``
(nloptr adds it silently), so that fits follow lme4's path.  After the optimizer stops, the gradient
and Hessian are estimated by central differences as lme4 does, for its
convergence checks (the Hessian's cross terms in half of lme4's evaluations:
``finite_derivatives``).  Where the exact gradient is cheap, θ is minimized by
L-BFGS-B on it instead (``lbfgs``; ``MixedModel.optimize`` says where), and the
checks read the exact gradient and a Hessian from its differences
(``gradient_derivatives``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Hashable

import nlopt
import numpy as np

from .theta import canonical

__all__ = ["OptSummary", "bobyqa_setup", "bobyqa", "lbfgs", "finite_derivatives", "gradient_derivatives"]


@dataclass
class OptSummary:
    """What the optimizer was given and what it returned.

    Attributes
    ----------
    optimizer : str
        Name of the optimizer (lme4's default is reported as ``"nloptwrap"``).
    initial, lower : ndarray
        Start and lower bounds of θ (lme4's order).
    final : ndarray
        θ at the optimum.
    fmin : float
        Objective at the optimum (deviance for ML, REML criterion for REML).
    feval : int
        Objective evaluations used by the optimizer.
    code : int
        0 when the optimizer met its tolerances, nonzero otherwise.
    message : str
        The optimizer's own words on why it stopped.
    xtol_abs, ftol_abs, xtol_rel : float
        BOBYQA's tolerances; 0 after L-BFGS-B, which stops on its own (``lbfgs``).
    gradient, hessian : ndarray
        The derivatives of the objective at ``final`` that lme4's checks read:
        central differences of the objective (``finite_derivatives``), or, after
        L-BFGS-B, the exact gradient and forward differences of it
        (``gradient_derivatives``).  After a polish step of at most 1e-3 (see
        ``MixedModel._polish``), the central-difference Hessian's off-diagonal
        entries are those at the point before the step.
    """

    optimizer: str
    initial: np.ndarray
    lower: np.ndarray
    final: np.ndarray
    fmin: float
    feval: int
    code: int
    message: str
    xtol_abs: float = 1e-8
    ftol_abs: float = 1e-8
    xtol_rel: float = 1e-4
    maxeval: int = 100_000
    gradient: np.ndarray = field(default_factory=lambda: np.empty(0))
    hessian: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))


_NLOPT_MESSAGES = {
    nlopt.SUCCESS: "success",
    nlopt.STOPVAL_REACHED: "stopval reached",
    nlopt.FTOL_REACHED: "ftol_abs or ftol_rel reached",
    nlopt.XTOL_REACHED: "xtol_abs or xtol_rel reached",
    nlopt.MAXEVAL_REACHED: "maxeval reached",
    nlopt.MAXTIME_REACHED: "maxtime reached",
}


# What NLopt raises where nloptr returns an error status: NLopt 2.11's Python
# exceptions (invalid_argument, runtime_error, ...) derive from nlopt.exception,
# no longer from ValueError / RuntimeError as before.
NLOPT_ERRORS: tuple[type[BaseException], ...] = (nlopt.exception, ValueError, RuntimeError)


def bobyqa_setup(
    f: Callable[[np.ndarray, np.ndarray], float],
    start: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray | None = None,
    *,
    xtol_abs: float = 1e-8,
    ftol_abs: float = 1e-8,
    xtol_rel: float = 0.0,
    maxeval: int = 100_000,
) -> tuple[nlopt.opt, np.ndarray]:
    """NLopt's BOBYQA minimizing ``f`` in the box [lower, upper], and the start moved into it.

    A start on a bound often comes out of a transformation a rounding error
    beyond it (a correlation of ±1 as 1.0000000000000002); NLopt refuses such
    a start with ``invalid_argument``, so it is put back on the bound.

    Examples
    --------
    >>> opt, x0 = bobyqa_setup(lambda x, g: float(x @ x), np.array([1.0 + 2**-52]),
    ...                        np.array([-1.0]), np.array([1.0]))
    >>> x0.tolist(), round(float(opt.optimize(x0)[0]), 6)
    ([1.0], 0.0)
    """
    lo = np.where(np.isfinite(lower), lower, -np.inf).astype(float)
    hi = np.full(lo.size, np.inf) if upper is None else np.asarray(upper, float)
    opt = nlopt.opt(nlopt.LN_BOBYQA, lo.size)
    opt.set_min_objective(f)
    opt.set_lower_bounds(lo)
    opt.set_upper_bounds(hi)
    opt.set_xtol_abs(xtol_abs)
    opt.set_ftol_abs(ftol_abs)
    opt.set_xtol_rel(xtol_rel)
    opt.set_maxeval(maxeval)
    return opt, np.clip(np.asarray(start, float), lo, hi)


def bobyqa(
    objective: Callable[[np.ndarray], float],
    start: np.ndarray,
    lower: np.ndarray,
    *,
    xtol_abs: float = 1e-8,
    ftol_abs: float = 1e-8,
    xtol_rel: float = 1e-4,
    maxeval: int = 100_000,
    initial_step: np.ndarray | None = None,
) -> OptSummary:
    """Minimize ``objective`` from ``start`` subject to ``θ ≥ lower`` by NLopt's BOBYQA.

    ``initial_step`` sets NLopt's first steps, per parameter (default: NLopt's own).

    Examples
    --------
    >>> r = bobyqa(lambda x: float((x[0] - 2.0) ** 2 + 1.0), np.array([1.0]), np.array([0.0]))
    >>> round(float(r.final[0]), 6), r.fmin
    (2.0, 1.0)
    """
    count = 0

    def f(x: np.ndarray, grad: np.ndarray) -> float:
        nonlocal count
        count += 1
        return objective(x)

    opt, x0 = bobyqa_setup(f, start, lower, xtol_abs=xtol_abs, ftol_abs=ftol_abs, xtol_rel=xtol_rel,
                           maxeval=maxeval)
    if initial_step is not None:
        opt.set_initial_step(np.asarray(initial_step, float))
    code = 0
    try:
        x = opt.optimize(x0)
        fmin = opt.last_optimum_value()  # the objective at x, as evaluated there
        result = opt.last_optimize_result()
        message = _NLOPT_MESSAGES.get(result, str(result))
        if result == nlopt.MAXEVAL_REACHED:
            code = 5
    except nlopt.RoundoffLimited:
        x = opt.last_optimum_x() if hasattr(opt, "last_optimum_x") else start
        message = "roundoff limited"
        fmin = objective(x)
    return OptSummary(
        optimizer="nloptwrap",
        initial=start.copy(),
        lower=lower.copy(),
        final=np.asarray(x, float),
        fmin=float(fmin),
        feval=count,
        code=code,
        message=message,
        xtol_abs=xtol_abs,
        ftol_abs=ftol_abs,
        xtol_rel=xtol_rel,
        maxeval=maxeval,
    )


# L-BFGS-B's tolerances: the decrease relative to the objective and the gradient's largest entry
# where it stops.  Tighter ones cost calls (Oxboys 23 → 45, the same optimum to 1e-10) and
# what they would gain is the polish's to find, after lme4's derivative check.
_LBFGS_FTOL = 1e-12
_LBFGS_GTOL = 1e-6


class _OutOfEvaluations(Exception):
    """Raised inside ``lbfgs``'s objective once ``maxeval`` calls are spent."""


def lbfgs(
    objective_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]],
    start: np.ndarray,
    lower: np.ndarray,
    *,
    maxeval: int = 100_000,
) -> OptSummary:
    """Minimize from ``start`` by scipy's L-BFGS-B on the exact gradient, over θ without its bounds.

    θ's only bounds hold its templates' diagonals at 0 or above, and ΛΛᵀ does
    not change when a column of Λ changes sign; so the bounds are dropped and
    a column whose diagonal ends negative is flipped back (``canonical``).
    With the bounds, L-BFGS-B stopped at saddles where a diagonal lay on 0
    and the gradient along it vanished by that symmetry (Hsb82 0.17 above
    lme4's optimum: ``benchmarks/optimizers.py``).  ``objective_and_gradient``
    returns ``inf`` where θ gives no factor; ``feval`` counts its calls.

    Examples
    --------
    >>> r = lbfgs(lambda x: (float((x[0] - 2.0) ** 2 + 1.0), 2.0 * (x - 2.0)), np.array([1.0]), np.array([0.0]))
    >>> round(float(r.final[0]), 6), r.fmin
    (2.0, 1.0)
    """
    from scipy.optimize import minimize

    count, best = 0, (np.inf, np.asarray(start, float))
    last: tuple[bytes, np.ndarray] | None = None  # the gradient at the θ evaluated last

    def f(x: np.ndarray) -> float:
        nonlocal count, best, last
        if count >= maxeval:  # scipy checks its budget only between iterations
            raise _OutOfEvaluations
        count += 1
        value, gradient = objective_and_gradient(x)
        if not np.isfinite(value):
            value, gradient = np.inf, np.zeros_like(x)
        elif value < best[0]:
            best = value, x.copy()
        last = x.tobytes(), gradient
        return value

    def jac(x: np.ndarray) -> np.ndarray:
        # scipy asks for the gradient where it has just evaluated f: given separately, it skips
        # jac=True's memoizing layer (its comparisons and copies, 5-10% of a small fit's L-BFGS-B)
        if last is None or last[0] != x.tobytes():
            f(x)
        return last[1]

    try:
        result = minimize(f, np.asarray(start, float), jac=jac, method="L-BFGS-B",
                          options={"ftol": _LBFGS_FTOL, "gtol": _LBFGS_GTOL, "maxfun": maxeval, "maxiter": maxeval})
        x, fmin, message, stopped = result.x, float(result.fun), str(result.message), result.status == 1
    except _OutOfEvaluations:
        (fmin, x), message, stopped = best, _NLOPT_MESSAGES[nlopt.MAXEVAL_REACHED], True
    final = canonical(x, lower)
    if np.isfinite(fmin) and not np.array_equal(final, x):
        count += 1  # the objective reported is the one at θ as returned (the same ΛΛᵀ, not always the same bits)
        fmin = float(objective_and_gradient(final)[0])
    return OptSummary(
        optimizer="L-BFGS-B",
        initial=start.copy(),
        lower=lower.copy(),
        final=final,
        fmin=fmin,
        feval=count,
        code=5 if stopped else 0,
        message=message,
        xtol_abs=0.0,
        ftol_abs=0.0,
        xtol_rel=0.0,
        maxeval=maxeval,
    )


def finite_derivatives(
    objective: Callable[[np.ndarray], float],
    x: np.ndarray,
    fx: float,
    delta: float = 1e-4,
    cross: np.ndarray | None = None,
    drift: float | None = None,
    paired: bool = False,
    group: Callable[[np.ndarray], Hashable] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian by central differences, as lme4's ``deriv12`` computes them.

    lme4 calls ``deriv12`` without bounds, so steps may cross a lower bound of θ;
    the deviance is defined there, and the same is done here.

    The gradient and the diagonal come from the steps ±δ along each axis.
    Each off-diagonal entry takes ``deriv12``'s four steps ±δeᵢ ±δeⱼ, or with
    ``paired`` the two steps ±δ(eᵢ + eⱼ)::

        Hᵢⱼ = [f(x + δ(eᵢ+eⱼ)) + f(x − δ(eᵢ+eⱼ)) − 2f(x)] / (2δ²) − (Hᵢᵢ + Hⱼⱼ)/2

    which is, like the four-point stencil, exact on a quadratic and accurate
    to O(δ²): 2n + n(n − 1) evaluations for n parameters instead of 2n².

    ``cross``, a Hessian from a point close by, supplies the off-diagonal
    entries as they are: then only the 2n steps along the axes are evaluated
    (gradient and diagonal), not the whole stencil.  With ``drift``
    as well, they are kept only while the new diagonal is within ``drift``
    times its largest entry of ``cross``'s; where it moved more, so may have
    the rest, and the whole stencil is evaluated.

    ``group`` names, for a point, work that the objective keeps from one
    evaluation to the next (a model keeps its last few first-term
    eliminations): the points of the axes, and then those of the pairs, are
    evaluated group by group, so that the points sharing that work come one
    after another.  The order changes no value.

    Examples
    --------
    >>> g, H = finite_derivatives(lambda x: float(x @ x), np.array([1.0, 2.0]), 5.0)
    >>> np.round(g, 6).tolist(), np.round(np.diag(H), 6).tolist()
    ([2.0, 4.0], [2.0, 2.0])
    """
    n = x.size
    grad = np.empty(n)
    hess = np.empty((n, n)) if cross is None else cross.copy()

    def values(stencil: list[dict[int, float]]) -> list[float]:
        points = [x.copy() for _ in stencil]
        for z, steps in zip(points, stencil):
            for i, s in steps.items():
                z[i] += s
        out = [0.0] * len(points)
        for k in _grouped_order(points, group):
            out[k] = objective(points[k])
        return out

    along = values([{j: s} for j in range(n) for s in (delta, -delta)])
    for j in range(n):
        fadd, fsub = along[2 * j], along[2 * j + 1]
        hess[j, j] = (fadd - 2.0 * fx + fsub) / delta**2
        grad[j] = (fadd - fsub) / (2.0 * delta)
    if cross is not None and (drift is None or _within(np.diagonal(hess), np.diagonal(cross), drift)):
        return grad, hess
    pairs = [(i, j) for j in range(n) for i in range(j)]
    signs = ((1.0, 1.0), (-1.0, -1.0)) if paired else ((1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0))
    f = iter(values([{i: a * delta, j: b * delta} for i, j in pairs for a, b in signs]))
    for i, j in pairs:
        if paired:
            both = (next(f) + next(f) - 2.0 * fx) / (2.0 * delta**2)
            hess[i, j] = hess[j, i] = both - 0.5 * (hess[i, i] + hess[j, j])
        else:
            pp, pm, mp, mm = next(f), next(f), next(f), next(f)
            hess[i, j] = hess[j, i] = (pp - pm - mp + mm) / (4.0 * delta**2)
    return grad, hess


def _grouped_order(points: list[np.ndarray], group: Callable[[np.ndarray], Hashable] | None) -> list[int]:
    """The points' indices, those of one group together, the groups in the order they first appear."""
    if group is None:
        return list(range(len(points)))
    first: dict[Hashable, int] = {}
    keys = [first.setdefault(group(z), len(first)) for z in points]
    return sorted(range(len(points)), key=keys.__getitem__)


def _within(new: np.ndarray, old: np.ndarray, drift: float) -> bool:
    """Whether ``new`` differs from ``old`` by at most ``drift`` times ``new``'s largest magnitude, everywhere."""
    return bool(np.all(np.abs(new - old) <= drift * np.max(np.abs(new), initial=0.0)))


# Step of gradient_derivatives' forward differences: their error is O(δ), and at
# 1e-6 it is below lme4's stencil's at 1e-4 on every model measured (the smallest
# Hessian eigenvalue, against Richardson's extrapolation of central differences:
# Oxboys 7e-7 relative, where lme4's stencil is 2.3e-2 off; Machines 7e-7, 5e-4;
# a (0 + f|g) on 3,000 groups 1.4e-6, 8.6e-6), and still far above the rounding
# of the gradient's differences.
_GRADIENT_STEP = 1e-6


def gradient_derivatives(
    objective_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x: np.ndarray,
    delta: float = _GRADIENT_STEP,
) -> tuple[np.ndarray, np.ndarray]:
    """The exact gradient at ``x``, and the Hessian by forward differences of it (symmetrized).

    n + 1 gradients for n parameters, where ``finite_derivatives`` takes
    n² + n + 1 objectives: where a gradient costs a few objectives, the
    cheaper for five θ or more (a (0 + f|g) with 10 θ on 3,000 groups: its
    optimization, the check included, 72–83 → 45–58 ms), and more accurate
    (see ``_GRADIENT_STEP``).  Steps go up from ``x``, so none crosses a
    lower bound of θ from it.  Where a step's objective is not finite, its
    column of the Hessian is NaN, which lme4's Hessian check reports.

    Examples
    --------
    >>> g, H = gradient_derivatives(lambda x: (float(x @ x + x[0] * x[1]), 2.0 * x + x[::-1]), np.array([1.0, 2.0]))
    >>> g.tolist(), np.round(H, 6).tolist()
    ([4.0, 5.0], [[2.0, 1.0], [1.0, 2.0]])
    """
    _, grad = objective_and_gradient(x)
    n = x.size
    J = np.empty((n, n))
    for j in range(n):
        step = x.copy()
        step[j] += delta
        value, moved = objective_and_gradient(step)
        J[:, j] = (moved - grad) / delta if np.isfinite(value) else np.nan
    return np.asarray(grad, float).copy(), 0.5 * (J + J.T)
