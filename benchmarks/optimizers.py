"""Other optimizers against lme4's BOBYQA, on every lme4 fixture model (see RESULTS_gradient.md).

Run from the repository root::

    PYTHONPATH=$PWD python benchmarks/optimizers.py

Issue 21 asks whether an analytic gradient, or NEWUOA on unconstrained θ (as
MixedModels.jl v5 does), would take fewer evaluations than BOBYQA without a
worse optimum.  θ unconstrained: a template column's sign is free (ΛΛᵀ does
not change when a column of Λ flips), so the bounds θ_jj ≥ 0 can be dropped
and the optimum mapped back by flipping the columns whose diagonal is
negative (``canonical``).  Two tables, from lme4's start:

* one optimizer run, no restarts, no check: BOBYQA with lme4's settings
  (what ``MixedModel.optimize`` runs first on most models), NEWUOA on unconstrained θ with the
  same tolerances, and scipy's L-BFGS-B on ``MixedModel.objective_and_gradient``
  with θ's bounds and without them;
* whole optimizations: ``MixedModel.optimize`` (BOBYQA, or L-BFGS-B where
  ``MixedModel._gradient_first`` says so, then restarts, lme4's derivative
  check, on the exact gradient there, and the polish) against L-BFGS-B on
  unconstrained θ followed by the same restarts, check and polish
  (``gradient_first``).

Evaluations count objective calls; L-BFGS-B's and the exact-gradient check's
count objective+gradient calls (each costs 3-9 objectives:
``gradient_sweep.py``).  "Δ": objective minus
lme4's.  Times are one run on a shared machine: read them within a row.
"""

from __future__ import annotations

import contextlib
import time
import warnings

import nlopt
import numpy as np
from scipy.optimize import minimize

from gradient_sweep import cases, model_of
from mixedfit.model import MixedModel
from mixedfit.optimize import OptSummary, bobyqa
from mixedfit.theta import canonical


class Counted:
    """The model's objective and objective+gradient, counting calls; inf (and a zero gradient) where θ has no factor."""

    def __init__(self, model: MixedModel):
        self.model, self.values, self.gradients = model, 0, 0
        # the methods themselves: callers may put ``objective`` and ``_objective_and_gradient`` in their place
        self._objective, self._inner = model.objective, model._objective_and_gradient

    def objective(self, theta: np.ndarray) -> float:
        self.values += 1
        return self._objective(theta)

    def inner(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The model's own objective+gradient (``inf`` where θ has no factor), counted with ``both``."""
        self.gradients += 1
        return self._inner(theta)

    def both(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        self.gradients += 1
        try:
            value, grad = self.model.objective_and_gradient(theta)
        except (ValueError, np.linalg.LinAlgError):
            return np.inf, np.zeros_like(theta)
        return (value, grad) if np.isfinite(value) else (np.inf, np.zeros_like(theta))


def newuoa_free(model: MixedModel) -> tuple[float, int]:
    """NEWUOA from lme4's start on unconstrained θ, lme4's tolerances: (objective, evaluations)."""
    count = Counted(model)
    opt = nlopt.opt(nlopt.LN_NEWUOA, model.ntheta)
    opt.set_min_objective(lambda x, grad: count.objective(x))
    opt.set_xtol_abs(1e-8)
    opt.set_ftol_abs(1e-8)
    opt.set_xtol_rel(1e-4)
    opt.set_maxeval(100_000)
    if model.ntheta == 1:  # NLopt's NEWUOA needs two or more parameters
        opt = nlopt.opt(nlopt.LN_BOBYQA, 1)
        opt.set_min_objective(lambda x, grad: count.objective(x))
        opt.set_xtol_abs(1e-8)
        opt.set_ftol_abs(1e-8)
        opt.set_xtol_rel(1e-4)
    theta = canonical(opt.optimize(model.start), model.lower)
    return model.objective(theta), count.values


def lbfgsb(model: MixedModel, bounded: bool) -> tuple[np.ndarray, int]:
    """scipy's L-BFGS-B on the exact gradient from lme4's start: (θ in lme4's bounds, objective+gradient calls)."""
    count = Counted(model)
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in model.lower] if bounded else None
    result = minimize(count.both, model.start, jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"ftol": 1e-14, "gtol": 1e-10, "maxiter": 10_000})
    return canonical(np.asarray(result.x, float), model.lower), count.gradients


def gradient_first(model: MixedModel) -> tuple[OptSummary, int, int]:
    """L-BFGS-B on unconstrained θ, then ``MixedModel.optimize``'s restarts, check and polish.

    Returns the optimum, the objective+gradient calls and the objective calls.
    Calls the model's private ``_finish``: a trial of another first optimizer, not an API.
    """
    theta, gradients = lbfgsb(model, bounded=False)
    count = Counted(model)
    with counting(model, count):  # _finish calls them by name: count their calls
        opt = OptSummary(optimizer="L-BFGS-B", initial=model.start.copy(), lower=model.lower.copy(), final=theta,
                         fmin=count.objective(theta), feval=0, code=0, message="")
        opt = model._finish(opt, 100_000)
    return opt, gradients + count.gradients, count.values


@contextlib.contextmanager
def counting(model: MixedModel, count: Counted):
    """Within the context, the model's objective and objective+gradient calls go through ``count``."""
    model.objective, model._objective_and_gradient = count.objective, count.inner
    try:
        yield
    finally:
        del model.objective, model._objective_and_gradient


def timed(call):
    start = time.perf_counter()
    out = call()
    return out, (time.perf_counter() - start) * 1e3


def main() -> None:
    warnings.simplefilter("ignore")
    single, whole = [], []
    for case in cases():
        model = model_of(case)
        lme4 = case["objective"]
        with model.blas_threads():
            bob, bob_ms = timed(lambda: bobyqa(model.objective, model.start, model.lower))
            (newuoa, newuoa_evals), _ = timed(lambda: newuoa_free(model))
            (bounded, bounded_calls), bounded_ms = timed(lambda: lbfgsb(model, bounded=True))
            (free, free_calls), free_ms = timed(lambda: lbfgsb(model, bounded=False))
            count = Counted(model)
            with counting(model, count):
                fit, fit_ms = timed(model.optimize)
            (hybrid, hybrid_grads, hybrid_values), hybrid_ms = timed(lambda: gradient_first(model))
        single.append(f"| {case['id']} | {model.ntheta} | {bob.feval} | {bob_ms:.1f} | {bob.fmin - lme4:.1e} "
                      f"| {newuoa_evals} | {newuoa - lme4:.1e} "
                      f"| {bounded_calls} | {bounded_ms:.1f} | {model.objective(bounded) - lme4:.1e} "
                      f"| {free_calls} | {free_ms:.1f} | {model.objective(free) - lme4:.1e} |")
        whole.append(f"| {case['id']} | {model.ntheta} | {count.gradients} + {count.values} | {fit_ms:.1f} "
                     f"| {fit.fmin - lme4:.1e} "
                     f"| {hybrid_grads} + {hybrid_values} | {hybrid_ms:.1f} | {hybrid.fmin - lme4:.1e} |")
        print(single[-1], flush=True)
    print("\n| case | nθ | BOBYQA evals | ms | Δ | NEWUOA, θ free: evals | Δ | L-BFGS-B, bounds: calls | ms | Δ "
          "| L-BFGS-B, θ free: calls | ms | Δ |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(single))
    print("\n| case | nθ | optimize: calls + evals | ms | Δ | L-BFGS-B θ free, then the check: calls + evals | ms | Δ |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(whole))


if __name__ == "__main__":
    main()
