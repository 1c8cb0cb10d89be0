"""R's model frame: every variable of the model evaluated, incomplete rows removed.

As R's ``model.frame``, each variable is evaluated on all rows first (so
``scale(x)`` uses every non-missing ``x``), then rows with a missing value
in any variable, the weights or the offset are dropped (``na.omit``) or
reported (``na.fail``), and unused factor levels are dropped.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from mixedfit.formula.parse import parse_expression
>>> from mixedfit.formula.evaluate import Evaluator
>>> data = pd.DataFrame({"y": [1.0, np.nan, 3.0], "g": ["a", "b", "c"]})
>>> frame = model_frame(Evaluator(data, ""), [parse_expression("y"), parse_expression("g")])
>>> frame.n_dropped, frame[parse_expression("g")].levels
(1, ['a', 'c'])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from mixedfit.errors import DataError, ModelSpecError

from .deparse import deparse
from .evaluate import Evaluator, Value
from .nodes import Node
from .rvalues import RFactor

__all__ = ["ModelFrame", "model_frame"]


@dataclass
class ModelFrame:
    """The model's variables on the rows used.

    Attributes
    ----------
    values : dict of Node to value
        Each variable on the rows kept.
    keep : ndarray of bool
        Which data rows are used.
    extras : dict of str to ndarray
        Extra columns (weights, offset) on the rows kept.
    """

    values: dict[Node, Value]
    keep: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, node: Node) -> Value:
        return self.values[node]

    @property
    def nrows(self) -> int:
        return int(self.keep.sum())

    @property
    def n_dropped(self) -> int:
        return int((~self.keep).sum())


def _describe(missing: Mapping[Node | str, np.ndarray]) -> str:
    """The variables (nodes, deparsed here) and extra columns (by name) with missing values, and how many."""
    labelled = {name if isinstance(name, str) else deparse(name): m for name, m in missing.items()}
    return ", ".join(f"'{name}' ({int(m.sum())} row{'s' if m.sum() != 1 else ''})"
                     for name, m in labelled.items() if m.any())


def model_frame(evaluator: Evaluator, variables: list[Node],
                extras: Mapping[str, np.ndarray] | None = None,
                na_action: str = "omit", exclude: np.ndarray | None = None,
                exclude_reason: str = "", fixed_levels: bool = False) -> ModelFrame:
    """Evaluate *variables* and drop (or report) incomplete rows.

    Parameters
    ----------
    evaluator : Evaluator
        Evaluates variables on the data.
    variables : list of Node
        The model's variables (each evaluated once).
    extras : mapping of str to ndarray, optional
        Further columns that take part in the missing-value check (weights,
        offset), keyed by the name to report.
    na_action : {"omit", "raise"}
        Drop incomplete rows, or raise ``DataError`` naming the
        variables with missing values.
    exclude : ndarray of bool, optional
        Further rows to leave out whatever their values (rows of zero
        weight); *exclude_reason* says why when no row is left.
    fixed_levels : bool
        The factors' levels were fixed beforehand, on the whole of a data set
        of which these rows are one partition: keep unused levels, and accept
        a partition without a complete row.

    Returns
    -------
    ModelFrame

    Raises
    ------
    DataError
        Missing values under ``na_action="raise"``; no row left.
    ModelSpecError
        An unknown *na_action*.
    """
    if na_action not in ("omit", "raise"):
        raise ModelSpecError(f"na_action must be 'omit' or 'raise', not {na_action!r}")
    extras = dict(extras or {})
    values = {v: evaluator.evaluate(v) for v in dict.fromkeys(variables)}
    # keyed by node: names are deparsed only for a message
    missing: dict[Node | str, np.ndarray] = {v: value.missing() for v, value in values.items()}
    missing.update({name: np.isnan(column) for name, column in extras.items()})
    incomplete = np.zeros(len(evaluator.data), dtype=bool)
    for mask in missing.values():
        incomplete |= mask
    if incomplete.any() and na_action == "raise":
        raise DataError(f"missing values in {_describe(missing)}; remove those rows or use "
                        "na_action='omit'")
    keep = ~incomplete if exclude is None else ~(incomplete | exclude)
    if not keep.any() and not fixed_levels:
        raise DataError(_no_rows_left(missing, exclude, exclude_reason))
    every = bool(keep.all())  # then the values are the rows already, without a copy of each
    kept = {v: _kept(value, keep, every, fixed_levels) for v, value in values.items()}
    return ModelFrame(kept, keep, {name: column[keep] for name, column in extras.items()})


def _no_rows_left(missing: Mapping[Node | str, np.ndarray], exclude: np.ndarray | None,
                  exclude_reason: str) -> str:
    """lme4's "0 (non-NA) cases", saying why each row went."""
    reasons = [f"a missing value (in {_describe(missing)})"] if any(
        m.any() for m in missing.values()) else []
    if exclude is not None and exclude.any():
        reasons.append(exclude_reason)
    return f"0 (non-NA) cases: every row has {' or '.join(reasons)}"


def _kept(value: Value, keep: np.ndarray, every: bool, fixed_levels: bool) -> Value:
    """A variable's rows ``keep`` (``every``: all of them), without unused factor levels unless ``fixed_levels``."""
    if not every:
        value = value.take(keep)
    # lme4 builds its model frame with drop.unused.levels = TRUE.
    return value.drop_unused() if isinstance(value, RFactor) and not fixed_levels else value
