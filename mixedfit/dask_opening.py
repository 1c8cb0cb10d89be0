"""The opening both Dask drivers share: the checks before any row is read, the levels pass, and lme4's
checks on all the rows from their sums (the linear driver ``mixedfit.distributed``, the GLMM driver
``mixedfit.dask_glmm``).

1. **before any row** (``planned``): weights and an offset must name
   columns; parquet files are checked on their footers alone: each must be
   readable and hold every model column the others hold, with the same kind
   of type (``mixedfit.column_types``).  A ``DataError`` names the file and
   the column.
2. **levels** (``levels_pass``): each partition's model frame (rows with a
   missing value or a zero weight left out, as in memory) gives the values
   its factor columns take and the combinations of interaction grouping
   factors (``a:b``) it holds.  Their union fixes every factor's levels: a
   categorical column's categories keep their order (when Dask knows them),
   anything else is sorted as R's ``factor()`` sorts.  The partitions are
   checked to make one table, whatever their source.
3. **checks on the sums** (``checked``): from the rows' ``Moments``, which
   each driver sums in its own next pass, the functions the in-memory design
   uses (``mixedfit.terms``): numbers of levels, the rank of X (LINPACK's
   pivoted QR, on the R factor of a tree QR of the partitions' ``[X y]``,
   so a rank-deficient X loses the columns it loses in memory) and the
   scales of X.  What is left is the model's structure without a row
   (``rowless``), which the engines fit from sums.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .column_types import check_kinds, check_parquet_files, parquet_reads
# Every pass over the data goes through _compute (the tests stop the passes there).
from .dask_tasks import compute as _compute, delayed, tree_reduce
from .errors import DataError, FormulaError, caret_message
from .family import Family
from .formula import parse_formula
from .partitions import (Plan, categorized, factor_columns, factor_levels, group_levels, grouping_columns,
                         model_columns, read_names, seen_in_partition)
from .terms import Design, build_design, check_levels, drop_rank_deficient, warn_on_scales

__all__ = ["Opening", "opening", "checked", "planned", "levels_pass", "kept_columns", "rowless", "Moments"]


@dataclass
class Opening:
    """A Dask fit after its levels pass: the model's columns, their partitions (delayed), the plan
    with every factor's levels, the design of one complete row (the model's structure), and the
    seconds each pass took."""

    data: object
    parts: list
    plan: Plan
    structure: Design
    timings: dict[str, float] = field(default_factory=dict)


def opening(formula: str, data, weights: str | None, offset: str | None, na_action: str,
            family: Family | None = None) -> Opening:
    """The checks before any row is read (``planned``), then the levels pass (``levels_pass``).

    Raises
    ------
    DataError, FormulaError
        As ``planned`` and ``levels_pass``.
    """
    data, plan = planned(formula, data, weights, offset, na_action, family=family)
    parts = data.to_delayed()
    clock = time.perf_counter()
    plan, structure = levels_pass(data, parts, plan)
    return Opening(data, parts, plan, structure, {"levels": time.perf_counter() - clock})


def checked(structure: Design, n: int, n_dropped: int, moments: "Moments") -> tuple["_Structure", list[int]]:
    """lme4's checks on all the ``n`` rows (``kept_columns``): the model's structure without a row
    (``rowless``), standing for them, and the X columns kept."""
    keep, badly_scaled = kept_columns(structure, n, moments)
    return rowless(dataclasses.replace(structure, badly_scaled=badly_scaled), n, n_dropped, keep), keep


# -- before any row ---------------------------------------------------------------


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



# -- the levels pass --------------------------------------------------------------


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


# -- the checks on the sums --------------------------------------------------------


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


@dataclass
class _Structure(Design):
    """A design without rows: the model's structure, and how many rows it stands for."""

    n: int = 0

    @property
    def nobs(self) -> int:
        return self.n


def rowless(design: Design, n: int, n_dropped: int, keep: list[int]) -> _Structure:
    """The model's structure, with X's columns ``keep``, standing for ``n`` rows (``n_dropped`` left out).

    It holds no row, so that nothing can mistake a row of it for the data.
    """
    fields = {f.name: getattr(design, f.name) for f in dataclasses.fields(Design) if f.init}  # not xy_r: no rows
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
