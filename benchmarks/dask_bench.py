"""Scale-out benchmark: the exact fit of parquet data larger than the workers' memory, on Dask.

Writes simulated data as parquet files (once; reused while the manifest
matches), fits ``y ~ x + (x | g)`` with :func:`mixedfit.distributed.mixed_parquet`
on a ``LocalCluster`` of worker processes with a memory limit well below the
data's size, and records the wall time, each worker's peak memory, the split
between the passes over the data (the reduction) and the fit on the sums, and
the time of the summary's exact residual quantiles.  A second, small data set
(``--compare-rows``) is fitted both ways, Dask and in memory, to measure the
agreement.  Writes ``benchmarks/RESULTS_dask.md``.

Usage::

    pip install -e ".[dask]"
    python benchmarks/dask_bench.py                      # 1e8 rows (~2 GB of parquet)
    python benchmarks/dask_bench.py --rows 1e7 --output /tmp/r.md   # a quicker run
    python benchmarks/dask_bench.py --part glmm          # a 1e6-row binomial GLMM, Dask vs in memory

``--part glmm`` writes ``--glmm-rows`` rows (default 1e6) of a 0/1 response
``y ~ x + (1 | g)`` (logit; sd(b) = 1, 1,000 groups) as ``--glmm-files``
parquet files (default 10), fits it with ``mixed_parquet(..., family="binomial")``
on the ``LocalCluster`` and in memory, and records both times, the passes
over the partitions, the evaluations, each worker's peak memory and the
agreement; its section of ``RESULTS_dask.md`` replaces only itself.

Data: ``g`` uniform on ``--groups`` levels (int32), ``x ~ N(0, 1)``,
``y = 10 + 2x + b0[g] + b1[g]·x + ε`` with sd(b0) = 2, sd(b1) = 0.5,
corr 0.3, σ = 1 (seeded ``numpy.random.default_rng``; one file of
``--file-rows`` rows per partition).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FORMULA = "y ~ x + (x | g)"
GLMM_FORMULA = "y ~ x + (1 | g)"
GLMM_HEADING = "## GLMMs on Dask (`--part glmm`)"
GiB = 1024**3


def _group_effects(groups: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sd, corr = np.array([2.0, 0.5]), 0.3
    cov = np.outer(sd, sd) * np.array([[1, corr], [corr, 1]])
    b = rng.multivariate_normal([0, 0], cov, size=groups)
    return b[:, 0], b[:, 1]


def write_data(folder: Path, rows: int, groups: int, file_rows: int, seed: int) -> float:
    """Write the parquet files (skipped when the folder already holds these data); seconds."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = {"rows": rows, "groups": groups, "file_rows": file_rows, "seed": seed}
    marker = folder / "manifest.json"
    if marker.exists() and json.loads(marker.read_text()) == manifest:
        return 0.0
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    need = rows * 20 * 1.1  # float64 y and x, int32 g; random floats do not compress
    free = shutil.disk_usage(folder).free
    if free < 2 * need:
        raise SystemExit(f"{folder}: {free / GiB:.1f} GiB free, need about {need / GiB:.1f} GiB")
    start = time.perf_counter()
    b0, b1 = _group_effects(groups, seed)
    for k, first in enumerate(range(0, rows, file_rows)):
        n = min(file_rows, rows - first)
        rng = np.random.default_rng([seed, k])
        g = rng.integers(0, groups, n, dtype=np.int32)
        x = rng.standard_normal(n)
        y = 10 + 2 * x + b0[g] + b1[g] * x + rng.standard_normal(n)
        pq.write_table(pa.table({"y": y, "x": x, "g": g}), folder / f"part{k:05d}.parquet")
    marker.write_text(json.dumps(manifest))
    return time.perf_counter() - start


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class PeakMemory:
    """Each worker process's peak resident memory while the block runs (polled)."""

    def __init__(self, client, every: float = 0.2):
        self.client, self.every = client, every
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()

    def _poll(self) -> None:
        while not self._stop.is_set():
            for worker, rss in self.client.run(_rss).items():
                self.peak[worker] = max(self.peak.get(worker, 0), rss)
            self._stop.wait(self.every)

    def __enter__(self) -> "PeakMemory":
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def fit_big(client, folder: Path) -> dict:
    from mixedfit.distributed import mixed_parquet

    with PeakMemory(client) as memory:
        start = time.perf_counter()
        fit = mixed_parquet(FORMULA, str(folder / "*.parquet"))
        wall = time.perf_counter() - start
        start = time.perf_counter()
        summary = str(fit.summary())
        summary_s = time.perf_counter() - start
    return {"wall_s": wall, "timings": fit.timings, "summary_s": summary_s, "summary": summary,
            "peak_rss": sorted(memory.peak.values()), "nobs": fit.nobs,
            "ngroups": fit.ngroups["g"], "feval": fit.optsummary.feval}


