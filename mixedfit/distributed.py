"""The exact fit of data too large for one machine: Dask DataFrames and parquet files.

Every cross product the fit needs is a sum over rows
(``CrossBlocks``), so the data are read partition by
partition, twice, and only sums come back:

1. **levels**: each partition's model frame (rows with a missing value or a
   zero weight left out, as in memory) gives the values its factor columns
   take and the combinations of interaction grouping factors (``a:b``) it
   holds.  Their union fixes every factor's levels: a categorical column's
   categories keep their order (when Dask knows them), anything else is
   sorted as R's ``factor()`` sorts.
2. **sums**: each partition, its factor columns made categorical on those
   levels, becomes a ``Design`` with
   ``build_design(..., levels=...)`` (which drops no level in a partition)
   and then its cross products, which are added up in a tree.

Parquet files are checked before the first pass, on their footers alone:
each must be readable and hold every model column the others hold, with
the same kind of type (numbers, text, ...); the levels pass checks the
partitions so, whatever their source.  A ``DataError``
names the file (or partition) and the column.

The checks that need every row are made on the sums: numbers of levels,
the rank of X (LINPACK's pivoted QR, on the R factor of a tree QR of the
partitions' ``[X y]``, so a rank-deficient X loses the columns it loses in
memory) and the scales of X.  The model is then fitted on the sums exactly
as in memory: estimates, standard errors and objective agree with the
in-memory fit to rounding.

What needs the rows again (fitted values, residuals, predictions) is
computed lazily, partition by partition, as Dask Series.  The summary's
scaled-residual quantiles are exact: two more passes find the order
statistics (see ``DaskResults.resid_quantiles``).

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

import copy
import dataclasses
import functools
import math
import operator
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .blocks import CrossBlocks, engine_plan
from .errors import DataError, FormulaError, ModelSpecError, caret_message
from .formula import parse_formula
from .formula.evaluate import Evaluator
from .formula.grouping import grouping_variables
from .formula.nodes import Arg, Name, Node
from .formula.rvalues import level_labels_of, sort_levels
from .formula.spec import ParsedFormula
from .inference.predict import _DATA_DEPENDENT, _calls
from .model import MixedModel
from .results import MixedResults, Summary
from .terms import (Design, _check_levels, _drop_rank_deficient, _model_frame, _model_variables,
                    _plural, _warn_on_scales, build_design)

__all__ = ["mixed_dask", "mixed_parquet", "DaskResults"]

_SPLIT_EVERY = 8  # partial sums combined per task of the reduction tree
_BIN_BITS = 20  # histogram bins of the exact quantiles: 2**20 over the float64 order


# -- the model's columns --------------------------------------------------------


def _names(node: Node) -> set[str]:
    """The symbols a syntax tree reads (columns, and constants such as ``pi``)."""
    found: set[str] = set()
    stack: list[Any] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Arg):
            stack.append(item.value)
        elif isinstance(item, Name):
            found.add(item.name)
        elif isinstance(item, Node):
            for field in dataclasses.fields(item):
                value = getattr(item, field.name)
                stack.extend(value if isinstance(value, tuple) else [value])
    return found


def _grouping_columns(parsed: ParsedFormula) -> dict[str, tuple[str, ...]]:
    """Each grouping factor's columns (two for ``a:b``), by its label."""
    out = {}
    for bar in parsed.bars:
        nodes = grouping_variables(bar.group)
        if not all(isinstance(node, Name) for node in nodes):
            raise ModelSpecError(f"grouping factor '{bar.group_label}': a fit on Dask data needs "
                                 "grouping factors that are columns or interactions of columns "
                                 "(a:b); add the column to the data first")
        out[bar.group_label] = tuple(node.name for node in nodes)
    return out


def _read_names(parsed: ParsedFormula, weights: str | None, offset: str | None) -> set[str]:
    """The names the model reads: columns, and constants such as ``pi``."""
    names = {name for name in (weights, offset) if name is not None}
    for variable in _model_variables(parsed):
        bad = _calls(variable) & _DATA_DEPENDENT
        if bad:
            raise ModelSpecError(f"{', '.join(sorted(bad))}() depends on every row, and each "
                                 "partition would use its own: compute that column beforehand")
        names |= _names(variable)  # a name that is no column is a constant, or an error later
    return names


