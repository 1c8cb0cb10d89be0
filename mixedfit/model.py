"""The linear mixed model: its profiled deviance and the fit.

``MixedModel`` holds a ``Design`` and the cross products
built from it once; ``MixedModel.objective`` evaluates lme4's profiled
deviance (ML) or REML criterion at θ, and ``MixedModel.fit`` minimizes it
the way lme4 does and builds the fitted numbers (``mixedfit.fitted.LinearFit``)
or the lme4 face on them (``mixedfit.results.MixedResults``) at the optimum.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import threadpoolctl
from threadpoolctl import ThreadpoolController

from . import cores
from .blocks import CrossBlocks, CrossProducts, Factor
from .blocks.gradient import theta_gradient
from .blocks.whole import WholeFactor, WholeSystem, whole_system
from .errors import ConvergenceWarning, ModelSpecError, SingularFitWarning, require_bool, warn
from .optimize import OptSummary, bobyqa, finite_derivatives, gradient_derivatives, lbfgs
from .terms import Design
from .theta import ThetaLayout, template_positions

__all__ = ["Convergence", "MixedModel", "lme4_start", "check_convergence", "blas_controller", "setup_threads"]

_SINGULAR_TOL = 1e-4  # lme4's isSingular() tolerance
_BOUNDARY_TOL = 1e-5  # lme4's lmerControl(boundary.tol)
_GRAD_TOL = 2e-3  # lme4's check.conv.grad tolerance
_HESS_TOL = 1e-6  # lme4's check.conv.hess tolerance
_SMALL_ROWS = 50_000  # below this many rows a model is set up (design, cross products) single-threaded
# Predicted objective decrease, relative, that warrants a restart.  A tenth of
# the tests' 1e-9: BOBYQA on the 20 parameters of a maximal crossed model
# (benchmarks' sim_maximal) stopped 2e-10 above lme4's optimum, with 2.4e-10
# left to gain; a Newton step took it below lme4's.
_GAP_TOL = 1e-10
# ... and at most this much, absolute: on a deviance of 1e5, 1e-10 relative left
# BOBYQA 4e-6 above the optimum on the benchmarks' nested slopes (x|school/class),
# 8e-7 above lme4's objective; one Newton step took it 3e-6 below lme4's.
_GAP_ABS = 1e-6
# Longest polish step over which the Hessian's off-diagonal entries are kept:
# ten finite-difference steps, or 1e-3 of the θ where that is larger than 1 ...
_NEAR_STEP = 1e-3
# ... and while its re-evaluated diagonal moved by at most this much of its
# largest entry (the whole Hessian moves by as much: Oxboys' (age + I(age^2)|Subject),
# a step of 1.6e-3 in a θ of 16.8, 2.8e-4; sleepstudy, 2e-4 in θ of 0.02 to 1,
# 3.8e-3).  It and the rest of the stencil then follow lme4's checks within a percent.
_HESSIAN_DRIFT = 1e-2
_CURVATURE_FLOOR = 1e-3  # least curvature, relative to the largest, of a polish step where H is not PD
_POLISH_ROUNDS = 3  # most restarts while the derivatives say the optimizer stopped short
_UNIT_LIMIT = 1000.0  # Z column scales beyond this factor from 1 get a restart in their units
_GRADIENT_FIRST_THETA = 5  # fewest θ that L-BFGS-B minimizes (MixedModel._gradient_first)

_Result = TypeVar("_Result")


@dataclass
class Convergence:
    """lme4's convergence diagnostics: its messages and code (0 = no problem)."""

    messages: list[str]
    code: int


