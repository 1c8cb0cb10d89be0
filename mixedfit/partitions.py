"""One partition of Dask data as part of the model: the columns it reads, the plan it follows.

A partition alone cannot know the model's factors: a level may be absent
from it, and R orders levels by all the values there are.  So the data are
read in two passes (``mixedfit.distributed``).  In the first, each partition
tells what its complete rows hold (``seen_in_partition``: the values of its
factor columns, the combinations of interaction grouping factors, one
example row); their union fixes every factor's levels in a ``Plan``
(``factor_levels``, ``group_levels``).  In the second, each partition
becomes a ``Design`` on those levels (``partition_design``), which drops no
level that it lacks.

The model's columns are found from the formula alone (``model_columns``):
only they are read.  Transformations whose value depends on all rows
(``scale``, ``poly``, splines) are refused, since each partition would use
its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .column_types import values_kind
from .errors import DataError, ModelSpecError
from .family import Family
from .formula.evaluate import Evaluator
from .formula.grouping import grouping_variables
from .formula.nodes import Arg, Name, Node, called_functions
from .formula.rvalues import level_labels_of, sort_levels
from .formula.rfunctions import DATA_DEPENDENT
from .formula.spec import ParsedFormula
from .terms import Design, build_design, build_model_frame, model_variables

__all__ = ["Plan", "Seen", "model_columns", "read_names", "grouping_columns", "factor_columns",
           "seen_in_partition", "factor_levels", "group_levels", "categorized", "partition_design"]


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


def grouping_columns(parsed: ParsedFormula) -> dict[str, tuple[str, ...]]:
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


def read_names(parsed: ParsedFormula, weights: str | None, offset: str | None) -> set[str]:
    """The names the model reads: columns, and constants such as ``pi``."""
    names = {name for name in (weights, offset) if name is not None}
    for variable in model_variables(parsed):
        bad = called_functions(variable) & DATA_DEPENDENT
        if bad:
            raise ModelSpecError(f"{', '.join(sorted(bad))}() depends on every row, and each "
                                 "partition would use its own: compute that column beforehand")
        names |= _names(variable)  # a name that is no column is a constant, or an error later
    return names


def model_columns(parsed: ParsedFormula, meta: pd.DataFrame, weights: str | None,
                   offset: str | None) -> list[str]:
    """The data columns the model reads (an unknown weights or offset column is an error)."""
    names = read_names(parsed, weights, offset)
    evaluator = Evaluator(meta, parsed.text)
    for name in (weights, offset):
        if name is not None:
            evaluator.column(name)  # raises the unknown-column error
    return [c for c in meta.columns if str(c) in names]


def factor_columns(parsed: ParsedFormula, meta: pd.DataFrame, columns: list[str],
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


# -- the plan, and what a partition holds of the levels -----------------------------


@dataclass
class Seen:
    """Values of the factor columns, and combinations of interactions, in complete rows.

    ``example`` is one complete row: the model's structure is built from it.
    """

    values: dict[str, np.ndarray]
    combinations: dict[str, pd.DataFrame]
    example: pd.DataFrame
    kinds: dict[str, dict[str, int]]  # by column, the first partition of each kind of values

    def __add__(self, other: "Seen") -> "Seen":
        # Arrays and frames, not sets: a set of numpy scalars pickles one object at a time.
        return Seen({c: _distinct(np.concatenate([v, other.values[c]]))
                     for c, v in self.values.items()},
                    {g: pd.concat([v, other.combinations[g]]).drop_duplicates()
                     for g, v in self.combinations.items()},
                    self.example if len(self.example) else other.example,
                    {c: {**other.kinds[c], **k} for c, k in self.kinds.items()})


def _distinct(values) -> np.ndarray:
    return pd.unique(np.asarray(values))


@dataclass(frozen=True)
class Plan:
    """What each partition needs to become its part of the model.

    The fit's arguments (a GLMM's family too) and the columns read; after the levels pass, the
    categories of the columns made categorical, each grouping factor's
    levels and X's column names; after the checks on the sums, X's columns
    kept (``xkeep``, None for all).
    """

    formula: str
    parsed: ParsedFormula
    weights: str | None
    offset: str | None
    na_action: str
    columns: list[str]
    groups: dict[str, tuple[str, ...]]
    categories: dict[str, list] = dataclasses.field(default_factory=dict)
    levels: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    xnames: list[str] = dataclasses.field(default_factory=list)
    xkeep: list[int] | None = None
    family: Family | None = None  # a GLMM's: its response as R's family$initialize leaves it


def seen_in_partition(part: pd.DataFrame, plan: Plan, with_levels: list[str],
                      number: int) -> Seen | None:
    """The levels pass on partition ``number``: what its complete rows hold (None if it has no rows).

    ``with_levels`` are the columns whose values are gathered (``factor_columns``).
    """
    if part.empty:
        return None
    kinds = {c: {kind: number} if (kind := values_kind(part[c])) else {} for c in plan.columns}
    frame, _, _ = build_model_frame(plan.parsed, Evaluator(part, plan.formula), plan.weights,
                                    plan.offset, plan.na_action, fixed_levels=True)
    kept = part[frame.keep]
    values = {c: _distinct(kept[c].dropna().unique()) for c in with_levels}
    combinations = {g: kept[list(cols)].drop_duplicates() for g, cols in plan.groups.items()
                    if len(cols) > 1}
    return Seen(values, combinations, kept.iloc[:1].copy(),  # a view would keep all rows alive
                kinds)


def factor_levels(values: np.ndarray, known: list | None) -> list:
    """A factor's levels: a known categorical's order, else R's sorted order."""
    present = values.tolist()  # Python scalars, as R's sort and labels expect
    if known is not None:
        used = set(present)
        return [c for c in known if c in used]
    return sort_levels(present)


def group_levels(columns: tuple[str, ...], categories: dict[str, list],
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


# -- a partition as part of the model ---------------------------------------------


def categorized(part: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """The partition with its factor columns made categorical on the fixed levels."""
    return part.assign(**{c: _on_categories(part[c], cats) for c, cats in plan.categories.items()})


def _on_categories(column: pd.Series, categories: list) -> pd.Series:
    """The column as a categorical with exactly these categories (others become missing)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.set_categories(categories)
    return pd.Series(pd.Categorical(column, categories=categories), index=column.index)


def partition_design(part: pd.DataFrame, plan: Plan) -> Design:
    """One partition's design, on the levels of the whole data set."""
    design = build_design(plan.formula, categorized(part, plan), weights=plan.weights,
                          offset=plan.offset, na_action=plan.na_action, levels=plan.levels,
                          family=plan.family)
    if design.xnames != plan.xnames:
        raise DataError(f"a partition gives the fixed-effect columns {design.xnames}, not "
                        f"{plan.xnames}: a factor made inside the formula (factor(x)) takes "
                        "each partition's own levels; make the column categorical instead")
    if plan.xkeep is not None:
        design = dataclasses.replace(design, X=design.X[:, plan.xkeep],
                                     xnames=[design.xnames[j] for j in plan.xkeep])
    return design
