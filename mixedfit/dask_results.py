"""The fit of Dask data: lme4's results, with what needs the rows computed lazily, partition by partition.

Everything computed from the estimates (``fixef``, ``vcov``, ``ranef``,
``varcorr``, ``theta``, ``llf``, Wald intervals, ...) is as for an
in-memory fit: the model holds the summed cross products.  What needs the
rows again (fitted values, residuals, predictions) is a lazy Dask Series:
each partition becomes its design (``mixedfit.partitions.partition_design``)
and reads the estimates there (``RowsFit``).  The summary's scaled-residual
quantiles are exact (``mixedfit.quantiles.exact_quantiles``, two passes).
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .dask_tasks import shared
from .inference.predict import predict
from .partitions import Plan, partition_design
from .quantiles import exact_quantiles
from .results import MixedResults, Summary
from .terms import Design

__all__ = ["DaskResults", "RowsFit"]

_QUANTILES = ("Min", "1Q", "Median", "3Q", "Max")


@dataclass(frozen=True)
class _ModelView:
    """What ``mixedfit.inference.predict.predict`` reads of ``fit.model``: the design."""

    design: Design


@dataclass(frozen=True)
class RowsFit:
    """A fit's estimates read on some rows: fitted values, residuals and predictions there.

    It holds β̂, the conditional modes b̂ and σ̂, not the cross products and
    their factor (which the rows do not need, and whose size grows with the
    numbers of levels), so it is small enough to send to every worker.
    ``on(design)`` reads the same estimates on another design's rows (one
    partition); the model's own design, without rows, serves predictions
    on new data.

    Attributes
    ----------
    model : object with a ``design``
        The rows (``model.design``), as ``mixedfit.inference.predict.predict``
        reads a fit.
    beta : ndarray
        β̂.
    b : tuple of ndarray
        The conditional modes per random-effects term, in lme4's order,
        each (levels, columns).
    sigma : float
        σ̂.
    random_effects : dict of str to DataFrame
        ``ranef()`` of the fit.
    """

    model: _ModelView
    beta: np.ndarray
    b: tuple[np.ndarray, ...]
    sigma: float
    random_effects: dict[str, pd.DataFrame]

    @classmethod
    def of(cls, fit: MixedResults) -> "RowsFit":
        """The estimates of ``fit``, on its own rows."""
        ranef = fit.ranef()
        b = tuple(frame.to_numpy() for frame in _per_term(ranef, fit.model.design))
        return cls(_ModelView(fit.model.design), fit.fixef.to_numpy(), b, fit.sigma, ranef)

    def on(self, design: Design) -> "RowsFit":
        """The same estimates on the rows of ``design`` (the model's structure, other rows)."""
        return dataclasses.replace(self, model=_ModelView(design))

    @property
    def xnames(self) -> list[str]:
        return list(self.model.design.xnames)

    @property
    def fixef(self) -> pd.Series:
        return pd.Series(self.beta, index=self.xnames)

    @property
    def _b(self) -> tuple[np.ndarray, ...]:
        # the conditional modes per term, under the name predict reads of a fit
        return self.b

    def ranef(self) -> dict[str, pd.DataFrame]:
        return self.random_effects

    def predict(self, newdata=None, re_form=None, allow_new_levels: bool = False) -> pd.Series:
        """Predictions as ``mixedfit.inference.predict.predict``."""
        return predict(self, newdata=newdata, re_form=re_form, allow_new_levels=allow_new_levels)

    @property
    def fittedvalues(self) -> pd.Series:
        """Xβ̂ + Zb̂ + offset on the rows (the prediction with every random-effects term)."""
        return self.predict()

    @property
    def resid(self) -> pd.Series:
        """Response residuals y − fitted."""
        design = self.model.design
        return pd.Series(design.y, index=design.rows) - self.fittedvalues

    @property
    def scaled_resid(self) -> pd.Series:
        """Pearson residuals divided by σ̂."""
        weights = self.model.design.weights
        resid = self.resid
        return (resid if weights is None else resid * np.sqrt(weights)) / self.sigma


def _per_term(ranef: dict[str, pd.DataFrame], design: Design) -> list[pd.DataFrame]:
    """``ranef()``'s frames (terms on one grouping factor side by side) split by term, in lme4's order."""
    used: dict[str, int] = {}
    out = []
    for term in design.terms:
        start = used.get(term.group, 0)
        out.append(ranef[term.group].iloc[:, start:start + term.size])
        used[term.group] = start + term.size
    return out


def _on_rows(part: pd.DataFrame, plan: Plan, estimates: RowsFit,
             how: Callable[[RowsFit], pd.Series]) -> pd.Series:
    """``how`` of the estimates on one partition's rows."""
    if part.empty:
        return _float_series(part.index)
    return how(estimates.on(partition_design(part, plan)))


def _predicted_new(part: pd.DataFrame, estimates: RowsFit, **options) -> pd.Series:
    return estimates.predict(part, **options)


def _float_series(meta_index: pd.Index) -> pd.Series:
    return pd.Series([], dtype=float, index=meta_index[:0])


class DaskResults(MixedResults):
    """A fit to Dask data (``mixedfit.distributed.mixed_dask``).

    Everything computed from the estimates (``fixef``, ``vcov``, ``ranef``,
    ``varcorr``, ``theta``, ``llf``, Wald intervals, ...) is as for an
    in-memory fit.  What needs the rows is a lazy Dask Series, one
    partition at a time: ``fittedvalues``, ``resid``,
    ``scaled_resid`` and ``predict``; ``summary`` reads exact
    scaled-residual quantiles (two passes, ``resid_quantiles``).
    Refits from the rows (``bootstrap``, ``simulate``, ``refit``,
    ``profile``, profile intervals) raise ``NotImplementedError``;
    ``mixedfit.anova`` works: its REML-to-ML refit reuses the summed cross products.

    Parameters
    ----------
    fit : MixedResults
        The fit of the model on the summed cross products (its design has no rows).
    data : dask.dataframe.DataFrame
        The data's model columns.
    plan : Plan
        How each partition becomes its design.
    timings : dict of str to float
        Seconds taken by each pass and by the fit.

    Attributes
    ----------
    timings : dict of str to float
        Seconds taken by the levels pass, the sums pass (the reduction) and
        the checks and fit on the sums.
    """

    def __init__(self, fit: MixedResults, data, plan: Plan, timings: dict[str, float]):
        super().__init__(fit.model, fit.optsummary, fit.model.convergence(fit.optsummary),
                         data_name=fit.data_name, weights_name=fit.weights_name,
                         offset_name=fit.offset_name)
        self._data = data
        self._plan = plan
        self.timings = timings

    @functools.cached_property
    def _estimates(self) -> RowsFit:
        """β̂, b̂ and σ̂ as the rows read them (what each worker is sent)."""
        return RowsFit.of(self)

    def _per_partition(self, how: Callable[[RowsFit], pd.Series]):
        return self._data.map_partitions(
            _on_rows, shared(self._plan), shared(self._estimates), how,
            meta=_float_series(self._data._meta.index))

    @property
    def fittedvalues(self):
        """Fitted values Xβ̂ + Zb̂ + offset on the rows used (a Dask Series)."""
        return self._per_partition(operator.attrgetter("fittedvalues"))

    @property
    def resid(self):
        """Response residuals y − fitted (a Dask Series)."""
        return self._per_partition(operator.attrgetter("resid"))

    @property
    def scaled_resid(self):
        """Pearson residuals divided by σ̂ (a Dask Series)."""
        return self._per_partition(operator.attrgetter("scaled_resid"))

    def predict(self, newdata=None, re_form=None, allow_new_levels: bool = False):
        """Predictions as ``mixedfit.inference.predict.predict``.

        Without ``newdata``, on the rows fitted; with a Dask DataFrame, on its
        partitions (both lazy Dask Series); other new data are predicted at once.
        """
        options = {"re_form": re_form, "allow_new_levels": allow_new_levels}
        if newdata is None:
            return self._per_partition(operator.methodcaller("predict", **options))
        if type(newdata).__module__.startswith("dask"):
            return newdata.map_partitions(_predicted_new, shared(self._estimates), **options,
                                          meta=_float_series(newdata._meta.index))
        return self._estimates.predict(newdata, **options)

    @functools.cached_property
    def _quantiles(self) -> np.ndarray:
        return exact_quantiles(self.scaled_resid, (0.0, 0.25, 0.5, 0.75, 1.0))

    def resid_quantiles(self) -> pd.Series:
        """Exact quantiles (R's type 7) of the scaled residuals: Min, 1Q, Median, 3Q, Max.

        Computed once, in two passes over the data (``exact_quantiles``).
        """
        return pd.Series(self._quantiles, index=list(_QUANTILES))

    @functools.cached_property
    def _summarized(self) -> "_SummarizedFit":
        return _SummarizedFit(self)

    def summary(self, ddf: str | None = None) -> Summary:
        """lme4's ``summary(fit)``, with the exact scaled-residual quantiles."""
        return self._summarized.summary(ddf=ddf)

    def _repr_html_(self) -> str:
        """The summary as HTML tables, its residual quantiles exact (``summary``)."""
        return self._summarized._repr_html_()

    def confint(self, method: str = "profile", level: float = 0.95, parm=None, **kw):
        """Wald intervals (``method="wald"``); profiles and the bootstrap need the rows."""
        if method.lower() != "wald":
            self._needs_rows()
        return super().confint(method=method, level=level, parm=parm, **kw)

    def _needs_rows(self, *args, **kwargs):
        raise NotImplementedError("this refits or simulates from the rows in memory, which a "
                                  "fit to Dask data does not hold (Wald intervals do not)")

    bootstrap = simulate = refit = profile = _needs_rows


class _SummarizedFit(MixedResults):
    """A Dask fit as its printed summary reads it: the scaled residuals stood for by their quantiles.

    The five type-7 quantiles of those five numbers are the numbers
    themselves, so the summary prints the exact quantiles of every row's
    scaled residual.  Everything else is the fit's own: the same model at
    the same optimum.
    """

    def __init__(self, fit: DaskResults):
        super().__init__(fit.model, fit.optsummary, fit.model.convergence(fit.optsummary),
                         data_name=fit.data_name, weights_name=fit.weights_name,
                         offset_name=fit.offset_name)
        self._resid_quantiles = fit.resid_quantiles().to_numpy()

    @property
    def scaled_resid(self) -> np.ndarray:
        """The exact quantiles of the scaled residuals of every row (Min, 1Q, Median, 3Q, Max)."""
        return self._resid_quantiles