class MixedModel:
    """A linear mixed model ready to be fitted.

    Parameters
    ----------
    design : Design
        Response, fixed-effects matrix and random-effects terms.
    reml : bool
        Fit by REML (True, lme4's default) or maximum likelihood.
    blocks : CrossBlocks, optional
        The cross products, already summed over the data (out-of-memory data);
        ``design`` then only needs to carry the model's structure.

    Examples
    --------
    >>> import mixedfit as mf
    >>> from mixedfit.terms import build_design
    >>> d = build_design("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    >>> m = MixedModel(d, reml=True)
    >>> round(m.objective(m.start), 4)  # lme4: devfun(c(1, 0, 1)) = 1773.680330616
    1773.6803
    """

    def __init__(self, design: Design, reml: bool = True, blocks: CrossBlocks | None = None):
        if not design.terms:
            raise ModelSpecError("No random effects terms specified in formula")
        self.design = design
        self.reml = require_bool(reml, "reml")
        self.cross = CrossProducts(design, blocks)
        self.layout = ThetaLayout(design.terms)
        self._one_term = len(design.terms) == 1
        self.lower = self.layout.lower
        self.start = lme4_start(design, self.cross, self.layout)
        self._last_gradient: tuple[bytes, float, np.ndarray] | None = None  # θ, objective, gradient
        self._checked: tuple[np.ndarray, np.ndarray, tuple[str | None, bool]] | None = None  # see _gradient_check
        self._whole = self._whole_system()
        n, p = self.cross.n, self.cross.p
        if self.reml and n <= p:
            raise ModelSpecError(f"REML needs more observations ({n}) than fixed effects ({p})")

    @property
    def ntheta(self) -> int:
        return self.lower.size

    def engine_theta(self, theta: np.ndarray) -> list[np.ndarray]:
        """θ (lme4 order) as the engine's terms take it (``JoinedTheta.engine``): θ itself for a model of one term."""
        if self._one_term:
            return [theta]
        return self.cross.joined.engine(self.layout.split(theta))

    def factor(self, theta: np.ndarray) -> Factor | None:
        return self.cross.factor(self.engine_theta(np.asarray(theta, float)))

    def objective(self, theta: np.ndarray) -> float:
        """lme4's profiled deviance (ML) or REML criterion at θ (lme4's order).

        Returns ``inf`` where the system is not positive definite.
        """
        if self._whole is not None:
            return self._whole_at(theta)[1]
        parts = self.cross.logdets_at(self.engine_theta(np.asarray(theta, float)))
        return np.inf if parts is None else self._criterion(*parts, self.reml)

    def objective_from_factor(self, f: Factor, reml: bool | None = None) -> float:
        """The objective read off a factor; ``reml`` overrides the model's criterion."""
        return self._criterion(*self.cross.logdets(f), self.reml if reml is None else reml)

    def _criterion(self, ldL2: float, ldRX2: float, r2: float, reml: bool) -> float:
        """The objective from the factor's log-determinants and r² (``CrossProducts.logdets``)."""
        n, p = self.cross.n, self.cross.p
        dof = n - p if reml else n
        dev = ldL2 - self.cross.sum_log_w + dof * (1.0 + np.log(2.0 * np.pi * r2 / dof))
        return float(dev + ldRX2) if reml else float(dev)

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """The exact gradient of ``objective`` in θ (lme4's order): ``mixedfit.blocks.gradient``.

        Raises ``ValueError`` where θ gives no factor (the objective is ``inf`` there).
        """
        return self.objective_and_gradient(theta)[1]

    def objective_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The objective and its exact gradient in θ, from one factorization."""
        value, gradient = self._objective_and_gradient(theta)
        if not np.isfinite(value):
            raise ValueError(f"the penalized system is not positive definite at θ = {np.asarray(theta).tolist()}")
        return value, gradient

    def objective_at_sigma(self, theta: np.ndarray, sigma: float) -> float:
        """The objective with σ free instead of profiled out (lme4's ``devfun2``, lmerTest's ``devfun_vp``).

        ``log|L_Z|² − Σ log wᵢ + r²/σ² + n log(2πσ²)``, plus ``log|R_X|² − p log(2πσ²)``
        under REML; it equals ``objective`` at σ = σ̂(θ).  Returns ``inf`` where
        θ gives no factor or σ is not positive.
        """
        # math's test on θ's few values: a profile evaluates this at every point
        finite = sigma > 0 and all(map(math.isfinite, np.asarray(theta, float).ravel().tolist()))
        f = self.factor(theta) if finite else None
        if f is None:
            return np.inf
        ldL2, ldRX2, r2 = self.cross.logdets(f)
        s2 = sigma * sigma
        dev = ldL2 - self.cross.sum_log_w + r2 / s2 + self.cross.n * np.log(2.0 * np.pi * s2)
        if self.reml:
            dev += ldRX2 - self.cross.p * np.log(2.0 * np.pi * s2)
        return float(dev)

    # -- fitting --------------------------------------------------------------
    def optimize(self, start: np.ndarray | None = None, maxeval: int = 100_000) -> OptSummary:
        """Minimize the objective over θ the way lme4's ``optimizeLmer`` does (by L-BFGS-B where
        ``_gradient_first`` says so).

        Where the derivatives of lme4's check (``_derivatives``) then say the
        optimizer stopped short of the minimum, the optimum is polished: a
        Newton step on them, or BOBYQA again (``_polish``), until they no
        longer say so or a round gains no more than 1e-10 of the objective
        (on a ridge, where the Hessian is not positive definite, each round
        says so again: MixedModels.jl's InstEval model took three rounds, 140
        evaluations, to gain 1e-11 of its deviance).
        """
        theta0 = self.start if start is None else self._checked_start(start)
        # NLopt reads 0 or less as "no limit", and takes only C ints.
        if isinstance(maxeval, bool) or not isinstance(maxeval, (int, np.integer)) or maxeval < 1:
            raise ModelSpecError(f"maxeval must be a positive whole number of evaluations, not {maxeval!r}")
        if self._gradient_first:
            first = lbfgs(self._objective_and_gradient, theta0, self.lower, maxeval=maxeval)
            if not np.isfinite(first.fmin):  # nowhere positive definite along its path: BOBYQA as lme4
                first = bobyqa(self.objective, theta0, self.lower, maxeval=maxeval)
        else:
            first = bobyqa(self.objective, theta0, self.lower, maxeval=maxeval)
        return self._finish(first, maxeval)

    @property
    def _gradient_first(self) -> bool:
        """Whether θ is minimized by L-BFGS-B on the exact gradient (``optimize.lbfgs``), not by BOBYQA.

        For five θ or more, where each evaluation factors the whole rest densely
        (``CrossProducts.factors_whole_rest``; with one grouping term the rest
        is X alone).  There the gradient costs 3–4 objectives (Oxboys 115
        against 35 µs, crossed slopes 21 against 5.9 ms) and BOBYQA's
        evaluations grow with the θ's square.  Whole optimizations, lme4's
        derivative check and the polish included: Oxboys 15.7 → 5.9 ms,
        Machines (0 + Machine|Worker) 14.2 → 4.5, a (0 + f|g) on 3,000 groups
        112 → 95, (x|subj) + (x|item) on 400 × 200 1.29 → 0.69 s, a maximal
        crossed model with 20 θ 648 → 244 ms, each at BOBYQA's objective or a
        lower one, within 1e-8, and below lme4's.  Where the rest is factored
        sparse (CHOLMOD) or level by level, the gradient's dense inverse costs
        many objectives and BOBYQA stays faster (egsingle 43 against 55–71 ms,
        (x|school/class) 55 against 300); with fewer θ too (sleepstudy 1.8
        against 3.6 ms).  ``benchmarks/optimizers.py`` compares them on every
        fixture.  The derivatives of lme4's checks then come from the exact
        gradient too (``_derivatives``), and with that check five θ pay as
        well (``benchmarks/theta_threshold.py``): on 21 simulated models with
        five θ, crossed terms or one grouping factor, L-BFGS-B first took
        0.37–0.94 of BOBYQA first's time on 19 and 1.05–1.11 on two, at a lower
        objective on 19 and within 7e-11 (2e-14 relative) on two; with four θ
        0.76–2.3, BOBYQA the faster on 14 of 21.
        """
        return self.cross.factors_whole_rest and self.ntheta >= _GRADIENT_FIRST_THETA

    def _whole_system(self) -> WholeSystem | None:
        """The whole system the optimizer evaluates instead of the blocked factor, where it is small and
        L-BFGS-B minimizes (``mixedfit.blocks.whole``); the results still read the blocked factor.

        There the gradient's per-level steps cost more in calls than the whole
        system's flops: Machines (0 + Machine|Worker), 22 columns, 90 → 43 µs an
        objective and gradient, its objective 30 → 16 µs.
        """
        return whole_system(self.cross) if self._gradient_first else None

    def _whole_at(self, theta: np.ndarray) -> tuple[WholeFactor | None, float]:
        """The whole system's factor at θ, and the objective read off it (``inf`` where there is none)."""
        w = self._whole.factor(self.engine_theta(np.asarray(theta, float)))
        return w, (np.inf if w is None else self._criterion(*self._whole.logdets(w), self.reml))

    def _objective_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """``objective_and_gradient``, with ``inf`` (and no gradient) where θ gives no factor.

        The last θ's pair is kept: L-BFGS-B ends at the θ it evaluated last, and
        lme4's derivative check (``gradient_derivatives``) starts there (one of its
        n + 1 gradients: a (0 + f|g) on 3,000 groups, 10 θ, 38 → 34 ms of its 65 ms fit).
        """
        key = np.asarray(theta, float).tobytes()
        if self._last_gradient is not None and self._last_gradient[0] == key:
            return self._last_gradient[1], self._last_gradient[2].copy()
        if self._whole is not None:
            w, value = self._whole_at(theta)
            if w is None:
                return np.inf, np.zeros_like(theta)
            gradient = self.cross.joined.theta_gradient(self._whole.template_gradients(w, self.reml))
        else:
            f = self.factor(theta)
            if f is None:
                return np.inf, np.zeros_like(theta)
            value, gradient = self.objective_from_factor(f), theta_gradient(self.cross, f, self.reml)
        self._last_gradient = key, value, gradient.copy()
        return value, gradient

    def _finish(self, opt: OptSummary, maxeval: int) -> OptSummary:
        """From a first optimizer's optimum: lme4's restarts, its derivative check, and the polish."""
        opt = self._restart_edge(opt, maxeval)
        opt = self._restart_in_units(opt, maxeval)
        opt = self._snap_to_boundary(opt)
        opt.gradient, opt.hessian = self._derivatives(opt.final, opt.fmin)
        for _ in range(_POLISH_ROUNDS):
            if not self._stopped_short(opt):
                break
            polished = self._polish(opt, maxeval)
            if polished is opt:
                break
            opt, gained = polished, opt.fmin - polished.fmin
            if gained <= _GAP_TOL * max(1.0, abs(opt.fmin)):
                break
        return opt

    @property
    def _kept_work(self) -> Callable[[np.ndarray], bytes] | None:
        """What of an evaluation at θ the model keeps for the next (its first term's θ, whose elimination and
        Schur update ``CrossProducts`` keeps), for ``finite_derivatives`` to evaluate alike θ together; None
        with one term, where nothing is kept between θ.

        The derivative check's points that move only later terms' θ, or the
        same first-term θ, then share one elimination (the benchmarks' sim
        maximal 60 × 40 × 4, 20 θ: 132 eliminations for its 420 points instead
        of 320; crossed slopes, 6 θ: 20 for 42 instead of 33).
        """
        if len(self.cross.terms) < 2:
            return None
        return lambda theta: self.engine_theta(theta)[0].tobytes()

    def _stopped_short(self, opt: OptSummary) -> bool:
        """Whether the derivatives at BOBYQA's optimum say it stopped before the minimum.

        At a singular optimum the gradient of the θ at their bound need not
        vanish, so only the gap predicted over the others counts there.
        """
        short = self._predicted_gap(opt) > _gap_tolerance(opt.fmin)
        return short or (not self.is_singular(opt.final) and self._gradient_check(opt)[1])

    def _gradient_check(self, opt: OptSummary) -> tuple[str | None, bool]:
        """lme4's gradient check of ``opt``'s derivatives (``_gradient_check``), kept while they are the same
        arrays: the polish's last ``_stopped_short`` and then ``convergence`` read the same one."""
        kept = self._checked
        if kept is None or kept[0] is not opt.gradient or kept[1] is not opt.hessian:
            kept = self._checked = opt.gradient, opt.hessian, _gradient_check(opt)
        return kept[2]

    def _interior(self, theta: np.ndarray) -> np.ndarray:
        """Which θ are away from their bound, by lme4's isSingular() tolerance."""
        return ~(np.isfinite(self.lower) & (theta < _SINGULAR_TOL))

    def _restart_in_units(self, opt: OptSummary, maxeval: int) -> OptSummary:
        """Fit again with θ in the units of Z's columns when those are extreme; keep the lower.

        BOBYQA steps alike in every direction: a column of Z scaled by 1e-6 needs θ
        near 1e5, one scaled by 1e6 θ near 1e-7, and neither BOBYQA nor lme4 gets
        there from θ = 1.  In each column's units (θ' = θ × scale) the optimum is of
        order one, as if the user had rescaled the predictor.
        """
        units = self._theta_units()
        if np.all(np.abs(np.log(units)) <= np.log(_UNIT_LIMIT)):
            return opt
        again = bobyqa(lambda t: self.objective(t * units), self.start, self.lower, maxeval=maxeval)
        if not again.fmin < opt.fmin:
            return opt
        again.final = again.final * units
        again.feval += opt.feval
        again.initial = opt.initial
        return again

    def _theta_units(self) -> np.ndarray:
        """Per θ element (lme4 order), 1 / the RMS of the Z column its template row scales."""
        units = []
        for term in self.design.terms:
            rms = np.sqrt(np.einsum("ij,ij->j", term.z, term.z) / len(term.z)) if len(term.z) else np.ones(term.size)
            rms[~(np.isfinite(rms) & (rms > 0))] = 1.0
            units.append(1.0 / rms[template_positions(term.size)[0]])
        return np.concatenate(units)

    def _checked_start(self, start) -> np.ndarray:
        """A user's starting θ, checked as lme4 checks it."""
        theta0 = np.asarray(start, float).reshape(-1)
        if theta0.size != self.ntheta:
            raise ModelSpecError(f"incorrect number of theta components (!={self.ntheta}): "
                                 f"start has {theta0.size}")
        if not np.all(np.isfinite(theta0)) or np.any(theta0 < self.lower):
            raise ModelSpecError(f"start must be finite with the diagonal of θ >= 0, not {theta0.tolist()}")
        return theta0

    def _newton_delta(self, opt: OptSummary) -> tuple[np.ndarray, np.ndarray] | None:
        """H⁻¹g over the θ away from their bound, and which θ those are; None where that H is not PD."""
        free = self._interior(opt.final)
        hessian, gradient = _free_part(opt.hessian, opt.gradient, free)
        try:
            chol = np.linalg.cholesky(hessian)
        except np.linalg.LinAlgError:
            return None
        return free, np.linalg.solve(chol.T, np.linalg.solve(chol, gradient))

    def _predicted_gap(self, opt: OptSummary) -> float:
        """Newton's estimate ½gᵀH⁻¹g, over the θ away from their bound, of how far the objective is above the optimum.

        inf where that part of H is not positive definite; 0 where no θ is free.
        """
        newton = self._newton_delta(opt)
        if newton is None:
            return np.inf
        free, delta = newton
        return float(0.5 * opt.gradient[free] @ delta)

    def _polish(self, opt: OptSummary, maxeval: int) -> OptSummary:
        """A Newton step on the check's derivatives (``_newton_step``), or else BOBYQA again from its optimum.

        BOBYQA can stop on ``ftol_abs`` while the gradient still points downhill
        (lme4 does too, and then warns).  The derivatives lme4's check needs are
        at hand, so a Newton step costs one evaluation; where it does not lower
        the objective, a restart of BOBYQA recovers the rest.  Returns ``opt``
        itself, with the evaluations spent added, when neither finds a lower
        objective.
        """
        step, spent = self._newton_step(opt), 0
        if step is not None:
            spent, value = 1, self.objective(step)
            better = dataclasses.replace(opt, final=step, fmin=value, feval=opt.feval + 1)
        if step is None or not value < opt.fmin:
            again = bobyqa(self.objective, opt.final, self.lower, maxeval=max(maxeval - opt.feval - spent, 1))
            better = dataclasses.replace(again, feval=opt.feval + spent + again.feval, initial=opt.initial)
        if not better.fmin < opt.fmin:
            opt.feval = better.feval
            return opt
        better = self._snap_to_boundary(better)
        # Off the diagonal the Hessian barely moves over a step this short (by
        # 1e-4 relative on a 36-θ factor-slope model), and re-evaluating it
        # would cost n(n - 1) evaluations, most of such a fit.
        near = np.all(np.abs(better.final - opt.final) <= _NEAR_STEP * np.maximum(1.0, np.abs(opt.final)))
        better.gradient, better.hessian = self._derivatives(better.final, better.fmin, opt.hessian if near else None)
        return better

    def _derivatives(self, theta: np.ndarray, fmin: float,
                     cross: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The gradient and Hessian at θ that lme4's checks and the polish read.

        Where the gradient is cheap (``_gradient_first``), the exact gradient
        and forward differences of it (``gradient_derivatives``: n + 1
        gradients, against n² + n + 1 objectives); elsewhere lme4's central
        differences (``finite_derivatives``), with the off-diagonal of
        ``cross``, a Hessian from a point close by, where its diagonal has not
        moved.
        """
        if self._gradient_first:
            return gradient_derivatives(self._objective_and_gradient, theta)
        return finite_derivatives(self.objective, theta, fmin, cross=cross, drift=_HESSIAN_DRIFT, paired=True,
                                  group=self._kept_work)

    def _newton_step(self, opt: OptSummary) -> np.ndarray | None:
        """θ − H⁻¹g over the θ away from their bound, kept within the bounds.

        Where that H is not PD (a ridge: a model with more variance parameters
        than the data pin down), H's curvatures are taken in absolute value and
        at least ``_CURVATURE_FLOOR`` times the largest, so the step goes downhill
        and not far along the ridge (MixedModels.jl's InstEval model: a BOBYQA
        restart took 65 evaluations to gain 1.8e-6, this step one to gain 2.5e-6).
        None where no curvature is positive.
        """
        newton = self._newton_delta(opt)
        if newton is None:
            free = self._interior(opt.final)
            curvature, axes = np.linalg.eigh(_free_part(opt.hessian, opt.gradient, free)[0])
            if not (np.all(np.isfinite(curvature)) and curvature.max() > 0):
                return None
            curvature = np.maximum(np.abs(curvature), _CURVATURE_FLOOR * curvature.max())
            delta = axes @ ((axes.T @ opt.gradient[free]) / curvature)
        else:
            free, delta = newton
        step = opt.final.copy()
        step[free] -= delta
        return np.maximum(step, self.lower)

    def _restart_edge(self, opt: OptSummary, maxeval: int) -> OptSummary:
        """Restart once from an optimum on the boundary if the deviance falls inward."""
        on_edge = np.flatnonzero(opt.final == self.lower)
        if on_edge.size == 0:
            return opt
        falls = []
        for i in on_edge:
            th = opt.final.copy()
            th[i] = self.lower[i] + _BOUNDARY_TOL
            falls.append(self.objective(th) < opt.fmin)
        if not any(falls):
            return opt
        again = bobyqa(self.objective, opt.final, self.lower, maxeval=maxeval)
        again.feval += opt.feval
        again.initial = opt.initial
        return again if again.fmin <= opt.fmin else opt

    def _snap_to_boundary(self, opt: OptSummary) -> OptSummary:
        """Set θ within lme4's boundary tolerance of a bound to the bound when that is no worse."""
        near = np.flatnonzero((opt.final - self.lower > 0) & (opt.final - self.lower < _BOUNDARY_TOL))
        for i in near:
            th = opt.final.copy()
            th[i] = self.lower[i]
            val = self.objective(th)
            if val <= opt.fmin:
                opt.final, opt.fmin = th, val
        return opt

    def convergence(self, opt: OptSummary) -> Convergence:
        """lme4's ``checkConv``: singular fit, then gradient and Hessian checks."""
        singular = self.is_singular(opt.final)
        return check_convergence(opt, singular, gradient_check=None if singular else self._gradient_check(opt))

    def is_singular(self, theta: np.ndarray) -> bool:
        return not self._interior(theta).all()

    def blas_threads(self):
        """A context limiting BLAS to one thread when threads cannot help.

        Threads gain nothing on a small factorization or small products, and
        OpenBLAS's spinning threads make it many times slower when the cores
        are already busy (measured on a loaded 2-core machine: a 134×134
        ``dpotrf`` from 0.04 ms to 112 ms, a 1145×1145 one from 24 ms
        single-threaded to 93 ms).  A small rest with large dense products
        (its Schur update by dense rows, ``cores.threaded``) threads too:
        ``(x|subj) + (x|item)`` on 400 × 200, a 403-column rest updated by
        products of 64M multiply-adds, 645 → 495 ms a fit.
        Otherwise numpy's own copy of BLAS, if scipy's factorizations run on
        another, gets one thread (see ``_numpy_own_blas``).
        """
        if not cores.threaded(self.cross.rest_columns.size, self.cross.rest.update.multiply_adds):
            return _one_thread()
        own = _numpy_own_blas()
        return _ONE_THREAD.held(own) if own is not None else contextlib.nullcontext()

    def fit(self, *, result: Callable[..., _Result], start: np.ndarray | None = None, maxeval: int = 100_000,
            **names: str | None) -> _Result:
        """Fit the model and build ``result(model, opt, conv, **names)`` at the optimum.

        ``result`` is the class of what the fit returns: ``mixedfit.fitted.LinearFit``
        (the numbers) or a face on them (``mixedfit.results.MixedResults``), so
        that a refit returns what it refits (``type(fit)``).  Keyword ``names``
        (data_name, ...) are kept for printing.  The factor at θ̂ is made once,
        for the check and the results (InstEval: one factorization, 6 ms).
        """
        # The results' first products run under the same thread limit: a BLAS
        # call right after the limit is lifted can wait ~60 ms for OpenBLAS to
        # wake its threads (seen on Chem97 in every other fit).
        with self.blas_threads():
            opt = self.optimize(start, maxeval)
            factor = self._factor_at_optimum(opt.final)
            conv = self.convergence(opt)
            results = result(self, opt, conv, factor=factor, **names)
        for msg in conv.messages:
            cls = SingularFitWarning if msg.startswith("boundary") else ConvergenceWarning
            warn(msg, cls)
        return results

    def _factor_at_optimum(self, theta: np.ndarray) -> Factor:
        """The factor at the optimizer's θ; lme4's error where that system is not positive definite.

        lme4 stops with "Downdated VtV is not positive definite" (extreme
        weights, ill-conditioned columns); the optimizer here only sees an
        infinite objective, and no results can be read off a missing factor.
        """
        factor = self.factor(theta)
        if factor is not None:
            return factor
        raise ModelSpecError(
            "Downdated VtV is not positive definite: the penalized system is numerically singular "
            f"at θ = {np.round(theta, 6).tolist()}, where the optimizer stopped (lme4 stops with the "
            "same error); look for extreme weights or nearly collinear, badly scaled predictors"
        )


class _SharedLimit:
    """One BLAS thread per library while any fit of the process needs it.

    A library's thread count is process-wide, so fits running in threads
    share it.  threadpoolctl's ``limit`` restores what it found on entry: a
    fit entering while another held the limit found 1 and left 1 behind for
    good, and the first fit to leave lifted the limit under the others.
    Here each library counts the fits holding it: the first saves its
    setting, the last restores it, whichever threads they run in.  A user's
    ``threadpool_limits`` context open in another thread meanwhile wins:
    threadpoolctl then ignores the sets of every other thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: dict[str, int] = {}
        self._saved: dict[str, int] = {}

    @contextlib.contextmanager
    def held(self, libraries: ThreadpoolController):
        """A context in which ``libraries`` run on one thread."""
        with self._lock:
            for lib in libraries.lib_controllers:
                if not self._holders.get(lib.filepath):
                    self._saved[lib.filepath] = lib.num_threads
                    _set_threads(lib, 1)
                self._holders[lib.filepath] = self._holders.get(lib.filepath, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                for lib in libraries.lib_controllers:
                    self._holders[lib.filepath] -= 1
                    if not self._holders[lib.filepath]:
                        _set_threads(lib, self._saved.pop(lib.filepath))


_ONE_THREAD = _SharedLimit()


def _one_thread():
    """A context in which every loaded BLAS runs on one thread (``_SharedLimit``)."""
    return _ONE_THREAD.held(blas_controller().select(user_api="blas"))


def setup_threads(rows: int):
    """A context limiting BLAS to one thread while a model of ``rows`` rows is set up, where threads cannot help.

    Building the design and the cross products takes QRs and products of
    tall, narrow matrices, too small to share among threads below
    ``_SMALL_ROWS`` rows, and OpenBLAS's spinning threads make them many
    times slower when the cores are busy (Hsb82's 7,185 × 6 QR on a loaded
    2-core machine: 0.1 ms on one thread, 5 to 18 ms on two).  The fit sets
    its own limit (``MixedModel.blas_threads``), so only the setup runs in this one.
    """
    if rows < _SMALL_ROWS or cores.busy():
        return _one_thread()
    return contextlib.nullcontext()


def _set_threads(lib, count: int) -> None:
    """Set a library's thread count, and leave no claim on it to this thread.

    threadpoolctl 3.8 lets one Python thread at a time set OpenBLAS's
    process-wide count: the first to set it, until the last of its limit
    contexts ends; the others' sets are silently ignored.  Counted as such a
    context, the set hands that control back at once, so that the fit ending
    last, in any thread, can restore the count.
    """
    ownership = getattr(threadpoolctl, "CONTROLLING_THREAD_OWNERSHIP", None)  # threadpoolctl ≥ 3.8
    if ownership is None:
        lib.set_num_threads(count)
        return
    ownership.increment()
    try:
        lib.set_num_threads(count)
    finally:
        ownership.decrement()


@functools.lru_cache(maxsize=1)
def blas_controller() -> ThreadpoolController:
    """One controller per process: finding the loaded BLAS libraries costs milliseconds."""
    return ThreadpoolController()


@functools.lru_cache(maxsize=1)
def _numpy_own_blas():
    """numpy's own BLAS library, where scipy (which factors) loads another one; else None.

    The wheels of numpy and scipy each bundle OpenBLAS, and each copy keeps a
    pool of threads that spins on the cores for a while after its calls.  A
    numpy product between two scipy factorizations then leaves four threads
    on two cores: a 1142×1142 ``dpotrf`` took 43 ms instead of 8, and a fit of
    ``(1|a/b/c)`` with 40 fixed effects 3.3 s instead of 1.1 s.
    """
    controller = blas_controller().select(user_api="blas")
    home = os.path.dirname(np.__file__)  # also the prefix of the wheel's numpy.libs
    own = [c.filepath for c in controller.lib_controllers if c.filepath.startswith(home)]
    if not own or len(own) == len(controller.lib_controllers):
        return None
    return controller.select(filepath=own)


def lme4_start(design: Design, cross: CrossProducts, layout: ThetaLayout | None = None) -> np.ndarray:
    """lme4's starting θ: 1 on the template diagonals and 0 elsewhere, except for random intercepts.

    When every term is ``(1 | g)`` with its own grouping factor, lme4's
    ``mkLmerDevfun`` starts each θ at √(vₖ / vₑ), with vₖ = var(ave(y, gₖ)) the
    variance of the group means and vₑ = var(y) − Σ vₖ, provided vₑ > 0; y is
    the response before offsets and weights.  On InstEval this start saves a
    quarter of BOBYQA's evaluations, and it is what makes the paths the same.
    ``layout`` is the model's ``ThetaLayout`` where it has one already.

    Examples
    --------
    >>> import mixedfit as mf
    >>> from mixedfit.terms import build_design
    >>> d = build_design("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"))
    >>> lme4_start(d, CrossProducts(d)).round(6)  # lme4: environment(devfun)$pp$theta = 0.97876050342587
    array([0.978761])
    """
    start = (ThetaLayout(design.terms) if layout is None else layout).start
    sums = cross.response  # kept by the cross blocks exactly when every term is (1 | g)
    if sums is None:
        return start
    n, mean_square = sums.n, sums.total * sums.total / sums.n
    # A level with no complete row (summed partitions keep every level) adds 0, not 0/0.
    engine = [np.sum(s * s / np.maximum(c, 1.0)) - mean_square for c, s in zip(sums.counts, sums.sums)]
    shares = np.array([engine[e] for e, _ in cross.joined.pieces]) / (n - 1)
    residual = (sums.squares - mean_square) / (n - 1) - np.sum(shares)
    return np.sqrt(shares / residual) if residual > 0 else start


def _free_part(hessian: np.ndarray, gradient: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Hessian's and the gradient's entries of the ``free`` θ; themselves where every θ is free
    (``np.ix_``'s selection cost a tenth of a small fit's checks)."""
    if free.all():
        return hessian, gradient
    return hessian[np.ix_(free, free)], gradient[free]


