"""What a fit may use of the machine's cores: whether they are busy, and a second thread for one large product.

numpy's BLAS spreads a dense product over the cores by itself; scipy's sparse
products and the gathers around them run on one.  The largest of those,
the Schur pattern's map (``mixedfit.blocks.schur.PackedMap``), is split in two
row halves, one computed in a second thread while the calling thread computes
the other: scipy releases the GIL inside the product, and each row's sum is
the same, so the result is the same to the last bit.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

__all__ = ["busy", "beside", "threaded"]


_THREADED_COLUMNS = 512  # fewest columns of a dense factorization that threads speed up


def threaded(columns: int, products: float = 0.0) -> bool:
    """Whether an evaluation's BLAS runs on several cores: its work large enough to gain, and cores free.

    The work is a dense factorization of ``columns`` columns, or dense
    products of ``products`` multiply-adds (the rest's Schur update by dense
    rows: ``BlockUpdate.multiply_adds``), as many as a factorization of
    ``_THREADED_COLUMNS`` columns has (n³/6) or more.  Below that the threads'
    hand-offs cost more than they save, and OpenBLAS's spinning threads make a
    factorization many times slower when the cores are already busy (see
    ``MixedModel.blas_threads``).
    """
    large = columns >= _THREADED_COLUMNS or products >= _THREADED_COLUMNS ** 3 / 6
    return large and _usable_cores() >= 2 and not busy()


def busy() -> bool:
    """Whether the last minute's load already fills the cores this process may use."""
    try:
        return os.getloadavg()[0] >= _usable_cores()
    except OSError:
        return False


def beside(call: Callable[..., Any], *args: Any) -> Future | None:
    """``call(*args)`` started in a second thread, or None where there is no idle core for it.

    Examples
    --------
    >>> job = beside(sum, [1, 2, 3])
    >>> 6 if job is None else job.result()
    6
    """
    if _usable_cores() < 2 or busy():
        return None
    return _second_thread().submit(call, *args)


@functools.lru_cache(maxsize=None)
def _usable_cores() -> int:
    """The cores this process may run on (its affinity, which does not change during a fit)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=None)
def _second_thread() -> ThreadPoolExecutor:
    """One worker thread for the process, started on first use (fits in several threads share it)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="mixedfit")


# A forked child inherits the executor but not its thread: the executor believes its
# worker idle and would queue the product for no one.  The child starts its own.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_second_thread.cache_clear)
