"""The exact fit of data too large for one machine: the Dask driver (GLMMs: ``mixedfit.dask_glmm``,
which shares its levels pass and checks).

Every cross product the fit needs is a sum over rows
(``CrossBlocks``), so the data are read partition by
partition, twice, and only sums come back:

1. **levels** (``levels_pass``): each partition's model frame (rows with a
   missing value or a zero weight left out, as in memory) gives the values
   its factor columns take and the combinations of interaction grouping
   factors (``a:b``) it holds.  Their union fixes every factor's levels: a
   categorical column's categories keep their order (when Dask knows them),
   anything else is sorted as R's ``factor()`` sorts.
2. **sums**: each partition, its factor columns made categorical on those
   levels, becomes a ``Design`` with
   ``build_design(..., levels=...)`` (which drops no level in a partition)
   and then its cross products, which are added up in a tree.

What a partition is to the model (its columns, the plan of levels, its
design) is ``mixedfit.partitions``; the tasks and their reduction tree
``mixedfit.dask_tasks``.  Parquet files are checked before the first pass,
on their footers alone: each must be readable and hold every model column
the others hold, with the same kind of type (numbers, text, ...); the
levels pass checks the partitions so, whatever their source
(``mixedfit.column_types``).  A ``DataError`` names the file (or
partition) and the column.

The checks that need every row are made on the sums, with the functions the
in-memory design uses (``mixedfit.terms``): numbers of levels, the rank of X
(LINPACK's pivoted QR, on the R factor of a tree QR of the partitions'
``[X y]``, so a rank-deficient X loses the columns it loses in memory) and
the scales of X.  The model is then fitted on the sums exactly as in memory:
estimates, standard errors and objective agree with the in-memory fit to
rounding.

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
from .column_types import check_kinds, check_parquet_files, parquet_reads
from .dask_results import DaskResults
# Every pass over the data goes through _compute (the tests stop the passes there).
from .dask_tasks import compute as _compute, delayed, shared, tree_reduce
from .errors import DataError, FormulaError, caret_message
from .family import Family
from .formula import parse_formula
from .model import MixedModel
from .partitions import (Plan, categorized, factor_columns, factor_levels, group_levels,
                         grouping_columns, model_columns, partition_design, read_names,
                         seen_in_partition)
from .quantiles import exact_quantiles
from .results import MixedResults
from .terms import Design, build_design, check_levels, drop_rank_deficient, warn_on_scales

__all__ = ["mixed_dask", "mixed_parquet", "planned", "levels_pass", "kept_columns", "rowless", "Moments",
           "DaskResults", "exact_quantiles"]


# -- pass 1: the levels ---------------------------------------------------------


def levels_pass(data, parts: list, plan: Plan) -> tuple[Plan, Design]:
    """Pass 1: the plan with every factor's levels, and a one-row design of the model.

    Each partition's complete rows give the values and combinations they
    hold (``seen_in_partition``); their union fixes the levels: a
    categorical column's categories keep their order (when Dask knows them),
    anything else is sorted as R's ``factor()`` sorts.

    Parameters
    ----------
    data : dask.dataframe.DataFrame
        The model's columns.
    parts : list
        ``data.to_delayed()``.
    plan : Plan
        The plan before the levels are known.

    Returns
    -------
    (Plan, Design)
        The plan with the levels, categories and X's column names; the
        design of one complete row (the model's structure).

    Raises
    ------
    DataError
        No complete row, or partitions whose columns hold values of
        different kinds (``check_kinds``).
    """
    meta = data._meta
    with_levels, categorical = factor_columns(plan.parsed, meta, plan.columns,
                                              plan.groups)
    seen = _compute(tree_reduce([delayed(seen_in_partition)(p, plan, with_levels, number)
                                 for number, p in enumerate(parts)]))
    if seen is None or seen.example.empty:
        raise DataError("0 (non-NA) cases: no row of the data is complete")
    check_kinds(seen.kinds, meta)
    known = {c: list(data[c].cat.categories) for c in with_levels
             if isinstance(meta[c].dtype, pd.CategoricalDtype) and data[c].cat.known}
    categories = {c: factor_levels(seen.values[c], known.get(c)) for c in with_levels}
    levels = {g: group_levels(cols, categories, seen.combinations.get(g))
              for g, cols in plan.groups.items()}
    plan = dataclasses.replace(plan, categories={c: categories[c] for c in categorical},
                               levels=levels)
    design = build_design(plan.formula, categorized(seen.example, plan), weights=plan.weights,
                          offset=plan.offset, na_action=plan.na_action, levels=levels,
                          family=plan.family)
    return dataclasses.replace(plan, xnames=design.xnames), design


# -- pass 2: the sums -----------------------------------------------------------


@dataclass
class Moments:
    """Unweighted summaries of ``[X t]`` (t = y − offset) for the whole-data checks.

    ``r`` is the R factor of a QR of ``[X t]``: the R of two stacked R's is
    the R of all their rows (tree QR), and keeps QR's accuracy.
    """

    r: np.ndarray
    total: np.ndarray
    binary: np.ndarray

    def __add__(self, other: "Moments") -> "Moments":
        r = np.linalg.qr(np.vstack([self.r, other.r]), mode="r")
        return Moments(r, self.total + other.total, self.binary & other.binary)

    @classmethod
    def from_design(cls, design: Design) -> "Moments":
        t = design.y if design.offset is None else design.y - design.offset
        r = np.linalg.qr(np.column_stack([design.X, t]), mode="r")
        binary = np.all((design.X == 0) | (design.X == 1), axis=0)
        return cls(r, design.X.sum(axis=0), binary)


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


# -- checks on the sums ---------------------------------------------------------


def kept_columns(structure: Design, n: int, m: Moments) -> tuple[list[int], bool]:
    """lme4's checks on all the ``n`` rows (levels, rank, scales) from their moments; the X columns
    kept, and whether their scales differ as checkScaleX warns."""
    check_levels(structure.terms, n)
    p = len(structure.xnames)
    # R has the inner products of X's columns: the pivoted QR of R decides as that of X.
    _, kept, _ = drop_rank_deficient(m.r[:, :p], structure.xnames)
    keep = [structure.xnames.index(name) for name in kept]
    continuous = [j for j in keep if not m.binary[j]]
    if not continuous or n < 2:
        return keep, False
    squares = np.sum(m.r[:, continuous] ** 2, axis=0)
    return keep, warn_on_scales(np.sqrt(np.maximum(squares - m.total[continuous] ** 2 / n, 0) / (n - 1)))


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


@dataclass
class _Structure(Design):
    """A design without rows: the model's structure, and how many rows it stands for."""

    n: int = 0

    @property
    def nobs(self) -> int:
        return self.n


# -- the fit --------------------------------------------------------------------


def planned(formula: str, data, weights: str | None, offset: str | None, na_action: str,
            family: Family | None = None) -> tuple:
    """The checks before any row is read, the data's model columns and the plan before the levels pass.

    Raises ``DataError`` for weights or an offset given as values, or a
    parquet file that does not fit (``check_parquet_files``);
    ``FormulaError`` for a formula without random effects.
    """
    for what, value in (("weights", weights), ("offset", offset)):
        if value is not None and not isinstance(value, str):
            raise DataError(f"{what} must name a column of Dask data, not be given as values")
    parsed = parse_formula(formula)
    if not parsed.bars:
        raise FormulaError(caret_message(formula, 0, len(formula),
                                         "no random effects terms specified in formula"))
    columns = model_columns(parsed, data._meta, weights, offset)
    for path, storage_options in parquet_reads(data):
        check_parquet_files(path, storage_options, read_names(parsed, weights, offset))
    return data[columns], Plan(formula, parsed, weights, offset, na_action, columns,
                               grouping_columns(parsed), family=family)


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
    data, plan = planned(formula, data, weights, offset, na_action)
    parts = data.to_delayed()
    timings = {}

    clock = time.perf_counter()
    plan, design = levels_pass(data, parts, plan)
    timings["levels"] = time.perf_counter() - clock

    clock = time.perf_counter()
    engine_terms, plan_task = engine_plan(design.terms), shared(plan)
    sums = _compute(tree_reduce([delayed(_partition_sums)(p, plan_task, engine_terms) for p in parts]))
    timings["sums"] = time.perf_counter() - clock

    clock = time.perf_counter()
    keep, badly_scaled = kept_columns(design, sums.blocks.n, sums.moments)
    plan = dataclasses.replace(plan, xkeep=None if len(keep) == len(plan.xnames) else keep)
    model = MixedModel(rowless(dataclasses.replace(design, badly_scaled=badly_scaled), sums.blocks.n,
                               sums.n_dropped, keep),
                       reml=reml, blocks=_without_x_columns(sums.blocks, keep))
    fit = model.fit(result=MixedResults, start=None if start is None else np.asarray(start, float),
                    maxeval=maxeval, data_name=data_name, weights_name=weights, offset_name=offset)
    timings["fit"] = time.perf_counter() - clock
    return DaskResults(fit, data, plan, timings)


def rowless(design: Design, n: int, n_dropped: int, keep: list[int]) -> _Structure:
    """The model's structure, with X's columns ``keep``, standing for ``n`` rows (``n_dropped`` left out).

    It holds no row, so that nothing can mistake a row of it for the data.
    """
    fields = {f.name: getattr(design, f.name) for f in dataclasses.fields(Design)}
    fields.update(
        y=design.y[:0], X=design.X[:0, keep], rows=design.rows[:0],
        terms=[dataclasses.replace(t, z=t.z[:0], codes=t.codes[:0]) for t in design.terms],
        weights=None if design.weights is None else design.weights[:0],
        offset=None if design.offset is None else design.offset[:0],
        trials=None if design.trials is None else design.trials[:0],
        xnames=[design.xnames[j] for j in keep],
        dropped_xnames=[x for j, x in enumerate(design.xnames) if j not in keep],
        n_dropped=n_dropped)
    return _Structure(**fields, n=n)


def mixed_parquet(formula: str, path, *, storage_options: dict | None = None,
                  **kwargs) -> "DaskResults":
    """Fit a linear mixed model to parquet files, reading only the model's columns.

    Parameters
    ----------
    formula : str
        An lme4 formula.
    path : str or list of str
        What ``dask.dataframe.read_parquet`` reads: a file, a directory, a
        glob (``"data/*.parquet"``) or a list of them, local or remote.
    storage_options : dict, optional
        Passed to ``read_parquet`` (credentials of remote storage).
    **kwargs
        As for ``mixed_dask`` (``reml``, ``weights``, ``offset``, ...).

    Returns
    -------
    DaskResults

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
    return mixed_dask(formula, data[columns], **kwargs)