def compare(client, folder: Path) -> dict:
    """The same small data fitted on Dask and in memory: relative differences."""
    import pandas as pd

    import mixedfit as mf
    from mixedfit.distributed import mixed_parquet

    start = time.perf_counter()
    lazy = mixed_parquet(FORMULA, str(folder / "*.parquet"))
    dask_s = time.perf_counter() - start
    data = pd.concat([pd.read_parquet(f) for f in sorted(folder.glob("*.parquet"))],
                     ignore_index=True)  # the files in Dask's order
    start = time.perf_counter()
    ref = mf.mixed(FORMULA, data)
    memory_s = time.perf_counter() - start

    # The in-memory fit itself, rows shuffled: how far rounding alone moves BOBYQA's optimum.
    shuffled = mf.mixed(FORMULA, data.sample(frac=1, random_state=1))

    def rel(a, b) -> float:
        a, b = np.asarray(a, float), np.asarray(b, float)
        return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))

    def differences(fit) -> dict:
        return {"objective": rel(fit.optsummary.fmin, ref.optsummary.fmin),
                "beta": rel(fit.fixef, ref.fixef), "theta": rel(fit.theta, ref.theta),
                "se": rel(fit.bse, ref.bse), "sigma": rel(fit.sigma, ref.sigma)}

    fitted = lazy.fittedvalues.compute().to_numpy()
    return {"rows": len(data), "dask_s": dask_s, "memory_s": memory_s,
            "dask": differences(lazy) | {"fitted": rel(fitted, ref.fittedvalues.to_numpy())},
            "shuffled": differences(shuffled) | {"fitted": None},
            "summary_diff": [(a, b) for a, b in zip(str(ref.summary()).splitlines(),
                                                    str(lazy.summary()).splitlines()) if a != b]}


def _machine() -> str:
    import dask
    import pandas as pd
    import psutil

    import mixedfit

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
            f"RAM {psutil.virtual_memory().total / GiB:.1f} GiB; Python "
            f"{platform.python_version()}; mixedfit {mixedfit.__version__}; dask "
            f"{dask.__version__}; numpy {np.__version__}; pandas {pd.__version__}")


