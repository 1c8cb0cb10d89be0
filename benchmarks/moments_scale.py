"""method="moments" on a simulated MovieLens-shaped crossed design, in memory and from parquet.

ml-32m has 32M ratings of 84k movies by 201k users, both counts heavy-tailed.
This simulates ``rating ~ x + (1|user) + (1|item)`` at a chosen scale (default
a tenth of the rows and a tenth / a tenth of the levels: 3.2M rows, 20k users,
8k items) with Zipf-like (1/rank^0.9) user and item frequencies, one row per
(user, item) pair (duplicates drawn are dropped, as a rating is given once),
and fits it by moments.  With ``--parquet DIR`` the data are also written as
parquet files and fitted through Dask (threaded scheduler); with
``--out-of-core`` too, the files are written shard by shard (pairs distinct
within a shard) and only the Dask fit is run, so the rows are never all in
memory.

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


def _frequencies(levels: int) -> np.ndarray:
    w = 1 / np.arange(1, levels + 1) ** 0.9
    return w / w.sum()


def _effects(users: int, items: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 0])
    return (rng.normal(0, np.sqrt(TRUTH["user"]), users), rng.normal(0, np.sqrt(TRUTH["item"]), items))


def simulate(rows: int, users: int, items: int, seed: int = 0, shard: int = 0) -> pd.DataFrame:
    """Ratings-like data: user and item drawn with 1/rank^0.9 frequencies, pairs distinct.

    ``shard`` > 0 draws another batch of rows of the same users and items (same
    random effects); pairs are then distinct within a shard only.
    """
    rng = np.random.default_rng([seed, shard + 1])
    u = rng.choice(users, int(rows * 2.5), p=_frequencies(users)).astype(np.int32)
    i = rng.choice(items, u.size, p=_frequencies(items)).astype(np.int32)
    _, first = np.unique(u.astype(np.int64) * items + i, return_index=True)
    keep = np.sort(rng.permutation(first)[:rows])
    u, i = u[keep], i[keep]
    x = rng.normal(size=u.size)
    user_effect, item_effect = _effects(users, items, seed)
    y = 3.5 + 0.2 * x + user_effect[u] + item_effect[i] + rng.normal(0, np.sqrt(TRUTH["Residual"]), u.size)
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
    parser.add_argument("--cluster", type=int, default=0,
                        help="fit the parquet files on a LocalCluster of this many 1-thread workers")
    parser.add_argument("--out-of-core", action="store_true",
                        help="write the parquet files shard by shard (never all rows in memory) and "
                             "fit only from them")
    args = parser.parse_args()
    formula = "rating ~ x + (1|user) + (1|item)"
    warnings.simplefilter("ignore", mf.errors.MixedFitWarning)
    fit = None
    clock = time.perf_counter()
    if args.out_of_core:
        size = -(-args.rows // args.partitions)
        for k in range(args.partitions):
            simulate(size, args.users, args.items, shard=k).to_parquet(f"{args.parquet}/part-{k:03d}.parquet")
        print(f"wrote {args.partitions} shards of {size} rows in {time.perf_counter() - clock:.1f} s; "
              f"peak RSS {peak_mb():.0f} MB")
    else:
        data = simulate(args.rows, args.users, args.items)
        print(f"simulated {len(data)} rows, {data.user.nunique()} users x {data.item.nunique()} items "
              f"in {time.perf_counter() - clock:.1f} s; peak RSS {peak_mb():.0f} MB")
        clock = time.perf_counter()
        fit = mf.mixed(formula, data, method="moments")
        report("in memory", fit, time.perf_counter() - clock)
        if args.parquet:
            size = -(-len(data) // args.partitions)
            for k in range(args.partitions):
                data.iloc[k * size:(k + 1) * size].to_parquet(f"{args.parquet}/part-{k:03d}.parquet")
        del data
    if args.parquet:
        import dask.dataframe as dd

        if args.cluster:
            from dask.distributed import Client, LocalCluster

            client = Client(LocalCluster(n_workers=args.cluster, threads_per_worker=1, processes=True))
            print(f"LocalCluster: {args.cluster} worker processes, 1 thread each")
        clock = time.perf_counter()
        out = mf.mixed(formula, dd.read_parquet(f"{args.parquet}/*.parquet"), method="moments")
        report(f"dask from parquet ({out.nobs} rows, {out.ngroups})", out, time.perf_counter() - clock)
        if fit is not None:
            print("  max |dask - memory| (beta):", float(np.max(np.abs(out.fixef - fit.fixef))))
        if args.cluster:
            memory = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
            print("  worker peak RSS MB:", sorted(memory.values()))
            client.close()


if __name__ == "__main__":
    main()
