"""Whether the dense rest fits in the memory available, checked before it is allocated."""

from __future__ import annotations

import math
import os

from ..errors import ModelSpecError
from ..terms import RandomEffectsTerm

__all__ = ["available_memory", "check_dense_memory"]


# Dense (m, m) arrays of the rest a fit holds at once: its cross products
# (CrossBlocks.Arr) and the rest eliminated at one θ, factored in place; one
# evaluation of the 16,002-column crossed rest peaked at 2.2 of them.
_DENSE_COPIES = 2


_SURE_BYTES = 64 * 2**20  # dense rests this small are not checked against the available memory


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation, or None where unknown.

    Linux's MemAvailable, less where a cgroup (a container) or an
    address-space limit (``ulimit -v``) allows this process less; elsewhere
    the free physical pages.

    Examples
    --------
    >>> m = available_memory()
    >>> m is None or m > 0
    True
    """
    try:
        with open("/proc/meminfo") as fh:
            have = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    except (OSError, ValueError, IndexError, StopIteration):
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    return min(have, _cgroup_room(), _address_space_room())


def _cgroup_room() -> float:
    """Bytes this process's cgroup (v2) may still allocate; infinite where it sets no limit."""
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        with open("/sys/fs/cgroup/memory.current") as fh:
            used = int(fh.read())
    except (OSError, ValueError):
        return math.inf
    return math.inf if limit == "max" else max(int(limit) - used, 0)


def _address_space_room() -> float:
    """Bytes of address space left under RLIMIT_AS; infinite where it is unlimited."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return math.inf
        with open("/proc/self/statm") as fh:
            used = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (ImportError, OSError, ValueError):
        return math.inf
    return max(limit - used, 0)


def check_dense_memory(first: RandomEffectsTerm, rest: list[RandomEffectsTerm], m: int) -> None:
    """Refuse, before allocating it, a dense rest of ``m`` columns that cannot fit in memory.

    The first term's random effects are eliminated level by level; the other
    terms' levels (with X and y) make the dense rest.  CHOLMOD (the
    ``cholmod`` extra) factors a sparse rest without LAPACK, but the rest's
    cross products are built dense all the same, so it would not help here.

    Raises
    ------
    ModelSpecError
        Where the ``_DENSE_COPIES`` (m, m) arrays need more than the available
        memory; the message says how much.
    """
    need = _DENSE_COPIES * 8 * m * m
    if need <= _SURE_BYTES:  # no need to read /proc for it (a tenth of sleepstudy's model setup)
        return
    have = available_memory()
    if have is None or need <= have:
        return
    levels = ", ".join(f"({t.label}): {t.nlevels:,} levels" for t in rest)
    raise ModelSpecError(
        f"fitting needs about {need / 1e9:.3g} GB: the random effects of {levels} make a dense block of "
        f"{m:,} columns, held {_DENSE_COPIES} times (({first.label}), with the most random effects, is "
        f"eliminated level by level); only {have / 1e9:.3g} GB of memory are available.  Reduce those "
        "levels, or fit on a machine with more memory"
    )