def _model_columns(parsed: ParsedFormula, meta: pd.DataFrame, weights: str | None,
                   offset: str | None) -> list[str]:
    """The data columns the model reads (an unknown weights or offset column is an error)."""
    names = _read_names(parsed, weights, offset)
    evaluator = Evaluator(meta, parsed.text)
    for name in (weights, offset):
        if name is not None:
            evaluator.column(name)  # raises the unknown-column error
    return [c for c in meta.columns if str(c) in names]


def _factor_columns(parsed: ParsedFormula, meta: pd.DataFrame, columns: list[str],
                    groups: dict[str, tuple[str, ...]]) -> tuple[list[str], list[str]]:
    """Columns whose levels must be fixed, and those among them to make categorical.

    Grouping columns and non-numeric columns have levels.  A numeric
    grouping column that the model also reads as a number stays numeric: its
    grouping factor is coded on the fixed levels by label instead.
    """
    grouping = {c for cols in groups.values() for c in cols}
    other = list(parsed.fixed_terms.variables)
    for bar in parsed.bars:
        other.extend(parsed.bar_terms(bar).variables)
    read_as_numbers = set().union(*(_names(v) for v in other))
    numeric = {c for c in columns if pd.api.types.is_numeric_dtype(meta[c].dtype)
               and not isinstance(meta[c].dtype, pd.CategoricalDtype)}
    with_levels = [c for c in columns if c in grouping or c not in numeric]
    categorical = [c for c in with_levels if c not in numeric or c not in read_as_numbers]
    return with_levels, categorical


# -- files and partitions that cannot make one table ---------------------------
#
# Dask takes the columns' types from one file (or partition) and finds out
# about the others only when it reads them.  A file whose model column is text
# where the others hold numbers reached the sums pass, where each text value
# became a level of a factor: a dense rows × rows fixed-effects matrix per
# partition, before the error.  Parquet files are checked first, on their
# footers alone; partitions of other sources in the levels pass.

_PARQUET_EXTENSIONS = (".parq", ".parquet", ".pq")  # what read_parquet reads from a directory


def _kind(dtype) -> str:
    """What a formula makes of a column of this type: numbers, logical values, text (levels)
    or another type (its name).  A categorical is what its categories are."""
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "logical values"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numbers"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return "text"
    return str(dtype)


def _values_kind(column: pd.Series) -> str | None:
    """``_kind`` of a column, by its values where its type is object; None if all missing."""
    if not pd.api.types.is_object_dtype(column.dtype):
        return _kind(column.dtype)
    inferred = pd.api.types.infer_dtype(column, skipna=True)
    return {"empty": None, "string": "text", "floating": "numbers", "integer": "numbers",
            "mixed-integer-float": "numbers", "decimal": "numbers",
            "boolean": "logical values"}.get(inferred, f"values of type '{inferred}'")


def _arrow_kind(arrow_type) -> str | None:
    """``_kind`` of a parquet column's arrow type; None for a column of nulls only."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_null(arrow_type):
        return None  # goes with any type
    if pa.types.is_decimal(arrow_type):
        return "numbers"
    return _kind(arrow_type.to_pandas_dtype())


def _arrow_name(arrow_type) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        return f"categorical {arrow_type.value_type}"
    return str(arrow_type)


def _parquet_files(path, storage_options: dict | None) -> tuple[Any, list[str]]:
    """The filesystem, and the files ``dask.dataframe.read_parquet(path)`` reads."""
    import fsspec

    fs, _, paths = fsspec.core.get_fs_token_paths(path, mode="rb",
                                                  storage_options=storage_options or {})
    files: list[str] = []
    for where in paths:
        if fs.isdir(where):
            files.extend(sorted(f for f in fs.find(where) if f.endswith(_PARQUET_EXTENSIONS)))
        elif not where.endswith("_metadata"):  # also _common_metadata: summaries, not data
            files.append(where)
    if not files:
        raise DataError(f"no parquet file found at {path!r}")
    return fs, files


def _parquet_schema(fs, file: str):
    """The file's arrow schema, read from its footer alone."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with fs.open(file, "rb") as handle:
            return pq.read_schema(handle)
    except (OSError, ValueError, pa.ArrowException) as err:
        raise DataError(f"{file} is not a readable parquet file: {err}") from None