def _r_g(x: float) -> str:
    """R's ``%g`` formatting (six significant digits, no trailing zeros)."""
    return f"{x:g}"


def _gap_tolerance(fmin: float) -> float:
    """The least predicted gain that starts a polish (a round that gains no more than ``_GAP_TOL`` ends it)."""
    return min(_GAP_TOL * max(1.0, abs(fmin)), _GAP_ABS)


def _gradient_check(opt: OptSummary) -> tuple[str | None, bool]:
    """lme4's gradient check: (message or None, failed) from the scaled gradient ``R⁻ᵀg``."""
    grad = opt.gradient
    try:
        scaled = np.linalg.solve(np.linalg.cholesky(opt.hessian).T, grad)
    except np.linalg.LinAlgError:
        scaled = None
    if scaled is None or not np.all(np.isfinite(scaled)):
        return "unable to evaluate scaled gradient", True
    mingrad = np.minimum(np.abs(scaled), np.abs(grad))
    if mingrad.max() <= _GRAD_TOL:
        return None, False
    # lme4 names "component" which.max(max(mingrad)): always 1
    return (
        f"Model failed to converge with max|grad| = {_r_g(mingrad.max())} "
        f"(tol = {_r_g(_GRAD_TOL)}, component 1)",
        True,
    )