def _summary_diff(pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return "The two summaries are identical, character for character."
    lines = "\n".join(f"    in memory: {a}\n    Dask:      {b}" for a, b in pairs)
    return f"The two summaries differ in {len(pairs)} line(s) (θ's last digits):\n\n{lines}\n"


def _row(label: str, d: dict) -> str:
    keys = ["objective", "beta", "theta", "se", "sigma", "fitted"]
    return f"| {label} | " + " | ".join("–" if d[k] is None else f"{d[k]:.1e}" for k in keys) + " |"


def report(args, write_s: float, big: dict, small: dict, data_bytes: int) -> str:
    t = big["timings"]
    peaks = ", ".join(f"{p / 2**20:.0f} MiB" for p in big["peak_rss"])
    rows = f"{args.rows:,}"
    return f"""## Scale-out (Dask)

Generated {time.strftime("%Y-%m-%d %H:%M:%S")} by `python benchmarks/dask_bench.py{" " + " ".join(sys.argv[1:]) if sys.argv[1:] else ""}`.
Machine: {_machine()}; 1-minute load average just before the run {args.load_before:.1f} (other jobs on the machine).

`{FORMULA}` (REML) on {rows} simulated rows, {args.groups:,} groups, in
{-(-args.rows // args.file_rows)} parquet files of {args.file_rows:,} rows
({data_bytes / GiB:.2f} GiB on disk; {args.rows * 20 / GiB:.2f} GiB as float64/int32 columns in
memory), read with `mixedfit.distributed.mixed_parquet` on a `LocalCluster` of
{args.workers} worker processes (1 thread each) limited to {args.memory_limit} each.
Writing the files took {write_s:.0f} s (0 = reused).

| what | seconds |
|---|---:|
| pass 1, levels (read + model frame + distinct values) | {t["levels"]:.1f} |
| pass 2, sums (read + design + cross products, tree-reduced) | {t["sums"]:.1f} |
| checks and fit on the sums ({big["feval"]} evaluations) | {t["fit"]:.2f} |
| **total `mixed_parquet`** | **{big["wall_s"]:.1f}** |
| `summary()`: exact scaled-residual quantiles (2 more passes) | {big["summary_s"]:.1f} |

Peak resident memory per worker process (polled every 0.2 s): {peaks}. The
fitting process holds only the sums: their size depends on the numbers of
groups and coefficients, not of rows.

Agreement with the in-memory fit of the same {small["rows"]:,} rows: max |difference| / max |in-memory
value| (Dask fit {small["dask_s"]:.1f} s on the cluster, in memory {small["memory_s"]:.1f} s). The
second row is the in-memory fit of the same rows shuffled: the objectives differ only by
rounding, and BOBYQA (lme4's `xtol_rel = 1e-4`) stops at a θ that rounding alone moves by
about as much as the Dask fit's. {_summary_diff(small["summary_diff"])}

| compared with the in-memory fit | objective | β | θ | standard errors | σ | fitted values |
|---|---:|---:|---:|---:|---:|---:|
{_row("Dask fit", small["dask"])}
{_row("in memory, rows shuffled", small["shuffled"])}

Summary of the large fit:

```
{big["summary"]}
```
"""


def write_glmm_data(folder: Path, rows: int, files: int, seed: int) -> None:
    """The binomial data of ``--part glmm`` as ``files`` parquet files (rewritten each run: seconds)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    b = np.random.default_rng(seed).standard_normal(1000)
    per_file = -(-rows // files)
    for k, first in enumerate(range(0, rows, per_file)):
        n = min(per_file, rows - first)
        rng = np.random.default_rng([seed, k])
        g = rng.integers(0, b.size, n, dtype=np.int32)
        x = rng.standard_normal(n)
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(-0.5 + x + b[g])))).astype(float)
        pq.write_table(pa.table({"y": y, "x": x, "g": g}), folder / f"part{k:03d}.parquet")


def fit_glmm(client, folder: Path) -> dict:
    """The binomial GLMM on the cluster and in memory: times, passes, evaluations, peak memory, agreement."""
    import pandas as pd

    import mixedfit as mf
    from mixedfit.distributed import mixed_parquet

    with PeakMemory(client) as memory:
        start = time.perf_counter()
        lazy = mixed_parquet(GLMM_FORMULA, str(folder / "*.parquet"), family="binomial")
        dask_s = time.perf_counter() - start
    data = pd.concat([pd.read_parquet(f) for f in sorted(folder.glob("*.parquet"))], ignore_index=True)
    start = time.perf_counter()
    ref = mf.mixed(GLMM_FORMULA, data, family="binomial")
    memory_s = time.perf_counter() - start

    def rel(a, b) -> float:
        a, b = np.asarray(a, float), np.asarray(b, float)
        return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))

    return {"rows": len(data), "dask_s": dask_s, "memory_s": memory_s, "timings": lazy.timings,
            "passes": lazy.model.passes, "feval": int(lazy.fitted.stage1.feval + lazy.fitted.opt.feval),
            "peak_rss": sorted(memory.peak.values()), "objective": rel(lazy.minus2llf, ref.minus2llf),
            "beta": rel(lazy.fixef, ref.fixef), "theta": rel(lazy.theta, ref.theta), "se": rel(lazy.bse, ref.bse)}


def glmm_report(args, r: dict) -> str:
    t = r["timings"]
    peaks = ", ".join(f"{p / 2**20:.0f} MiB" for p in r["peak_rss"])
    return f"""{GLMM_HEADING}

Generated {time.strftime("%Y-%m-%d %H:%M:%S")} by `python benchmarks/dask_bench.py {" ".join(sys.argv[1:])}`.
Machine: {_machine()}; 1-minute load average just before the run {args.load_before:.1f} (other jobs on the machine).

`{GLMM_FORMULA}`, binomial (logit), on {r["rows"]:,} simulated 0/1 rows, 1,000 groups, in
{args.glmm_files} parquet files, read with `mixed_parquet(..., family="binomial")` on a
`LocalCluster` of {args.workers} worker processes (1 thread each) limited to {args.memory_limit} each;
then the same rows fitted in memory (`mf.mixed`), in the same process, right after.

| what | seconds |
|---|---:|
| levels pass | {t["levels"]:.1f} |
| designs built and persisted, checks | {t["designs"]:.1f} |
| fit: {r["passes"]} passes over the partitions, {r["feval"]} evaluations (both stages) | {t["fit"]:.1f} |
| **total on Dask** | **{r["dask_s"]:.1f}** |
| in memory (`mf.mixed`) | {r["memory_s"]:.1f} |

Dask / in memory: {r["dask_s"] / r["memory_s"]:.1f}× (same run, same machine). Peak resident memory per
worker process (polled every 0.2 s): {peaks}.

Agreement with the in-memory fit (max |difference| / max |in-memory value|): objective
{r["objective"]:.1e}, β {r["beta"]:.1e}, θ {r["theta"]:.1e}, standard errors {r["se"]:.1e}.
"""


def write_section(path: Path, heading: str, text: str) -> None:
    """Put ``text`` in ``path`` in place of the section that starts with ``heading`` (or after the rest)."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    start = old.find(heading)
    if start < 0:
        path.write_text(old.rstrip() + "\n\n" + text if old else text, encoding="utf-8")
        return
    end = old.find("\n## ", start + len(heading))
    path.write_text(old[:start] + text + ("" if end < 0 else old[end:]), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("lmm", "glmm"), default="lmm")
    parser.add_argument("--glmm-rows", type=lambda s: int(float(s)), default=1_000_000)
    parser.add_argument("--glmm-files", type=int, default=10)
    parser.add_argument("--rows", type=lambda s: int(float(s)), default=100_000_000)
    parser.add_argument("--groups", type=lambda s: int(float(s)), default=100_000)
    parser.add_argument("--file-rows", type=lambda s: int(float(s)), default=500_000)
    parser.add_argument("--compare-rows", type=lambda s: int(float(s)), default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="640MiB", help="per worker process")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/mixedfit_dask_bench"))
    parser.add_argument("--seed", type=int, default=20240101)
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).resolve().parent / "RESULTS_dask.md")
    args = parser.parse_args(argv)
    args.load_before = os.getloadavg()[0]

    import dask
    from distributed import Client, LocalCluster

    if args.part == "glmm":
        write_glmm_data(args.data_dir / "glmm", args.glmm_rows, args.glmm_files, args.seed)
        with dask.config.set({"distributed.worker.memory.pause": False}), \
                LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                             memory_limit=args.memory_limit, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            result = fit_glmm(client, args.data_dir / "glmm")
        text = glmm_report(args, result)
        write_section(args.output, GLMM_HEADING, text)
        print(text)
        return
    big_dir, small_dir = args.data_dir / "big", args.data_dir / "small"
    write_s = write_data(big_dir, args.rows, args.groups, args.file_rows, args.seed)
    write_data(small_dir, args.compare_rows, max(args.compare_rows // 100, 10),
               max(args.compare_rows // 10, 1), args.seed + 1)
    data_bytes = sum(f.stat().st_size for f in big_dir.glob("*.parquet"))
    print(f"data ready ({write_s:.0f} s to write)", flush=True)
    # The limit is enforced by the nanny, which restarts a worker that passes 95% of it.
    # Pausing (at 80%) is for data a worker holds between tasks; here every task's memory
    # is transient and malloc keeps some of it after the task, so a paused worker would
    # wait forever for memory that no task of its own will free.
    with dask.config.set({"distributed.worker.memory.pause": False}), \
            LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                         memory_limit=args.memory_limit, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        small = compare(client, small_dir)
        print("agreement:", {k: v for k, v in small.items()}, flush=True)
        big = fit_big(client, big_dir)
        print({k: v for k, v in big.items() if k != "summary"}, flush=True)
    text = report(args, write_s, big, small, data_bytes)
    write_section(args.output, "## Scale-out (Dask)", text)
    print(text)


if __name__ == "__main__":
    main()