def _check_parquet_files(path, storage_options: dict | None, names: set[str]) -> None:
    """Refuse parquet files that cannot make one table of the model's columns, naming the file.

    Each file must be readable, hold each of ``names`` that any file holds
    (a name in none is a constant, a column of a partitioned directory's
    paths, or unknown: said later) and give it the kind of type the others
    give it (``_kind``).  Only the files' footers are read.
    """
    fs, files = _parquet_files(path, storage_options)
    schemas = {file: _parquet_schema(fs, file) for file in files}
    for column in sorted(names):
        types = {file: schema.field(column).type for file, schema in schemas.items()
                 if column in schema.names}
        missing = [file for file in files if file not in types]
        if types and missing:
            raise DataError(f"column '{column}' is missing from {missing[0]}"
                            f"{f' (and {len(missing) - 1} more files)' if len(missing) > 1 else ''}"
                            f"; {_plural(len(types), 'other file')} hold it")
        _check_same_kind(column, types)


def _check_same_kind(column: str, types: dict[str, Any]) -> None:
    """Refuse a column whose files give it different kinds of type, naming an odd file."""
    by_kind: dict[str, list[str]] = {}
    for file, arrow_type in types.items():
        kind = _arrow_kind(arrow_type)
        if kind is not None:
            by_kind.setdefault(kind, []).append(file)
    if len(by_kind) < 2:
        return
    usual = max(by_kind, key=lambda kind: len(by_kind[kind]))  # a tie: the first file's
    odd = next(files[0] for kind, files in by_kind.items() if kind != usual)
    raise DataError(f"column '{column}' is {_arrow_name(types[odd])} in {odd} but "
                    f"{_arrow_name(types[by_kind[usual][0]])} in "
                    f"{_plural(len(by_kind[usual]), 'other file')}: every file must give a "
                    "column the same type")


def _parquet_reads(data) -> list[tuple[Any, dict | None]]:
    """``(path, storage_options)`` of each ``read_parquet`` (on fsspec) behind a Dask DataFrame."""
    try:
        from dask.dataframe.dask_expr.io.parquet import ReadParquetFSSpec

        reads = list(data.expr.find_operations(ReadParquetFSSpec))
    except (ImportError, AttributeError):  # another Dask: its files are read unchecked
        return []
    return [(read.path, read.storage_options) for read in reads
            if isinstance(read.operand("filesystem"), str)]


def _check_kinds(kinds: dict[str, dict[str, int]], meta: pd.DataFrame) -> None:
    """Refuse a column whose partitions hold values of different kinds (``_kind``).

    ``kinds`` gives, for each column, the first partition holding each kind;
    the meta's type counts too unless it is object (which holds anything).
    The message names the later of the first two kinds found.
    """
    for column, found in kinds.items():
        where = {kind: f"partition {number}"
                 for kind, number in sorted(found.items(), key=lambda item: item[1])}
        dtype = meta[column].dtype
        if not pd.api.types.is_object_dtype(dtype):
            where = {_kind(dtype): f"the Dask DataFrame's meta ({dtype})", **where}
        if len(where) > 1:
            (kind, at), (other, other_at) = list(where.items())[:2]
            raise DataError(f"column '{column}' holds {other} in {other_at} but {kind} in {at}: "
                            "every partition must give a column the same type")


# -- pass 1: the levels ---------------------------------------------------------


@dataclass
class _Seen:
    """Values of the factor columns, and combinations of interactions, in complete rows.

    ``example`` is one complete row: the model's structure is built from it.
    """

    values: dict[str, np.ndarray]
    combinations: dict[str, pd.DataFrame]
    example: pd.DataFrame
    kinds: dict[str, dict[str, int]]  # by column, the first partition of each kind of values

    def __add__(self, other: "_Seen") -> "_Seen":
        # Arrays and frames, not sets: a set of numpy scalars pickles one object at a time.
        return _Seen({c: _distinct(np.concatenate([v, other.values[c]]))
                      for c, v in self.values.items()},
                     {g: pd.concat([v, other.combinations[g]]).drop_duplicates()
                      for g, v in self.combinations.items()},
                     self.example if len(self.example) else other.example,
                     {c: {**other.kinds[c], **k} for c, k in self.kinds.items()})


