"""GLMMs on Dask data: PIRLS with one pass over the partitions per step.

PIRLS (``mixedfit.glmm``) solves each step from row sums (``PwlsSums``),
and those of the partitions add up to those of all the rows.  So a fit to
Dask data is the in-memory fit with another source of sums
(``DaskRows``): the driver holds θ, u and β, never a row; each step (and
each step-halving) is one pass in which every partition computes its linear
predictor from them, its deviance, −2 log-likelihood and Pearson χ² at that
point, and the sums of the next step there.  Nothing per row is kept
between passes: where the in-memory fit keeps lme4's per-row starting
predictor ``lp0``, this one keeps the (θ, u, β) that give it.

The partitions' designs are built once and persisted (each fit makes
hundreds of passes); the levels and the checks on all the rows (numbers
of levels, the rank and scales of X) are those of the linear fit
(``mixedfit.dask_opening``).  Estimates, deviance and standard errors agree
with the in-memory fit to rounding (the sums are added in another order).

Every family: the Gamma and inverse Gaussian likelihoods read the deviance
of all the rows (through the dispersion φ = deviance/Σw), and otherwise only
Σw and Σ w log y, which the checks' pass adds up once
(``Family.aic_from_totals``): the pass at a point returns the deviance, and
the driver computes −2 log L.  With nagq > 1 (adaptive Gauss–Hermite
quadrature, a single scalar term, as lme4), each evaluation makes one more
pass, in which every partition sums its deviance residuals per level at the
modes and at each node (``GlmmModel.shifted_deviances``); the rule is
glmm.py's.  Fitted values and residuals are lazy Dask Series, partition by
partition; the summary's scaled-residual quantiles are exact
(``exact_quantiles``).

Examples
--------
>>> import dask.dataframe as dd
>>> import mixedfit as mf
>>> cbpp = dd.from_pandas(mf.load_dataset("cbpp"), npartitions=3)
>>> fit = mf.mixed("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
...                family="binomial")
>>> round(fit.minus2llf, 4)  # lme4: deviance 184.0531
184.0531
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .dask_tasks import compute, delayed, shared, tree_reduce
from .dask_opening import Moments, checked, opening
from .family import Family, family as make_family
from .glmm import GlmmFit, GlmmModel, PirlsState, PwlsSums
from .glmm_results import GlmmResults, glmm_residuals, warn_fit
from .glmm_summary import GlmmSummary
from .partitions import Plan, partition_design
from .quantiles import exact_quantiles
from .terms import sparse_rows

__all__ = ["mixed_dask_glmm", "DaskGlmmModel", "DaskRows", "DaskGlmmResults"]

_QUANTILES = ("Min", "1Q", "Median", "3Q", "Max")


# -- a partition --------------------------------------------------------------------


def _partition_model(part: pd.DataFrame, plan: Plan) -> GlmmModel | None:
    """A partition's GLMM on the levels of the whole data set, with X's columns ``plan.xkeep``
    (None: no complete row)."""
    if part.empty:
        return None
    design = partition_design(part, plan)
    return GlmmModel(design, plan.family) if design.nobs else None


def _without_columns(model: GlmmModel | None, keep: list[int]) -> GlmmModel | None:
    """The partition's GLMM with only X's columns ``keep``."""
    if model is None:
        return None
    design = model.design
    return GlmmModel(dataclasses.replace(design, X=design.X[:, keep], xnames=[design.xnames[j] for j in keep]),
                     model.family)


@dataclass
class _Checks:
    """What the checks on all the rows read: their number, those left out, X's moments; and a
    dispersion family's Σw and Σ w log y (``Family.dispersion_totals``; zeros for the others)."""

    n: int
    n_dropped: int
    moments: Moments
    totals: np.ndarray

    def __add__(self, other: "_Checks") -> "_Checks":
        return _Checks(self.n + other.n, self.n_dropped + other.n_dropped, self.moments + other.moments,
                       self.totals + other.totals)


def _partition_checks(model: GlmmModel | None) -> _Checks | None:
    if model is None:
        return None
    fam = model.family
    totals = fam.dispersion_totals(model.y, model.weights) if fam.has_dispersion else np.zeros(2)
    return _Checks(model.design.nobs, model.design.n_dropped, Moments.from_design(model.design), totals)


@dataclass
class PointSums:
    """A pass at a point (θ, u, β): the sums of deviance residuals, of −2 log-likelihood terms and
    of squared Pearson residuals there, and the next PIRLS step's sums (always with X's, which
    lme4's vcov reads at the weights of the last step).

    ``aic`` is a sum over rows for binomial and Poisson only (0 for a dispersion family, whose
    −2 log-likelihood the driver computes from the deviance: ``DaskGlmmModel.laplace``).
    """

    deviance: float
    aic: float
    pearson: float
    sums: PwlsSums

    def __add__(self, other: "PointSums") -> "PointSums":
        return PointSums(self.deviance + other.deviance, self.aic + other.aic,
                         self.pearson + other.pearson, self.sums + other.sums)


