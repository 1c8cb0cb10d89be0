"""Where CHOLMOD's sparse factorization of the rest stops paying against LAPACK's dense one, by the fill.

Run from the repository root (needs the ``cholmod`` extra, cvxopt)::

    PYTHONPATH=$PWD python benchmarks/cholmod_fill.py

``CholmodRest`` factors the rest's kept entries by CHOLMOD (one core) unless
the fill-reducing order leaves a factor whose flops are ``_DENSE_SHARE`` of a
dense factorization's or more, where LAPACK would run on several cores
(``cores.threaded``); then LAPACK factors the same entries densely, on all
the cores.  This sweep fits
crossed ``y ~ x + (1|a) + (1|b)`` on the unbalanced simulation of the
benchmark's ``sim_crossed_big`` (log-normal level frequencies) at several
sizes, and times the factorizations of one rest (the best of three): the
share of the entries the rest keeps; the share of a dense factorization's
flops the factor takes in CHOLMOD's order (``dense_share``, counted from the
pattern, what ``CholmodRest`` decides by) and the share CHOLMOD's supernodal
factor computes (its relaxed supernodes hold explicit zeros); CHOLMOD's time
and LAPACK's, on one core and on all.  One run on a shared machine: read the
ratios within a row.
"""

from __future__ import annotations

import dataclasses
import warnings

from common import CASES_BY_KEY, best_seconds, simulate
import numpy as np
from threadpoolctl import threadpool_limits

from mixedfit.blocks.rest import CholmodRest
from mixedfit.model import MixedModel
from mixedfit.supernodal import SupernodalRest, _cvxopt, _supernodal_options, _symbolic
from mixedfit.terms import build_design

REPEATS = 3  # factorizations timed per rest: the best counts
# rows, levels of a, levels of b
SIZES = ((20_000, 10_000, 1_000), (30_000, 10_000, 1_000), (38_000, 10_000, 1_000), (50_000, 10_000, 1_000),
         (30_000, 10_000, 2_000), (40_000, 10_000, 2_000), (47_000, 10_000, 2_000), (60_000, 10_000, 2_000),
         (50_000, 20_000, 3_000), (75_000, 20_000, 3_000), (100_000, 20_000, 3_000), (200_000, 20_000, 3_000),
         (120_000, 30_000, 5_000))


def supernodal_share(rest: SupernodalRest, values: np.ndarray) -> float:
    """The share of a dense factorization's flops that CHOLMOD's supernodal factor of these values computes.

    Read off a factor of its own (cvxopt's ``getfactor`` leaves the factor it reads unusable).
    """
    _, cholmod, matrix, _, _ = _cvxopt()
    A, order = rest._ordered()
    A.V = matrix(values)
    F = _symbolic(A, order)
    with _supernodal_options():
        cholmod.numeric(A, F)
    counts = np.diff(np.asarray(cholmod.getfactor(F).CCS[0]).ravel()).astype(float)
    dense = np.arange(rest.m, 0, -1, dtype=float)
    return float(counts @ counts / (dense @ dense))


def row(rows: int, n_a: int, n_b: int) -> str:
    base = CASES_BY_KEY["sim_crossed_big"]
    case = dataclasses.replace(base, sim=dict(base.sim, n=rows, n_a=n_a, n_b=n_b))
    model = MixedModel(build_design(case.formula, simulate(case)), reml=case.reml)
    rest = model.cross.rest
    if not isinstance(rest, CholmodRest):
        return f"| {rows:,} | {n_a:,} × {n_b:,} | {type(rest).__name__} | | | | | | |"
    m = rest.columns.size
    templates = model.cross.templates(model.engine_theta(0.7 * model.start))
    values = rest.sparse.penalized(model.cross._eliminated(templates[0])[1], templates[1:])
    share = rest.cholmod.dense_share()
    supernodal = supernodal_share(rest.cholmod, values)
    cholmod = best_seconds(lambda: rest.cholmod.diagonal(values), REPEATS)
    with threadpool_limits(1):
        one = best_seconds(lambda: rest._lapack_factor(values), REPEATS)
    every = best_seconds(lambda: rest._lapack_factor(values), REPEATS)
    return (f"| {rows:,} | {n_a:,} × {n_b:,} | {m:,} | {rest.sparse.pos.size / (m * (m + 1) / 2):.2f} | {share:.3f} | {supernodal:.3f} "
            f"| {cholmod * 1e3:.1f} | {one * 1e3:.1f} ({one / cholmod:.2f}) | {every * 1e3:.1f} ({every / cholmod:.2f}) |")


def main() -> None:
    warnings.simplefilter("ignore")
    print("| rows | a × b | rest | kept share | the factor's flops (dense_share) | CHOLMOD's supernodal flops "
          "| CHOLMOD ms | LAPACK, one core: ms (/ CHOLMOD) | LAPACK, all cores: ms (/ CHOLMOD) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for size in SIZES:
        print(row(*size), flush=True)


if __name__ == "__main__":
    main()