def _distinct(values) -> np.ndarray:
    return pd.unique(np.asarray(values))


@dataclass(frozen=True)
class _Plan:
    """What each partition needs to become its part of the model."""

    formula: str
    weights: str | None
    offset: str | None
    na_action: str
    columns: list[str]
    groups: dict[str, tuple[str, ...]]
    categories: dict[str, list] = dataclasses.field(default_factory=dict)
    levels: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    xnames: list[str] = dataclasses.field(default_factory=list)
    xkeep: list[int] | None = None


def _seen(part: pd.DataFrame, plan: _Plan, with_levels: list[str], number: int) -> _Seen | None:
    """Pass 1 on partition ``number``: what its complete rows hold (None if it has no rows)."""
    if part.empty:
        return None
    kinds = {c: {kind: number} if (kind := _values_kind(part[c])) else {} for c in plan.columns}
    parsed = parse_formula(plan.formula)
    frame, _, _ = _model_frame(parsed, Evaluator(part, plan.formula), plan.weights, plan.offset,
                               plan.na_action, fixed_levels=True)
    kept = part[frame.keep]
    values = {c: _distinct(kept[c].dropna().unique()) for c in with_levels}
    combinations = {g: kept[list(cols)].drop_duplicates() for g, cols in plan.groups.items()
                    if len(cols) > 1}
    return _Seen(values, combinations, kept.iloc[:1].copy(),  # a view would keep all rows alive
                 kinds)


def _ordered(values: np.ndarray, known: list | None) -> list:
    """A factor's levels: a known categorical's order, else R's sorted order."""
    present = values.tolist()  # Python scalars, as R's sort and labels expect
    if known is not None:
        used = set(present)
        return [c for c in known if c in used]
    return sort_levels(present)


def _group_levels(columns: tuple[str, ...], categories: dict[str, list],
                  combinations: pd.DataFrame | None) -> list[str]:
    """A grouping factor's level labels; ``a:b`` orders its combinations as lme4's ``%i%``.

    Values that print alike (``0.3`` and ``0.1 + 0.2``) are one level, as
    R's ``factor()`` makes them (see ``rvalues.as_factor``).
    """
    labels = [np.array(level_labels_of(categories[c]), dtype=object) for c in columns]
    if len(columns) == 1:
        return list(dict.fromkeys(labels[0]))
    codes = [pd.Categorical(combinations[c], categories=categories[c]).codes for c in columns]
    order = np.lexsort(codes[::-1])  # by the first column, then the next, ...
    joined = (":".join(parts) for parts in zip(*(lab[code[order]] for lab, code in zip(labels, codes))))
    return list(dict.fromkeys(joined))


# -- pass 2: the sums -----------------------------------------------------------


@dataclass
class _Moments:
    """Unweighted summaries of ``[X t]`` (t = y − offset) for the whole-data checks.

    ``r`` is the R factor of a QR of ``[X t]``: the R of two stacked R's is
    the R of all their rows (tree QR), and keeps QR's accuracy.
    """

    r: np.ndarray
    total: np.ndarray
    binary: np.ndarray

    def __add__(self, other: "_Moments") -> "_Moments":
        r = np.linalg.qr(np.vstack([self.r, other.r]), mode="r")
        return _Moments(r, self.total + other.total, self.binary & other.binary)

    @classmethod
    def from_design(cls, design: Design) -> "_Moments":
        t = design.y if design.offset is None else design.y - design.offset
        r = np.linalg.qr(np.column_stack([design.X, t]), mode="r")
        binary = np.all((design.X == 0) | (design.X == 1), axis=0)
        return cls(r, design.X.sum(axis=0), binary)


@dataclass
class _Sums:
    """A partition's contribution: cross products, moments, rows dropped."""

    blocks: CrossBlocks
    moments: _Moments
    n_dropped: int

    def __add__(self, other: "_Sums") -> "_Sums":
        return _Sums(self.blocks + other.blocks, self.moments + other.moments,
                     self.n_dropped + other.n_dropped)