def _partition_point(model: GlmmModel | None, theta: np.ndarray, point: tuple | None,
                     beta: np.ndarray | None) -> PointSums | None:
    """One partition's part of a pass: at the point (θ_p, u, β) (None: the family's starting μ), with β
    fixed at ``beta`` or (None) solved by the step."""
    if model is None:
        return None
    fam = model.family
    values = model._term_values(theta)
    zl = sparse_rows(np.hstack(values), model._columns, model.q)
    if point is None:  # lme4's first PIRLS starts from family$initialize's μ
        eta = fam.linkfun(fam.mustart(model.y, model.weights))
    else:
        at, u, b = point
        eta = model.offset + model.X @ b + (zl if np.array_equal(at, theta) else model.zlambda(at)) @ u
    mu, sqrtw, wres = model._working(eta)
    dev = model._dev(mu)
    deviance = float(np.sum(dev))
    pearson = (model.y - mu) * np.sqrt(model.weights / fam.variance(mu))
    base = model.offset if beta is None else model.offset + model.X @ beta
    sums = model.step_sums(zl.T, values, sqrtw, eta - base + wres, joint=True)
    aic = 0.0 if fam.has_dispersion else model._aic(mu, deviance)
    return PointSums(deviance, aic, float(pearson @ pearson), sums)


def _partition_shifted_deviances(model: GlmmModel | None, theta: np.ndarray, u: np.ndarray, beta: np.ndarray,
                                 shifts: list[np.ndarray]) -> np.ndarray | None:
    """One partition's per-level sums of deviance residuals at the modes (θ, u, β) and at the modes moved
    by each of ``shifts`` (quadrature's nodes): (1 + len(shifts), q)."""
    if model is None:
        return None
    base = model.offset + model.X @ beta
    return model.shifted_deviances(model.zlambda(theta), base, u, [np.zeros_like(u), *shifts])


# -- the driver ----------------------------------------------------------------------


@dataclass
class DaskPirlsState(PirlsState):
    """Converged PIRLS on Dask data: no row, the sums at the modes and at the last step's weights."""

    deviance: float = 0.0
    aic: float = 0.0
    pearson: float = 0.0
    step: PwlsSums | None = None  # the sums the last step solved from (vcov's R_X reads them)


class DaskRows:
    """PIRLS's source of sums on Dask data: the point (u, β) at θ, one pass per move.

    The pass that evaluates a point computes the next step's sums there
    too, so each step, and each step-halving, reads the data once.
    """

    def __init__(self, model: "DaskGlmmModel", theta: np.ndarray, beta: np.ndarray | None, start: tuple | None):
        self.model, self.theta, self.beta = model, theta, None if beta is None else np.asarray(beta, float)
        self.current = model.pass_at(theta, start, self.beta)
        self.used = self.current

    def sums(self) -> PwlsSums:
        self.used = self.current
        sums = self.current.sums
        if self.beta is None:
            return sums
        return dataclasses.replace(sums, zwx=None, xwx=None, xwz=None)  # β is fixed: u only

    def evaluate(self, u: np.ndarray, b: np.ndarray) -> float:
        self.current = self.model.pass_at(self.theta, (self.theta, u, b), self.beta)
        return self.current.deviance + float(u @ u)

    def state(self, u: np.ndarray, b: np.ndarray, L, iterations: int, halvings: int) -> DaskPirlsState:
        c = self.current
        return DaskPirlsState(u, b, None, None, None, L, None, iterations, halvings,
                              deviance=c.deviance, aic=c.aic, pearson=c.pearson, step=self.used.sums)


