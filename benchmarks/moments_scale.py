"""method="moments" on a simulated MovieLens-shaped crossed design, in memory and from parquet.

ml-32m has 32M ratings of 84k movies by 201k users, both counts heavy-tailed.
This simulates ``rating ~ x + (1|user) + (1|item)`` at a chosen scale (default
a tenth of the rows and a tenth / a tenth of the levels: 3.2M rows, 20k users,
8k items) with Zipf-like (1/rank^0.9) user and item frequencies, one row per
(user, item) pair (duplicates drawn are dropped, as a rating is given once),
and fits it by moments.  With ``--parquet DIR`` the data are also written as
parquet files and fitted through Dask (threaded scheduler).

Run: ``PYTHONPATH=. python benchmarks/moments_scale.py [--rows 3200000 --users 20000 --items 8000]``.
Prints wall times, peak resident memory (ru_maxrss) and the estimates.
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import numpy as np
import pandas as pd

import mixedfit as mf

TRUTH = {"user": 0.25, "item": 0.5, "Residual": 0.8}


def simulate(rows: int, users: int, items: int, seed: int = 0) -> pd.DataFrame:
    """Ratings-like data: user and item drawn with 1/rank^0.9 frequencies, pairs distinct."""
    rng = np.random.default_rng(seed)
    wu = 1 / np.arange(1, users + 1) ** 0.9
    wi = 1 / np.arange(1, items + 1) ** 0.9
    u = rng.choice(users, int(rows * 2.5), p=wu / wu.sum()).astype(np.int32)
    i = rng.choice(items, u.size, p=wi / wi.sum()).astype(np.int32)
    _, first = np.unique(u.astype(np.int64) * items + i, return_index=True)
    keep = np.sort(rng.permutation(first)[:rows])
    u, i = u[keep], i[keep]
    x = rng.normal(size=u.size)
    y = (3.5 + 0.2 * x + rng.normal(0, np.sqrt(TRUTH["user"]), users)[u]
         + rng.normal(0, np.sqrt(TRUTH["item"]), items)[i] + rng.normal(0, np.sqrt(TRUTH["Residual"]), u.size))
    return pd.DataFrame({"rating": y, "x": x, "user": u, "item": i})


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(label: str, fit, seconds: float) -> None:
    vc = fit.varcorr.set_index("grp")["vcov"]
    print(f"{label}: {seconds:.1f} s wall, peak RSS {peak_mb():.0f} MB, {fit.iterations} {fit.solver} iterations, "
          f"timings {({k: round(v, 2) for k, v in fit.timings.items()})}")
    print("  variances:", {k: round(float(v), 4) for k, v in vc.items()}, "truth", TRUTH)
    print("  beta:", fit.fixef.round(5).to_dict(), "se:", fit.bse.round(5).to_dict())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=3_200_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=8_000)
    parser.add_argument("--parquet", default=None, help="folder to write parquet files to and fit from")
    parser.add_argument("--partitions", type=int, default=16)
    args = parser.parse_args()
    clock = time.perf_counter()
    data = simulate(args.rows, args.users, args.items)
    print(f"simulated {len(data)} rows, {data.user.nunique()} users x {data.item.nunique()} items "
          f"in {time.perf_counter() - clock:.1f} s; peak RSS {peak_mb():.0f} MB")
    formula = "rating ~ x + (1|user) + (1|item)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.errors.MixedFitWarning)
        clock = time.perf_counter()
        fit = mf.mixed(formula, data, method="moments")
        report("in memory", fit, time.perf_counter() - clock)
        if args.parquet:
            import dask.dataframe as dd

            size = -(-len(data) // args.partitions)
            for k in range(args.partitions):
                data.iloc[k * size:(k + 1) * size].to_parquet(f"{args.parquet}/part-{k:03d}.parquet")
            del data
            clock = time.perf_counter()
            lazy = dd.read_parquet(f"{args.parquet}/*.parquet")
            out = mf.mixed(formula, lazy, method="moments")
            report("dask from parquet", out, time.perf_counter() - clock)
            print("  max |dask - memory| (beta):", float(np.max(np.abs(out.fixef - fit.fixef))))


if __name__ == "__main__":
    main()