def _categorized(part: pd.DataFrame, plan: _Plan) -> pd.DataFrame:
    """The partition with its factor columns made categorical on the fixed levels."""
    return part.assign(**{c: _on_categories(part[c], cats) for c, cats in plan.categories.items()})


def _on_categories(column: pd.Series, categories: list) -> pd.Series:
    """The column as a categorical with exactly these categories (others become missing)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.set_categories(categories)
    return pd.Series(pd.Categorical(column, categories=categories), index=column.index)


def _partition_design(part: pd.DataFrame, plan: _Plan) -> Design:
    """One partition's design, on the levels of the whole data set."""
    design = build_design(plan.formula, _categorized(part, plan), weights=plan.weights,
                          offset=plan.offset, na_action=plan.na_action, levels=plan.levels)
    if design.xnames != plan.xnames:
        raise DataError(f"a partition gives the fixed-effect columns {design.xnames}, not "
                        f"{plan.xnames}: a factor made inside the formula (factor(x)) takes "
                        "each partition's own levels; make the column categorical instead")
    if plan.xkeep is not None:
        design = dataclasses.replace(design, X=design.X[:, plan.xkeep],
                                     xnames=[design.xnames[j] for j in plan.xkeep])
    return design


def _partition_sums(part: pd.DataFrame, plan: _Plan, engine_terms: list[list[int]]) -> _Sums | None:
    """Pass 2 on one partition (None if it has no rows)."""
    if part.empty:
        return None
    design = _partition_design(part, plan)
    return _Sums(CrossBlocks.from_design(design, engine_terms), _Moments.from_design(design),
                 design.n_dropped)


def _delayed(function: Callable) -> Callable:
    import dask

    return dask.delayed(function)


def _shared(value: Any):
    """``value`` as one task, for every task to read (sent once to each worker).

    Make it once and pass that on: each call is a new key (an object with no
    deterministic token gets a random one), so a call per task would send a
    copy per task.
    """
    import dask

    return dask.delayed(value, traverse=False)


def _compute(value: Any) -> Any:
    import dask

    return dask.compute(value)[0]


def _skipping_none(combine: Callable) -> Callable:
    """``combine`` for values of which some are None (from empty partitions)."""
    def combined(a, b):
        return b if a is None else a if b is None else combine(a, b)
    return combined


def _tree_reduce(items: list, combine: Callable = operator.add,
                 split_every: int = _SPLIT_EVERY):
    """Combine delayed values in a tree of fan-in ``split_every``; None values are skipped."""
    combine = _skipping_none(combine)
    while len(items) > 1:
        items = [_delayed(functools.reduce)(combine, items[i:i + split_every])
                 for i in range(0, len(items), split_every)]
    return items[0]


# -- checks on the sums ---------------------------------------------------------


def _kept_columns(structure: Design, sums: _Sums) -> tuple[list[int], bool]:
    """lme4's checks on all the rows (levels, rank, scales); the X columns kept, and whether
    their scales differ as checkScaleX warns."""
    _check_levels(structure.terms, sums.blocks.n)
    p, m = len(structure.xnames), sums.moments
    # R has the inner products of X's columns: the pivoted QR of R decides as that of X.
    _, kept, _ = _drop_rank_deficient(m.r[:, :p], structure.xnames)
    keep = [structure.xnames.index(name) for name in kept]
    n = sums.blocks.n
    continuous = [j for j in keep if not m.binary[j]]
    if not continuous or n < 2:
        return keep, False
    squares = np.sum(m.r[:, continuous] ** 2, axis=0)
    return keep, _warn_on_scales(np.sqrt(np.maximum(squares - m.total[continuous] ** 2 / n, 0) / (n - 1)))


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
    for what, value in (("weights", weights), ("offset", offset)):
        if value is not None and not isinstance(value, str):
            raise DataError(f"{what} must name a column of Dask data, not be given as values")
    parsed = parse_formula(formula)
    if not parsed.bars:
        raise FormulaError(caret_message(formula, 0, len(formula),
                                         "no random effects terms specified in formula"))
    columns = _model_columns(parsed, data._meta, weights, offset)
    for path, storage_options in _parquet_reads(data):
        _check_parquet_files(path, storage_options, _read_names(parsed, weights, offset))
    data = data[columns]
    plan = _Plan(formula, weights, offset, na_action, columns, _grouping_columns(parsed))
    parts = data.to_delayed()
    timings = {}

    clock = time.perf_counter()
    plan, design = _levels_pass(data, parts, plan)
    timings["levels"] = time.perf_counter() - clock

    clock = time.perf_counter()
    engine_terms, shared = engine_plan(design.terms), _shared(plan)
    sums = _compute(_tree_reduce([_delayed(_partition_sums)(p, shared, engine_terms) for p in parts]))
    timings["sums"] = time.perf_counter() - clock

    clock = time.perf_counter()
    keep, badly_scaled = _kept_columns(design, sums)
    plan = dataclasses.replace(plan, xkeep=None if len(keep) == len(plan.xnames) else keep)
    model = MixedModel(_rowless(dataclasses.replace(design, badly_scaled=badly_scaled), sums, keep), reml=reml,
                       blocks=_without_x_columns(sums.blocks, keep))
    fit = model.fit(result=MixedResults, start=None if start is None else np.asarray(start, float),
                    maxeval=maxeval, data_name=data_name, weights_name=weights, offset_name=offset)
    timings["fit"] = time.perf_counter() - clock
    return DaskResults(fit, data, plan, timings)


