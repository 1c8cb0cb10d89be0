"""Exact quantiles of data too large for one machine: two passes over a Dask Series.

A float's bit pattern, its sign folded, orders as the float does
(``_order_keys``).  The first pass counts the values in 2**20 bins of that
order (the keys' top bits: no range needs to be known beforehand); the
order statistics wanted then lie in known bins, and the second pass
collects those bins' values alone, which are few, and sorts them.  The
quantiles are R's type 7 (numpy's default), exactly: no value is
approximated.

A Dask fit's summary reads its scaled residuals' quantiles so
(``mixedfit.dask_results.DaskResults.resid_quantiles``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .dask_tasks import compute, delayed, tree_reduce

__all__ = ["exact_quantiles"]

_BIN_BITS = 20  # histogram bins of the exact quantiles: 2**20 over the float64 order


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
    counts = compute(tree_reduce([delayed(_histogram)(p) for p in parts]))
    n = int(counts.sum())
    ends = np.cumsum(counts)
    positions = [(n - 1) * p for p in probs]
    ranks = sorted({r for h in positions for r in (math.floor(h), math.ceil(h))})
    bins = np.searchsorted(ends, ranks, side="right")
    wanted = np.unique(bins)
    values = compute(tree_reduce([delayed(_in_bins)(p, wanted) for p in parts], combine=_merge))
    order_stat = {r: np.sort(values[int(b)])[r - (ends[b] - counts[b])]
                  for r, b in zip(ranks, bins)}
    out = []
    for h in positions:
        lo, hi = order_stat[math.floor(h)], order_stat[math.ceil(h)]
        frac = h - math.floor(h)
        out.append((1 - frac) * lo + frac * hi if frac > 0 and hi != lo else lo)
    return np.array(out)