class DaskGlmmModel(GlmmModel):
    """``GlmmModel`` whose rows are the persisted partitions' models: the same two stages, checks
    and vcov, PIRLS by passes (``DaskRows``).

    Parameters
    ----------
    design : Design
        The model's structure without rows (``mixedfit.dask_opening.rowless``).
    family : Family
        The family and link.
    nagq : int
        0, 1 or up to 25 quadrature nodes (a single scalar term).
    parts : list
        The partitions' ``GlmmModel`` (persisted Dask values; None for a partition without rows).
    totals : ndarray
        A dispersion family's Σw and Σ w log y over all the rows (``Family.dispersion_totals``).
    """

    def __init__(self, design, family: Family, nagq: int, parts: list, totals: np.ndarray):
        self._structure(design, family, nagq)  # no per-row arrays: the partitions hold the rows
        self.parts, self.totals = parts, totals
        self.passes = 0

    def __getstate__(self) -> dict:
        return dict(self.__dict__)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def pass_at(self, theta: np.ndarray, point: tuple | None, beta: np.ndarray | None) -> PointSums:
        """One pass over the partitions at the point (see ``_partition_point``)."""
        self.passes += 1
        theta_task, point_task, beta_task = shared(theta), shared(point), shared(beta)
        return compute(tree_reduce([delayed(_partition_point)(part, theta_task, point_task, beta_task)
                                    for part in self.parts]))

    def _level_deviances(self, theta: np.ndarray, state: DaskPirlsState, shifts: list[np.ndarray]) -> np.ndarray:
        """Quadrature's per-level deviances at the modes and the nodes: one more pass (see
        ``GlmmModel._level_deviances``)."""
        self.passes += 1
        tasks = [shared(theta), shared(state.u), shared(state.beta), shared(shifts)]
        return compute(tree_reduce([delayed(_partition_shifted_deviances)(part, *tasks) for part in self.parts]))

    def pirls(self, theta: np.ndarray, beta: np.ndarray | None = None,
              eta_start: np.ndarray | None = None, u_start: np.ndarray | None = None) -> DaskPirlsState:
        """``GlmmModel.pirls`` by passes over the partitions, from ``lp0``'s (θ, u, β)."""
        if eta_start is not None:
            raise NotImplementedError("a per-row starting predictor needs the rows in memory")
        theta = np.asarray(theta, float)
        return self._pirls(DaskRows(self, theta, beta, self.lp0), theta, beta, u_start)

    @property
    def lp0(self) -> tuple:
        """Where PIRLS starts: the (θ, u, β) of the first, joint PIRLS at θ₀ (the in-memory fit keeps
        their linear predictor, lme4's ``lp0``)."""
        if self._lp0 is None:
            state = self._pirls(DaskRows(self, self.start, None, None), self.start, None, None)
            self._restart(self.start, state)
        return self._lp0

    def _restart(self, theta: np.ndarray, state: PirlsState) -> None:
        self._lp0 = (np.array(theta, float), state.u, state.beta)

    def laplace(self, state: DaskPirlsState) -> float:
        # a dispersion family's −2 log L reads the deviance of all the rows: from the totals
        aic = (self.family.aic_from_totals(state.deviance, self.totals) if self.family.has_dispersion
               else state.aic)
        return float(state.ldL2 + state.u @ state.u + aic)

    def pwrss(self, state: DaskPirlsState) -> float:
        return float(state.pearson + state.u @ state.u)

    def _unscaled(self, theta: np.ndarray, state: DaskPirlsState) -> np.ndarray:
        RZX = state.L.solve_lower(state.step.zwx)
        try:
            return np.linalg.inv(state.step.xwx - RZX.T @ RZX)
        except np.linalg.LinAlgError:
            return np.full((self.p, self.p), np.nan)


# -- the face ------------------------------------------------------------------------


def _partition_rows(part: pd.DataFrame, plan: Plan, fitted: tuple, what: str) -> pd.Series:
    """``what`` (``"mu"``, ``"eta"`` or a residual type) at the fit on one partition's rows."""
    model = _partition_model(part, plan)
    if model is None:
        return pd.Series([], dtype=float, index=part.index[:0])
    theta, u, beta = fitted
    eta = model.offset + model.X @ beta + model.zlambda(theta) @ u
    mu = model.family.linkinv(eta)
    if what in ("mu", "eta"):
        return pd.Series(mu if what == "mu" else eta, index=model.design.rows)
    state = PirlsState(u, beta, eta, mu, model._dev(mu), None, None, 0)
    return pd.Series(glmm_residuals(model, state, what), index=model.design.rows)


