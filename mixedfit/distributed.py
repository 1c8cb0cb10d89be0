"""The exact fit of data too large for one machine: the linear Dask driver (GLMMs:
``mixedfit.dask_glmm``; the opening both share: ``mixedfit.dask_opening``).

Every cross product the fit needs is a sum over rows
(``CrossBlocks``), so the data are read partition by
partition, twice, and only sums come back:

1. **levels** (``mixedfit.dask_opening.levels_pass``): the values and
   combinations each partition's factor columns hold fix every factor's
   levels; parquet files and partitions that cannot make one table are
   refused before, by name.
2. **sums**: each partition, its factor columns made categorical on those
   levels, becomes a ``Design`` with
   ``build_design(..., levels=...)`` (which drops no level in a partition)
   and then its cross products, which are added up in a tree.

What a partition is to the model (its columns, the plan of levels, its
design) is ``mixedfit.partitions``; the tasks and their reduction tree
``mixedfit.dask_tasks``.  The checks that need every row (numbers of levels,
the rank and scales of X) are made on the sums
(``mixedfit.dask_opening.checked``); the model is then fitted on the sums
exactly as in memory: estimates, standard errors and objective agree with
the in-memory fit to rounding.

What needs the rows again (fitted values, residuals, predictions) is
computed lazily, partition by partition, as Dask Series
(``mixedfit.dask_results.DaskResults``).  The summary's scaled-residual
quantiles are exact: two more passes find the order statistics
(``mixedfit.quantiles``).

Not supported: transformations whose value depends on all rows (``scale``,
``poly``, splines: each partition would use its own), grouping factors
that are not columns or interactions of columns, ``factor()`` of a numeric
column in the fixed effects (make the column categorical instead), and
what refits or simulates from the rows (``bootstrap``, ``simulate``,
``refit``, profiles of fixed effects).

Examples
--------
>>> import dask.dataframe as dd
>>> import mixedfit as mf
>>> sleep = dd.from_pandas(mf.load_dataset("sleepstudy"), npartitions=3)
>>> fit = mf.mixed("Reaction ~ Days + (Days | Subject)", sleep)
>>> fit.fixef.round(3).tolist()
[251.405, 10.467]
>>> round(float(fit.resid.abs().max().compute()), 2)  # a lazy Dask Series
132.55
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .blocks import CrossBlocks, engine_plan
from .column_types import check_parquet_files
from .dask_glmm import DaskGlmmResults, mixed_dask_glmm
from .dask_opening import Moments, checked, opening
from .dask_results import DaskResults
# Every pass over the data goes through _compute (the tests stop the passes there).
from .dask_tasks import compute as _compute, delayed, shared, tree_reduce
from .family import Family, is_linear_model
from .formula import parse_formula
from .model import MixedModel
from .partitions import Plan, model_columns, partition_design, read_names
from .results import MixedResults

__all__ = ["mixed_dask", "mixed_parquet", "DaskResults"]


# -- pass 2: the sums -----------------------------------------------------------


@dataclass
class _Sums:
    """A partition's contribution: cross products, moments, rows dropped."""

    blocks: CrossBlocks
    moments: Moments
    n_dropped: int

    def __add__(self, other: "_Sums") -> "_Sums":
        return _Sums(self.blocks + other.blocks, self.moments + other.moments,
                     self.n_dropped + other.n_dropped)


def _partition_sums(part: pd.DataFrame, plan: Plan, engine_terms: list[list[int]]) -> _Sums | None:
    """Pass 2 on one partition (None if it has no rows)."""
    if part.empty:
        return None
    design = partition_design(part, plan)
    return _Sums(CrossBlocks.from_design(design, engine_terms), Moments.from_design(design),
                 design.n_dropped)


def _without_x_columns(blocks: CrossBlocks, keep: list[int]) -> CrossBlocks:
    """The blocks with only X's columns ``keep`` (X and y come last in F0 and Arr).

    They are summed in the first partition's frame (``CrossBlocks.__add__``):
    first put in the frame of all the rows' least squares fit on the columns kept
    (``CrossBlocks.in_least_squares_frame``), so that ỹ is the residual the fit in
    memory factors and holds nothing of the columns dropped.
    """
    blocks = blocks.in_least_squares_frame(keep)
    p = blocks.F0.shape[0] - 1
    qr = blocks.Arr.shape[0] - p - 1
    rows = np.r_[keep, p]
    rest = np.r_[np.arange(qr), qr + rows]
    return dataclasses.replace(blocks, F0=blocks.F0[rows], Arr=blocks.Arr[np.ix_(rest, rest)],
                               frame=blocks.frame.columns(keep))


# -- the fit --------------------------------------------------------------------