def _levels_pass(data, parts: list, plan: _Plan) -> tuple[_Plan, Design]:
    """Pass 1: the plan with every factor's levels, and a one-row design of the model."""
    meta = data._meta
    with_levels, categorical = _factor_columns(parse_formula(plan.formula), meta, plan.columns,
                                               plan.groups)
    seen = _compute(_tree_reduce([_delayed(_seen)(p, plan, with_levels, number)
                                  for number, p in enumerate(parts)]))
    if seen is None or seen.example.empty:
        raise DataError("0 (non-NA) cases: no row of the data is complete")
    _check_kinds(seen.kinds, meta)
    known = {c: list(data[c].cat.categories) for c in with_levels
             if isinstance(meta[c].dtype, pd.CategoricalDtype) and data[c].cat.known}
    categories = {c: _ordered(seen.values[c], known.get(c)) for c in with_levels}
    levels = {g: _group_levels(cols, categories, seen.combinations.get(g))
              for g, cols in plan.groups.items()}
    plan = dataclasses.replace(plan, categories={c: categories[c] for c in categorical},
                               levels=levels)
    design = build_design(plan.formula, _categorized(seen.example, plan), weights=plan.weights,
                          offset=plan.offset, na_action=plan.na_action, levels=levels)
    return dataclasses.replace(plan, xnames=design.xnames), design


def _rowless(design: Design, sums: _Sums, keep: list[int]) -> _Structure:
    """The model's structure, with X's columns ``keep``, standing for the rows summed.

    It holds no row, so that nothing can mistake a row of it for the data.
    """
    fields = {f.name: getattr(design, f.name) for f in dataclasses.fields(Design)}
    fields.update(
        y=design.y[:0], X=design.X[:0, keep], rows=design.rows[:0],
        terms=[dataclasses.replace(t, z=t.z[:0], codes=t.codes[:0]) for t in design.terms],
        weights=None if design.weights is None else design.weights[:0],
        offset=None if design.offset is None else design.offset[:0],
        xnames=[design.xnames[j] for j in keep],
        dropped_xnames=[x for j, x in enumerate(design.xnames) if j not in keep],
        n_dropped=sums.n_dropped)
    return _Structure(**fields, n=sums.blocks.n)


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
        _check_parquet_files(path, storage_options,
                             _read_names(parsed, kwargs.get("weights"), kwargs.get("offset")))
        raise
    columns = _model_columns(parsed, data._meta, kwargs.get("weights"), kwargs.get("offset"))
    return mixed_dask(formula, data[columns], **kwargs)


# -- the fitted model -----------------------------------------------------------


def _light(fit: MixedResults) -> MixedResults:
    """The fit without its cross products and factor, to ship to every partition.

    What the rows need (β, the random effects b, σ) is computed first so the
    copy carries it.
    """
    fit._b, fit.pwrss  # noqa: B018 (cached on fit, so carried by the copy)
    light = copy.copy(fit)
    light.model = copy.copy(fit.model)
    light.model.cross = None
    light._factor = None
    return light


