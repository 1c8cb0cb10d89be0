"""Grouping factors of random-effects terms, as lme4's ``mkBlist`` makes them.

The grouping expression's variables become factors (a numeric column is
``factor()``-ed: its sorted values are the levels); ``a:b`` is lme4's
``%i%`` interaction, whose levels are the ``a:b`` combinations present,
ordered by (level of ``a``, level of ``b``); unused levels are dropped.

Examples
--------
>>> import numpy as np
>>> a = RFactor(np.array([1, 0, 1, 1]), ["x", "y"])
>>> b = RFactor(np.array([0, 0, 1, 1]), ["p", "q"])
>>> interaction(a, b).levels  # x:q never occurs
['x:p', 'y:p', 'y:q']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .evaluate import Evaluator, Logical, Numeric
from .frame import ModelFrame
from .nodes import BinOp, Name, Node, Paren
from .rvalues import RFactor, as_factor, distinct

__all__ = ["grouping_variables", "grouping_factor", "interaction"]


def grouping_variables(group: Node) -> list[Node]:
    """The model-frame variables of a grouping expression (``a:b`` has two)."""
    if isinstance(group, BinOp) and group.op == ":":
        return grouping_variables(group.left) + grouping_variables(group.right)
    if isinstance(group, Paren):
        return grouping_variables(group.inner)
    return [group]


def interaction(first: RFactor, second: RFactor) -> RFactor:
    """lme4's ``%i%``: the combinations present, in (first, second) level order."""
    width = len(second.levels)
    combined = first.codes * width + second.codes
    present, codes = (distinct(combined, len(first.levels) * width) if combined.size and combined.min() >= 0
                      else np.unique(combined, return_inverse=True))
    # Object arrays join the labels in one elementwise pass (8,000 nested levels: 3 ms as a list comprehension).
    labels = (np.asarray(first.levels, dtype=object)[present // width] + ":"
              + np.asarray(second.levels, dtype=object)[present % width])
    return RFactor(codes, labels.tolist())


def _make_factor(node: Node, frame: ModelFrame, evaluator: Evaluator) -> RFactor:
    """lme4's makeFac: a factor as is, anything else through ``factor()``."""
    if isinstance(node, Name) and node.name in evaluator.names \
            and node.name not in evaluator.logical:
        # The raw column keeps integers integers: level 100000, not 1e+05.
        column = evaluator.column(node.name)
        raw = column.take(frame.keep) if isinstance(column, RFactor) else column[frame.keep]
        if isinstance(column, np.ndarray) and column.dtype.kind == "f":
            # nullable integers with NA are floats in the frame; their ids stay exact
            series = evaluator.data[evaluator.names[node.name]]
            if pd.api.types.is_integer_dtype(series.dtype):
                raw = series.to_numpy(dtype=object)[frame.keep]
        return as_factor(raw)
    value = frame[node]
    if isinstance(value, Logical):
        return as_factor(np.where(value.na, None, value.values))
    if isinstance(value, Numeric):
        if value.values.shape[1] != 1:
            raise ValueError("a grouping factor must be a single column")
        return as_factor(value.values[:, 0])
    return value


def grouping_factor(group: Node, frame: ModelFrame, evaluator: Evaluator) -> RFactor:
    """Evaluate a grouping expression to a factor without unused levels.

    Parameters
    ----------
    group : Node
        The expression right of the bar (``Subject``, ``cask:batch``).
    frame : ModelFrame
        The model frame (which holds the expression's variables).
    evaluator : Evaluator
        Gives access to the raw data columns.

    Returns
    -------
    RFactor
    """
    if isinstance(group, BinOp) and group.op == ":":
        return interaction(grouping_factor(group.left, frame, evaluator),
                           grouping_factor(group.right, frame, evaluator))
    if isinstance(group, Paren):
        return grouping_factor(group.inner, frame, evaluator)
    return _make_factor(group, frame, evaluator).drop_unused()