class DaskGlmmResults(GlmmResults):
    """A GLMM fitted to Dask data (``mixed_dask_glmm``): ``GlmmResults`` with what needs the rows lazy.

    Estimates, ``vcov``, ``llf``, ``deviance``, ``ranef``, ``varcorr`` are
    as in memory; ``fittedvalues``, ``linear_predictor`` and ``resid`` are
    lazy Dask Series, one partition at a time; ``summary`` reads the exact
    scaled-residual quantiles (two passes).  Refits, profiles, simulations,
    the bootstrap and predictions on new data need the rows in memory and raise
    ``NotImplementedError``.
    """

    def __init__(self, model: DaskGlmmModel, fitted: GlmmFit, data, plan: Plan, timings: dict[str, float],
                 **names):
        super().__init__(model, fitted, **names)
        self._data, self._plan, self.timings = data, plan, timings

    @property
    def deviance(self) -> float:
        return self.fitted.state.deviance

    def _per_partition(self, what: str):
        state = self.fitted.state
        fitted = shared((self.fitted.theta, state.u, state.beta))
        return self._data.map_partitions(_partition_rows, shared(self._plan), fitted, what,
                                         meta=pd.Series([], dtype=float, index=self._data._meta.index[:0]))

    @property
    def fittedvalues(self):
        """Fitted means μ̂ on the rows used (a Dask Series)."""
        return self._per_partition("mu")

    @property
    def linear_predictor(self):
        """η̂ on the rows used (a Dask Series)."""
        return self._per_partition("eta")

    def resid(self, type: str = "deviance"):  # noqa: A002 (lme4's argument name)
        """Residuals of one of lme4's types (a Dask Series)."""
        return self._per_partition(type)

    @property
    def scaled_resid(self):
        """Pearson residuals over σ (a Dask Series)."""
        return self.resid("pearson") / self.sigma

    def pearson_dispersion(self) -> float:
        """Σ Pearson residual² / df.resid, from the fit's own sum."""
        return float(self.fitted.state.pearson / self.df_resid)

    @functools.cached_property
    def _quantiles(self) -> np.ndarray:
        return exact_quantiles(self.scaled_resid, (0.0, 0.25, 0.5, 0.75, 1.0))

    def resid_quantiles(self) -> pd.Series:
        """Exact quantiles (R's type 7) of the scaled residuals, computed once in two passes."""
        return pd.Series(self._quantiles, index=list(_QUANTILES))

    def summary(self, ddf: str | None = None):
        """glmer's ``summary(fit)``, with the exact scaled-residual quantiles."""
        super().summary(ddf)  # its checks
        return GlmmSummary(_Summarized(self))

    def _needs_rows(self, *args, **kwargs):
        raise NotImplementedError("this refits, profiles or simulates from the rows in memory, which "
                                  "a fit to Dask data does not hold (Wald intervals do not)")

    def confint(self, method: str = "profile", level: float = 0.95, parm=None, **kw):
        """Wald intervals (``method="wald"``); profiles and the bootstrap need the rows."""
        if method.lower() != "wald":
            self._needs_rows()
        return super().confint(method=method, level=level, parm=parm, **kw)

    bootstrap = simulate = refit = profile = predict = _needs_rows


class _Summarized:
    """A Dask GLMM as its summary reads it: the scaled residuals stood for by their exact quantiles
    (the five type-7 quantiles of those five numbers are the numbers themselves)."""

    def __init__(self, fit: DaskGlmmResults):
        self._fit = fit

    def __getattr__(self, name: str):
        return getattr(self._fit, name)

    @property
    def scaled_resid(self) -> np.ndarray:
        return self._fit.resid_quantiles().to_numpy()


# -- the fit -------------------------------------------------------------------------


def mixed_dask_glmm(formula: str, data, *, family, nagq: int = 1, weights: str | None = None,
                    offset: str | None = None, na_action: str = "omit", data_name: str | None = None,
                    maxeval: int = 100_000) -> DaskGlmmResults:
    """Fit a GLMM to a Dask DataFrame, as in memory (``mixedfit.mixed`` calls this).

    The partitions' designs are persisted, not the data frame: every PIRLS
    step is a pass over them, and each holds what its pass reads, ready (see
    the module's description).

    Raises
    ------
    ModelSpecError
        nagq > 1 for a model other than a single scalar random-effects term
        (lme4's restriction, as in memory), after the levels pass.
    """
    fam = make_family(family)
    opened = opening(formula, data, weights, offset, na_action, family=fam)
    plan, timings = opened.plan, opened.timings

    clock = time.perf_counter()
    models = _persisted([delayed(_partition_model)(p, shared(plan)) for p in opened.parts])
    checks = compute(tree_reduce([delayed(_partition_checks)(m) for m in models]))
    design, keep = checked(opened.structure, checks.n, checks.n_dropped, checks.moments)
    if len(keep) < len(plan.xnames):  # X's columns dropped for rank deficiency
        plan = dataclasses.replace(plan, xkeep=keep)
        models = _persisted([delayed(_without_columns)(m, keep) for m in models])
    timings["designs"] = time.perf_counter() - clock

    clock = time.perf_counter()
    model = DaskGlmmModel(design, fam, nagq, models, checks.totals)
    fitted = model.optimize(maxeval)
    timings["fit"] = time.perf_counter() - clock
    results = DaskGlmmResults(model, fitted, opened.data, plan, timings, data_name=data_name,
                              weights_name=weights, offset_name=offset)
    warn_fit(fitted)
    return results


def _persisted(tasks: list) -> list:
    """The tasks' values kept where they were computed (in this process, or on the cluster's workers)."""
    import dask

    return list(dask.persist(*tasks))