def _on_rows(part: pd.DataFrame, plan: _Plan, fit: MixedResults,
             how: Callable[[MixedResults], pd.Series]) -> pd.Series:
    """``how(fit)`` on one partition's rows: the fit's design swapped for the partition's."""
    if part.empty:
        return _float_series(part.index)
    local = copy.copy(fit)
    local.model = copy.copy(fit.model)
    local.model.design = _partition_design(part, plan)
    return how(local)


def _fitted(fit: MixedResults) -> pd.Series:
    return fit.fittedvalues


def _resid(fit: MixedResults) -> pd.Series:
    return fit.resid


def _scaled(fit: MixedResults) -> pd.Series:
    return pd.Series(fit.scaled_resid, index=fit.model.design.rows)


def _predicted(fit: MixedResults, **options) -> pd.Series:
    return fit.predict(None, **options)


def _predicted_new(part: pd.DataFrame, fit: MixedResults, **options) -> pd.Series:
    return fit.predict(part, **options)


def _float_series(meta_index: pd.Index) -> pd.Series:
    return pd.Series([], dtype=float, index=meta_index[:0])


class DaskResults(MixedResults):
    """A fit to Dask data (``mixed_dask``).

    Everything computed from the estimates (``fixef``, ``vcov``, ``ranef``,
    ``varcorr``, ``theta``, ``llf``, Wald intervals, ...) is as for an
    in-memory fit.  What needs the rows is a lazy Dask Series, one
    partition at a time: ``fittedvalues``, ``resid``,
    ``scaled_resid`` and ``predict``; ``summary`` reads exact
    scaled-residual quantiles (two passes, ``resid_quantiles``).
    Refits from the rows (``bootstrap``, ``simulate``, ``refit``,
    ``profile``, profile intervals) raise ``NotImplementedError``;
    ``mixedfit.anova`` works: its REML-to-ML refit reuses the summed cross products.

    Attributes
    ----------
    timings : dict of str to float
        Seconds taken by the levels pass, the sums pass (the reduction) and
        the checks and fit on the sums.
    """

    def __init__(self, fit: MixedResults, data, plan: _Plan, timings: dict[str, float]):
        super().__init__(fit.model, fit.optsummary, fit._conv, data_name=fit.data_name,
                         weights_name=fit.weights_name, offset_name=fit.offset_name)
        self._data = data
        self._plan = plan
        self._light = _light(fit)
        self.timings = timings

    def _per_partition(self, how: Callable[[MixedResults], pd.Series]):
        return self._data.map_partitions(
            _on_rows, _shared(self._plan), _shared(self._light), how,
            meta=_float_series(self._data._meta.index))

    @property
    def fittedvalues(self):
        """Fitted values Xβ̂ + Zb̂ + offset on the rows used (a Dask Series)."""
        return self._per_partition(_fitted)

    @property
    def resid(self):
        """Response residuals y − fitted (a Dask Series)."""
        return self._per_partition(_resid)

    @property
    def scaled_resid(self):
        """Pearson residuals divided by σ̂ (a Dask Series)."""
        return self._per_partition(_scaled)

    def predict(self, newdata=None, re_form=None, allow_new_levels: bool = False):
        """Predictions as ``mixedfit.inference.predict.predict``.

        Without ``newdata``, on the rows fitted; with a Dask DataFrame, on its
        partitions (both lazy Dask Series); other new data are predicted at once.
        """
        options = {"re_form": re_form, "allow_new_levels": allow_new_levels}
        if newdata is None:
            return self._per_partition(functools.partial(_predicted, **options))
        if type(newdata).__module__.startswith("dask"):
            return newdata.map_partitions(_predicted_new, _shared(self._light), **options,
                                          meta=_float_series(newdata._meta.index))
        return self._light.predict(newdata, **options)

    @functools.cached_property
    def _quantiles(self) -> np.ndarray:
        return exact_quantiles(self.scaled_resid, (0.0, 0.25, 0.5, 0.75, 1.0))

    def resid_quantiles(self) -> pd.Series:
        """Exact quantiles (R's type 7) of the scaled residuals: Min, 1Q, Median, 3Q, Max.

        Computed once, in two passes over the data (``exact_quantiles``).
        """
        return pd.Series(self._quantiles, index=["Min", "1Q", "Median", "3Q", "Max"])

    def summary(self, ddf: str | None = None):
        """lme4's ``summary(fit)``, with the exact scaled-residual quantiles."""
        return Summary(_SummaryView(self, self._quantiles), ddf=ddf)

    def confint(self, method: str = "profile", level: float = 0.95, parm=None, **kw):
        """Wald intervals (``method="wald"``); profiles and the bootstrap need the rows."""
        if method.lower() != "wald":
            self._needs_rows()
        return super().confint(method=method, level=level, parm=parm, **kw)

    def _needs_rows(self, *args, **kwargs):
        raise NotImplementedError("this refits or simulates from the rows in memory, which a "
                                  "fit to Dask data does not hold (Wald intervals do not)")

    bootstrap = simulate = refit = profile = _needs_rows