def mixed_dask(formula: str, data, *, reml: bool = True, weights: str | None = None,
               offset: str | None = None, na_action: str = "omit", data_name: str | None = None,
               start=None, maxeval: int = 100_000) -> "DaskResults":
    """Fit a linear mixed model to a Dask DataFrame, exactly as in memory.

    ``mixedfit.mixed`` calls this for a Dask DataFrame.  Two passes over
    the partitions compute sums (see the module's description) on whatever
    Dask scheduler is current (a ``distributed.Client`` once one is made);
    only the sums, whose size depends on the numbers of levels and not of
    rows, reach this process.

    Parameters
    ----------
    formula : str
        An lme4 formula.
    data : dask.dataframe.DataFrame
        The data; only the columns the model reads are loaded.
    reml, na_action, data_name, start, maxeval
        As in ``mixedfit.mixed``.
    weights, offset : str, optional
        Column names (one value per row cannot be given for a Dask DataFrame).

    Returns
    -------
    DaskResults
        The fit; ``timings`` holds the seconds of each pass and of the fit.

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> import mixedfit as mf
    >>> data = dd.from_pandas(mf.load_dataset("Penicillin"), npartitions=4)
    >>> fit = mixed_dask("diameter ~ 1 + (1|plate) + (1|sample)", data)
    >>> fit.ngroups
    {'plate': 24, 'sample': 6}
    """
    opened = opening(formula, data, weights, offset, na_action)
    timings = opened.timings

    clock = time.perf_counter()
    engine_terms, plan_task = engine_plan(opened.structure.terms), shared(opened.plan)
    sums = _compute(tree_reduce([delayed(_partition_sums)(p, plan_task, engine_terms) for p in opened.parts]))
    timings["sums"] = time.perf_counter() - clock

    clock = time.perf_counter()
    design, keep = checked(opened.structure, sums.blocks.n, sums.n_dropped, sums.moments)
    plan = dataclasses.replace(opened.plan, xkeep=None if len(keep) == len(opened.plan.xnames) else keep)
    model = MixedModel(design, reml=reml, blocks=_without_x_columns(sums.blocks, keep))
    fit = model.fit(result=MixedResults, start=None if start is None else np.asarray(start, float),
                    maxeval=maxeval, data_name=data_name, weights_name=weights, offset_name=offset)
    timings["fit"] = time.perf_counter() - clock
    return DaskResults(fit, opened.data, plan, timings)


def mixed_parquet(formula: str, path, *, family: str | Family | None = None, storage_options: dict | None = None,
                  **kwargs) -> "DaskResults | DaskGlmmResults":
    """Fit a linear mixed model, or with ``family=`` a GLMM, to parquet files, reading only the model's
    columns.

    Parameters
    ----------
    formula : str
        An lme4 formula.
    path : str or list of str
        What ``dask.dataframe.read_parquet`` reads: a file, a directory, a
        glob (``"data/*.parquet"``) or a list of them, local or remote.
    family : str or Family, optional
        A GLMM's family, as in ``mixedfit.mixed`` (``"gaussian"`` with the
        identity link is the linear model).
    storage_options : dict, optional
        Passed to ``read_parquet`` (credentials of remote storage).
    **kwargs
        As for ``mixed_dask`` (``reml``, ``weights``, ``offset``, ...) or,
        with ``family=``, for ``mixedfit.dask_glmm.mixed_dask_glmm`` (``nagq``,
        ``weights``, ``offset``, ...).

    Returns
    -------
    DaskResults, or DaskGlmmResults with ``family=``

    Raises
    ------
    DataError
        Before any row is read, naming the file: a file that is not
        parquet (or is empty, or truncated), or that lacks a model column the
        others hold, or gives it another kind of type (text where the others
        hold numbers).

    Examples
    --------
    >>> import tempfile, mixedfit as mf
    >>> folder = tempfile.mkdtemp()
    >>> mf.load_dataset("Dyestuff").to_parquet(f"{folder}/dyestuff.parquet")
    >>> fit = mixed_parquet("Yield ~ 1 + (1|Batch)", f"{folder}/*.parquet", reml=False)
    >>> round(fit.llf, 4)  # lme4: logLik = -163.6635
    -163.6635
    >>> mf.load_dataset("cbpp").to_parquet(f"{folder}/cbpp.parquet")
    >>> fit = mixed_parquet("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                     f"{folder}/cbpp.parquet", family="binomial")
    >>> round(fit.minus2llf, 4)  # lme4: deviance 184.0531
    184.0531
    """
    import dask.dataframe as dd

    parsed = parse_formula(formula)
    try:
        data = dd.read_parquet(path, storage_options=storage_options)
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        # Dask reads one file's footer here; a broken one is named, other errors kept.
        # (mixed_dask checks the files of a read that succeeds.)
        check_parquet_files(path, storage_options,
                             read_names(parsed, kwargs.get("weights"), kwargs.get("offset")))
        raise
    columns = model_columns(parsed, data._meta, kwargs.get("weights"), kwargs.get("offset"))
    if family is not None and not is_linear_model(family):
        return mixed_dask_glmm(formula, data[columns], family=family, **kwargs)
    return mixed_dask(formula, data[columns], **kwargs)