def check_convergence(opt: OptSummary, singular: bool, derivatives: bool = True,
                      gradient_check: tuple[str | None, bool] | None = None) -> Convergence:
    """lme4's ``checkConv`` on an optimum: singular fit, then gradient and Hessian checks.

    ``derivatives=False`` where lme4 computes none (glmer's ``nAGQ = 0``):
    only the optimizer's code and the singular-fit message.
    ``gradient_check``: ``_gradient_check(opt)``, where the caller has it.
    """
    messages: list[str] = []
    if opt.code != 0:
        messages.append(f"convergence code {opt.code} from {opt.optimizer}: {opt.message}")
    if singular:
        return Convergence(messages + ["boundary (singular) fit: see help('isSingular')"], 0)
    if not derivatives:
        return Convergence(messages, 0)
    grad_message, grad_failed = _gradient_check(opt) if gradient_check is None else gradient_check
    if grad_message:
        messages.append(grad_message)
    hess_messages, hess_code = _check_hessian(opt.hessian)
    messages += hess_messages
    return Convergence(messages, hess_code or (-1 if grad_failed else 0))


def _check_hessian(hess: np.ndarray) -> tuple[list[str], int]:
    """lme4's ``checkHess`` on the Hessian of the objective in θ."""
    try:
        ev = np.linalg.eigvalsh(hess)
    except np.linalg.LinAlgError:
        return ["Problem with Hessian check (infinite or missing values?)"], -6
    if not np.all(np.isfinite(ev)):
        return ["Problem with Hessian check (infinite or missing values?)"], -6
    negative = int(np.sum(ev < -_HESS_TOL))
    if negative:
        return [f"Model failed to converge: degenerate  Hessian with {negative} negative eigenvalues"], -3
    if np.any(np.abs(ev) < _HESS_TOL):
        return [" Hessian is numerically singular: parameters are not uniquely determined"], -4
    messages, code = [], 0
    if ev.max() * _HESS_TOL > 1:
        messages.append("Model is nearly unidentifiable: very large eigenvalue\n - Rescale variables?")
        code = 2
    if ev.min() / ev.max() < _HESS_TOL:
        messages.append("Model is nearly unidentifiable: large eigenvalue ratio\n - Rescale variables?")
        code = 3
    return messages, code