class _SummaryView:
    """A fit as its summary reads it, the scaled residuals stood for by their five quantiles.

    The five type-7 quantiles of those five numbers are the numbers themselves.
    """

    def __init__(self, fit: DaskResults, quantiles: np.ndarray):
        self._fit = fit
        self.scaled_resid = quantiles

    def __getattr__(self, name: str):
        return getattr(self._fit, name)


# -- exact quantiles ------------------------------------------------------------


def _order_keys(x: np.ndarray) -> np.ndarray:
    """Unsigned integers in the order of the floats ``x``: a float's bits, sign folded."""
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
    flipped = bits ^ ((bits >> 63) & np.int64(0x7FFFFFFFFFFFFFFF))
    return flipped.view(np.uint64) ^ np.uint64(1 << 63)


def _bins(values: np.ndarray) -> np.ndarray:
    """Each value's bin: the top bits of its order key."""
    return (_order_keys(values) >> np.uint64(64 - _BIN_BITS)).astype(np.intp)


def _histogram(x: pd.Series) -> np.ndarray:
    return np.bincount(_bins(x.dropna().to_numpy()), minlength=1 << _BIN_BITS)


def _in_bins(x: pd.Series, wanted: np.ndarray) -> dict[int, np.ndarray]:
    values = x.dropna().to_numpy()
    bins = _bins(values)
    return {int(b): values[bins == b] for b in wanted}


def _merge(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def exact_quantiles(x, probs: Sequence[float]) -> np.ndarray:
    """Exact quantiles (R's type 7) of a Dask Series, in two passes.

    The first pass counts the values in 2**20 bins of the float order (the
    top bits of each value's bit pattern: no range needs to be known); the
    second collects the values of the few bins that hold the order
    statistics wanted, which are then sorted.  Missing values are left out.

    Parameters
    ----------
    x : dask.dataframe.Series
    probs : sequence of float
        Probabilities in [0, 1].

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> x = dd.from_pandas(pd.Series([3.0, -1.0, 2.5, 10.0, 0.0]), npartitions=2)
    >>> exact_quantiles(x, [0, 0.625, 1]).tolist()  # R: quantile(x, c(0, 0.625, 1))
    [-1.0, 2.75, 10.0]
    """
    parts = x.to_delayed()
    counts = _compute(_tree_reduce([_delayed(_histogram)(p) for p in parts]))
    n = int(counts.sum())
    ends = np.cumsum(counts)
    positions = [(n - 1) * p for p in probs]
    ranks = sorted({r for h in positions for r in (math.floor(h), math.ceil(h))})
    bins = np.searchsorted(ends, ranks, side="right")
    wanted = np.unique(bins)
    values = _compute(_tree_reduce([_delayed(_in_bins)(p, wanted) for p in parts],
                                   combine=_merge))
    order_stat = {r: np.sort(values[int(b)])[r - (ends[b] - counts[b])]
                  for r, b in zip(ranks, bins)}
    out = []
    for h in positions:
        lo, hi = order_stat[math.floor(h)], order_stat[math.ceil(h)]
        frac = h - math.floor(h)
        out.append((1 - frac) * lo + frac * hi if frac > 0 and hi != lo else lo)
    return np.array(out)
