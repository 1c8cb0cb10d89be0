"""Tasks over the partitions of Dask data: one per partition, their results combined in a tree.

A pass over the data is a list of delayed values, one per partition,
reduced by ``tree_reduce`` and brought back by ``compute``: only the
combined result reaches this process.  Dask is imported on use (it is an
optional dependency).

Examples
--------
>>> import dask.dataframe as dd
>>> import pandas as pd
>>> x = dd.from_pandas(pd.Series(range(10)), npartitions=4)
>>> compute(tree_reduce([delayed(len)(p) for p in x.to_delayed()], split_every=2))
10
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

__all__ = ["delayed", "shared", "compute", "tree_reduce"]

_SPLIT_EVERY = 8  # partial results combined per task of the reduction tree


def delayed(function: Callable) -> Callable:
    """``function`` as a Dask task maker (``dask.delayed``)."""
    import dask

    return dask.delayed(function)


def shared(value: Any):
    """``value`` as one task, for every task to read (sent once to each worker).

    Make it once and pass that on: each call is a new key (an object with no
    deterministic token gets a random one), so a call per task would send a
    copy per task.
    """
    import dask

    return dask.delayed(value, traverse=False)


def compute(value: Any) -> Any:
    """The value of a delayed value, on whatever Dask scheduler is current."""
    import dask

    return dask.compute(value)[0]


def _skipping_none(combine: Callable) -> Callable:
    """``combine`` for values of which some are None (from empty partitions)."""
    def combined(a, b):
        return b if a is None else a if b is None else combine(a, b)
    return combined


def tree_reduce(items: list, combine: Callable = operator.add, split_every: int = _SPLIT_EVERY):
    """Combine delayed values in a tree of fan-in ``split_every``; None values are skipped.

    Parameters
    ----------
    items : list of dask.delayed.Delayed
        One per partition; a partition with nothing to give gives None.
    combine : callable
        Of two values, their combination (default ``+``).
    split_every : int
        Values combined per task.

    Returns
    -------
    dask.delayed.Delayed
        The combination of all the values (None if all are None).
    """
    combine = _skipping_none(combine)
    while len(items) > 1:
        items = [delayed(functools.reduce)(combine, items[i:i + split_every])
                 for i in range(0, len(items), split_every)]
    return items[0]
