#!/usr/bin/env python
"""Benchmark mixedfit against lme4 (R), statsmodels MixedLM and the Python peers, side by side.

    python benchmarks/run.py [--repeats N | --repeats case=N,...] [--cases a,b]
                             [--quick] [--skip-lme4-big] [--no-memory]
                             [--lme4-openblas DIR] [--libs ...]

See benchmarks/README.md for what is measured and how.  Writes
benchmarks/RESULTS.md (one markdown table plus machine and versions) and
benchmarks/results.json (every individual run).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import importlib.util
import json
import os
import platform
import queue
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _early_blas_threads(argv: list[str]) -> None:
    """Apply --blas-threads before numpy is imported (and for every child process)."""
    for i, arg in enumerate(argv):
        val = None
        if arg == "--blas-threads" and i + 1 < len(argv):
            val = argv[i + 1]
        elif arg.startswith("--blas-threads="):
            val = arg.split("=", 1)[1]
        if val is not None:
            for var in BLAS_THREAD_VARS:
                os.environ[var] = str(int(val))


if __name__ == "__main__":
    _early_blas_threads(sys.argv[1:])

from common import (  # noqa: E402
    CASES,
    CASES_BY_KEY,
    REPO,
    WITHOUT_CHOLMOD,
    Case,
    frames_identical,
    hide_cvxopt_if_asked,
    load_manifest,
    source_frame,
    write_manifest,
)

from peers import DISTRIBUTIONS, MODULES, PEERS  # noqa: E402

LIBS = ("mixedfit", "lme4", "lme4_openblas", "statsmodels") + PEERS
LABELS = {"lme4_openblas": "lme4 (OpenBLAS)", "lme_python": "lme-python", "interlace": "interlace-lme"}
OBJ_RTOL = 1e-9        # mixedfit's objective vs lme4's (the project's standard)
PEER_RTOL = 1e-6       # a peer "reached lme4's optimum" within this, relative
# Pause before every timed run: OpenBLAS threads keep spinning for a while after
# their last call, so a run that starts right after another library's
# multithreaded fit shares the cores with them (Hsb82: 8 ms after a pause, 19-25 ms
# right after statsmodels' fit).
SETTLE_S = 0.5
WARMUP_FORMULA = "Reaction ~ Days + (Days|Subject)"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- child processes
class WorkerError(RuntimeError):
    pass


class WorkerTimeout(WorkerError):
    pass


class LineWorker:
    """A child process that takes one JSON command per line on stdin and answers
    each with one ``@@ {json}`` line on stdout (other output is ignored)."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict | None = None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            text=True, bufsize=1, cwd=str(REPO), env=env, start_new_session=True,
        )
        self._q: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # fields that lme4_server.R sends as "%.17g" text so that no digit is lost
    _EXACT = ("elapsed", "fmin", "objective", "laplace", "sigma", "theta", "beta")

    @classmethod
    def _decode(cls, rep: dict) -> dict:
        for key in cls._EXACT:
            val = rep.get(key)
            if isinstance(val, str):
                rep[key] = float(val)
            elif isinstance(val, list):
                rep[key] = [float(v) if isinstance(v, str) else v for v in val]
        return rep

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("@@ "):
                try:
                    self._q.put(self._decode(json.loads(line[3:])))
                except json.JSONDecodeError as exc:
                    self._q.put({"ok": False, "error": f"bad reply from {self.name}: {exc}"})
        self._q.put(None)

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def call(self, msg: dict, timeout: float | None = None) -> dict:
        if self.proc.poll() is not None:
            raise WorkerError(f"{self.name} is not running; its log ends:\n{self.log_tail()}")
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        try:
            rep = self._q.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise WorkerTimeout(f"{self.name}: no answer within {timeout:.0f} s") from None
        if rep is None:
            raise WorkerError(f"{self.name} exited; its log ends:\n{self.log_tail()}")
        return rep

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self._log.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call({"cmd": "quit"}, timeout=30)
                self.proc.wait(timeout=30)
            except (WorkerError, subprocess.TimeoutExpired, OSError):
                pass
        self.kill()


def start_r(args, tmp: Path, tag: str, openblas: bool = False) -> LineWorker:
    """The lme4 server; with ``openblas``, R loads BLAS and LAPACK from ``--lme4-openblas``.

    R's start script puts ``R_LD_LIBRARY_PATH`` in front of ``LD_LIBRARY_PATH``, and
    R links ``libblas.so.3`` / ``liblapack.so.3`` by soname, so a directory holding
    OpenBLAS under those names switches this one R process, and nothing else.
    """
    env = None
    if openblas:
        env = dict(os.environ)
        env["R_LD_LIBRARY_PATH"] = os.pathsep.join([str(Path(args.lme4_openblas).resolve()),
                                                    *_r_default_ld_paths(args)])
        tag += "-openblas"
    return LineWorker(f"lme4 ({tag})", [args.rscript, "--vanilla", str(HERE / "lme4_server.R")],
                      tmp / f"r-{tag}.log", env=env)


def _r_default_ld_paths(args) -> list[str]:
    """R's own R_LD_LIBRARY_PATH (R_HOME/lib and the system library directory)."""
    out = subprocess.run([args.rscript, "--vanilla", "-e", "cat(Sys.getenv('R_LD_LIBRARY_PATH'))"],
                         capture_output=True, text=True, timeout=120)
    return [p for p in out.stdout.strip().split(os.pathsep) if p]


def start_peer(name: str, tmp: Path) -> LineWorker:
    return LineWorker(name, [sys.executable, str(HERE / "worker.py"), "peer", name],
                      tmp / f"{name}.log", env=_child_env())


def start_sm(tmp: Path) -> LineWorker:
    return LineWorker("statsmodels", [sys.executable, str(HERE / "worker.py"), "statsmodels"],
                      tmp / "statsmodels.log", env=_child_env())


def _child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


# --------------------------------------------------------------------------- machine & versions
def machine_info() -> dict:
    info: dict[str, Any] = {"platform": platform.platform(), "hostname_hidden": True}
    cpu_model, cores = None, set()
    try:
        phys = core = None
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, val = line.partition(":")
                key, val = key.strip(), val.strip()
                if key == "model name" and cpu_model is None:
                    cpu_model = val
                elif key == "physical id":
                    phys = val
                elif key == "core id":
                    core = val
                elif not key and phys is not None:
                    cores.add((phys, core))
                    phys = core = None
    except OSError:
        pass
    info["cpu_model"] = cpu_model or platform.processor() or "unknown"
    info["logical_cpus"] = os.cpu_count()
    info["physical_cores"] = len(cores) or None
    try:
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["usable_cpus"] = os.cpu_count()
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    info["ram_gib"] = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        info["ram_gib"] = None
    info["thread_env"] = {k: os.environ[k] for k in BLAS_THREAD_VARS if k in os.environ}
    return info


def python_versions() -> dict:
    import mixedfit
    from mixedfit.supernodal import cholmod_available

    out = {"python": platform.python_version(), "mixedfit": getattr(mixedfit, "__version__", "?")}
    for pkg in ("numpy", "scipy", "pandas", "statsmodels", "formulaic", "nlopt", "cvxopt",
                *(DISTRIBUTIONS[p] for p in PEERS)):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    if out["cvxopt"] is not None and not cholmod_available():
        out["cvxopt"] += " (hidden: --without-cholmod)"
    try:
        import numpy as np

        cfg = np.show_config(mode="dicts")  # numpy >= 1.25
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        out["numpy_blas"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # pragma: no cover - old numpy
        out["numpy_blas"] = None
    # OpenBLAS picks its kernels from the CPU at load time, and may take older
    # ones than the CPU could run (this AMD EPYC: Haswell's AVX2, not AVX-512).
    from threadpoolctl import threadpool_info

    out["blas_kernels"] = ", ".join(sorted({str(lib.get("architecture")) for lib in threadpool_info()
                                            if lib.get("user_api") == "blas"})) or None
    return out


# --------------------------------------------------------------------------- runs
def fit_mixedfit(frame, case: Case) -> dict:
    import mixedfit as mf
    import numpy as np

    data = frame.copy(deep=True)  # untimed; a fresh object every run, so no identity caching
    gc.collect()
    kwargs = {"reml": case.reml} if case.family is None else {"family": case.family}
    with warnings.catch_warnings(record=True) as wlist:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        fit = mf.mixed(case.formula, data, **kwargs)
        elapsed = time.perf_counter() - t0
    opt = fit.optsummary
    out = {
        "ok": True, "elapsed": elapsed, "fmin": float(opt.fmin), "feval": int(opt.feval),
        "theta": np.asarray(getattr(opt, "final", []), dtype=float).tolist(),
        "optimizer": str(getattr(opt, "optimizer", "")),
        "warnings": sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in wlist}),
    }
    if case.family is not None:  # compared with lme4's -2 logLik
        out["fmin"] = -2.0 * float(fit.llf)
        out["scale"] = "dev"
    return out


def _err(exc: BaseException) -> dict:
    return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _memprobe_mixedfit(args, case: Case, manifest: Path, warm_manifest: Path) -> dict:
    cmd = [sys.executable, str(HERE / "worker.py"), "memprobe", "--manifest", str(manifest),
           "--warmup", str(warm_manifest), "--formula", case.formula, "--reml", str(int(case.reml))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_child_env(),
                              timeout=args.memory_timeout, cwd=str(REPO))
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"memory probe ran past {args.memory_timeout} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("@@ "):
            return json.loads(line[3:])
    return {"ok": False, "error": f"memory probe failed (rc {proc.returncode}): {proc.stderr[-800:]}"}


def _memprobe_lme4(args, case: Case, manifest: Path, warm_manifest: Path, tmp: Path) -> dict:
    r = start_r(args, tmp, f"mem-{case.key}")
    try:
        for msg in ({"cmd": "load", "id": "warm", "manifest": str(warm_manifest)},
                    {"cmd": "fit", "id": "warm", "formula": WARMUP_FORMULA, "reml": True},
                    {"cmd": "drop", "id": "warm"},
                    {"cmd": "load", "id": case.key, "manifest": str(manifest)}):
            rep = r.call(msg, timeout=args.memory_timeout)
            if not rep.get("ok"):
                return rep
        return r.call({"cmd": "fit", "id": case.key, "formula": case.formula,
                       "reml": case.reml, "family": case.family, "memory": True},
                      timeout=args.memory_timeout)
    except WorkerError as exc:
        return _err(exc)
    finally:
        r.close()


def _peer_spec(case: Case) -> dict:
    return {"formula": case.peer_formula or case.formula, "lme4_formula": case.formula,
            "reml": case.reml, "family": case.family, "weights": case.peer_weights}


def _worker_fit(ctx: dict, key: str, msg: dict, timeout: float | None) -> dict:
    """One fit in a Python worker; a worker that times out or dies is restarted next time."""
    try:
        return ctx[key].call(msg, timeout=timeout)
    except WorkerTimeout:
        ctx[key] = None  # killed; restarted for the next case that needs it
        return {"ok": False, "timeout": True, "elapsed_min": timeout,
                "error": f"no result within {timeout:.0f} s (stopped)"}
    except WorkerError as exc:
        ctx[key] = None
        return _err(exc)


def _python_workers(case: Case) -> dict[str, tuple]:
    """lib -> (ctx key, starter, fit message, n/a reason or None) for the worker-run libraries."""
    out: dict[str, tuple] = {
        "statsmodels": ("sm", start_sm, {"cmd": "fit", "id": case.key, "spec": case.statsmodels,
                                         "reml": case.reml},
                        None if case.statsmodels is not None else "n/a: " + case.statsmodels_na),
    }
    for peer in PEERS:
        na = case.peer_na.get(peer)
        out[peer] = (f"peer:{peer}", lambda tmp, peer=peer: start_peer(peer, tmp),
                     {"cmd": "fit", "id": case.key, "spec": _peer_spec(case)},
                     None if na is None else "n/a: " + na)
    return out


def run_case(case: Case, args, ctx: dict) -> dict:
    tmp: Path = ctx["tmp"]
    libs = ctx["libs"]
    repeats = ctx["repeats"][case.key]
    big_skip = args.skip_lme4_big and case.size == "big"
    res: dict[str, Any] = {
        "case": case.key, "title": case.title, "formula": case.formula, "reml": case.reml,
        "family": case.family, "peer_formula": case.peer_formula, "peer_weights": case.peer_weights,
        "size": case.size, "repeats": repeats, "note": case.note,
        "runs": {lib: [] for lib in LIBS}, "skipped": {}, "memory": {}, "data": {},
    }
    crit = case.family + " GLMM, Laplace" if case.family else ("REML" if case.reml else "ML")
    log(f"== {case.title}: {case.formula}  ({crit}, {repeats} run(s))")

    t0 = time.perf_counter()
    src = source_frame(case)
    manifest = write_manifest(case, src, tmp / case.key)
    frame = load_manifest(manifest)
    if not frames_identical(src, frame):
        raise RuntimeError(f"{case.key}: manifest round trip changed the data")
    del src
    res["data"].update(nrow=len(frame), ncol=frame.shape[1], prepare_s=time.perf_counter() - t0)

    workers = _python_workers(case)
    use = {lib: lib in libs for lib in LIBS}
    for lib in ("lme4", "lme4_openblas"):
        if use[lib] and big_skip:
            use[lib] = False
            res["skipped"][lib] = "--skip-lme4-big"
    for lib, (_, _, _, na) in workers.items():
        if use[lib] and na:
            use[lib] = False
            res["skipped"][lib] = na
    for lib in LIBS:
        if lib not in libs:
            res["skipped"][lib] = ctx["not_run"].get(lib, "not selected (--libs)")

    r_keys = {"lme4": "r", "lme4_openblas": "r_ob"}
    loaded = []
    for lib, key in r_keys.items():
        if not use[lib]:
            continue
        rep = ctx[key].call({"cmd": "load", "id": case.key, "manifest": str(manifest)})
        if not rep.get("ok"):
            raise RuntimeError(f"R could not load {case.key}: {rep.get('error')}")
        loaded.append(key)
        if lib == "lme4" or "r_identical" not in res["data"]:
            res["data"]["r_identical"] = rep["identical"]
            res["data"]["r_mismatch"] = rep.get("mismatch", [])
            res["data"]["r_load_s"] = rep["load_s"]
        if not rep["identical"]:
            log(f"   !! R's data differ from Python's in columns {rep.get('mismatch')}")
    for lib, (key, starter, _, _) in workers.items():
        if not use[lib]:
            continue
        if ctx.get(key) is None or ctx[key].proc.poll() is not None:
            ctx[key] = starter(tmp)
        rep = ctx[key].call({"cmd": "load", "id": case.key, "manifest": str(manifest)})
        if not rep.get("ok"):
            raise RuntimeError(f"{lib} worker could not load {case.key}: {rep.get('error')}")
        loaded.append(key)

    r_msg = {"cmd": "fit", "id": case.key, "formula": case.formula, "reml": case.reml,
             "family": case.family}
    # alternate: run i of every library, then run i + 1, so load drifts hit all alike
    for i in range(repeats):
        for lib in LIBS:
            if not use[lib]:
                continue
            time.sleep(SETTLE_S)
            if lib == "mixedfit":
                try:
                    out = fit_mixedfit(frame, case)
                except Exception as exc:  # record and stop timing this library on this case
                    out = _err(exc)
            elif lib in r_keys:
                try:
                    out = ctx[r_keys[lib]].call(r_msg)
                except WorkerError as exc:
                    raise RuntimeError(f"the R child ({lib}) failed: {exc}") from exc
            else:
                key, _, msg, _ = workers[lib]
                out = _worker_fit(ctx, key, msg, args.sm_timeout if lib == "statsmodels"
                                  else args.peer_timeout)
            if not out.get("ok"):
                use[lib] = False
                if out.get("na"):
                    res["skipped"][lib] = out["na"]
            res["runs"][lib].append(out)
            log(f"   run {i + 1}/{repeats} {lib:<13} {_show_run(out)}")

    for key in dict.fromkeys(loaded):
        if ctx.get(key) is None:
            continue
        try:
            ctx[key].call({"cmd": "drop", "id": case.key}, timeout=120)
        except WorkerError:
            if key.startswith("r"):
                raise
            ctx[key] = None
    del frame
    gc.collect()

    if not args.no_memory:
        warm = ctx["warm_manifest"]
        if "mixedfit" in libs and case.family is None:
            log("   memory probe: mixedfit (fresh process)")
            res["memory"]["mixedfit"] = _memprobe_mixedfit(args, case, manifest, warm)
        if "lme4" in libs and not big_skip:
            log("   memory probe: lme4 (fresh Rscript)")
            res["memory"]["lme4"] = _memprobe_lme4(args, case, manifest, warm, tmp)
    shutil.rmtree(tmp / case.key, ignore_errors=True)
    summarize(res)
    return res


def _show_run(out: dict) -> str:
    if not out.get("ok"):
        return "FAILED: " + str(out.get("error", ""))[:300]
    obj = out.get("fmin", out.get("objective"))
    return f"{out['elapsed']:9.3f} s   objective {obj:.10g}   feval {out.get('feval')}"


# --------------------------------------------------------------------------- summary
def _median(xs):
    return statistics.median(xs) if xs else None


def _lib_status(lib: str, runs: list[dict], skipped: dict) -> dict:
    ok = [r for r in runs if r.get("ok")]
    times = [r["elapsed"] for r in ok]
    entry: dict[str, Any] = {"n_ok": len(ok), "median_s": _median(times),
                             "min_s": min(times) if times else None,
                             "max_s": max(times) if times else None}
    if lib in skipped:
        entry["status"] = skipped[lib]
    elif not runs:
        entry["status"] = "not run"
    elif any(r.get("timeout") for r in runs):
        entry["status"] = "timeout"
        entry["timeout_s"] = next(r["elapsed_min"] for r in runs if r.get("timeout"))
    elif not ok:
        entry["status"] = "error: " + str(runs[0].get("error"))
    else:
        entry["status"] = "ok"
    if ok:
        key = "fmin" if lib == "mixedfit" else "objective"
        objs = [r[key] for r in ok if r.get(key) is not None]
        if objs:  # mixedfit: its worst run; the others: their best
            entry["objective"] = max(objs) if lib == "mixedfit" else min(objs)
            entry["objective_spread"] = max(objs) - min(objs)
        entry["scale"] = ok[0].get("scale", "crit")
        for extra in ("laplace", "objective_at_theta"):
            vals = [r[extra] for r in ok if r.get(extra) is not None]
            if vals:
                entry[extra] = min(vals)
        entry["theta"] = ok[0].get("theta")
        entry["feval"] = ok[0].get("feval")
        if entry["feval"] and entry["median_s"]:
            entry["time_per_eval_s"] = entry["median_s"] / entry["feval"]
        warns = sorted({w for r in ok for w in (r.get("warnings") or []) + (r.get("conv_messages") or [])})
        if warns:
            entry["warnings"] = warns
    return entry


def _reference(s: dict, scale: str) -> float | None:
    """lme4's objective on ``scale`` (reference BLAS, else OpenBLAS)."""
    for lib in ("lme4", "lme4_openblas"):
        e = s.get(lib, {})
        val = e.get("laplace") if scale == "laplace" else e.get("objective")
        if val is not None:
            return val
    return None


def summarize(res: dict) -> None:
    s: dict[str, Any] = {lib: _lib_status(lib, res["runs"].get(lib, []), res["skipped"]) for lib in LIBS}
    mf = s["mixedfit"]
    s["speedup"] = {lib: s[lib]["median_s"] / mf["median_s"] for lib in LIBS
                    if lib != "mixedfit" and mf["median_s"] and s[lib]["median_s"]}
    s["speedup_at_least"] = {lib: s[lib]["timeout_s"] / mf["median_s"] for lib in LIBS
                             if mf["median_s"] and s[lib].get("status") == "timeout"}
    for lib in LIBS:
        e = s[lib]
        ref = _reference(s, e.get("scale", "crit"))
        if e.get("objective") is None or ref is None or lib == "lme4":
            continue
        at = e.get("objective_at_theta")
        if at is not None:  # the peer's constant vs lme4's, at the peer's own θ
            e["at_theta_rel_diff"] = (e["objective"] - at) / abs(at)
        # A GLMM peer's own −2 log L is its own evaluation of the Laplace approximation (mixedlm's
        # and interlace-lme's lie below glmer's function at their θ): judged by the higher of the two,
        # so that neither its own number nor glmer's function at its θ may be above lme4's optimum.
        judged = max(at, e["objective"]) if at is not None and res.get("family") is not None else e["objective"]
        e["rel_diff"] = (judged - ref) / abs(ref) if ref else judged - ref
        tol = OBJ_RTOL if lib == "mixedfit" else PEER_RTOL
        e["optimum_ok"] = judged <= ref + tol * abs(ref)
    # the legacy keys, read by results.json consumers of the three-library table
    if "lme4" in s["speedup"]:
        s["speedup_lme4"] = s["speedup"]["lme4"]
    if "statsmodels" in s["speedup"]:
        s["speedup_statsmodels"] = s["speedup"]["statsmodels"]
    elif "statsmodels" in s["speedup_at_least"]:
        s["speedup_statsmodels_at_least"] = s["speedup_at_least"]["statsmodels"]
    if "rel_diff" in mf and s["lme4"].get("objective") is not None:
        s["objective_rel_diff"] = mf["rel_diff"]
        s["objective_ok"] = mf["optimum_ok"]
    mem = res.get("memory", {})
    s["memory"] = {}
    for lib in ("mixedfit", "lme4"):
        m = mem.get(lib)
        if m and m.get("ok") and m.get("peak_rss_mb") is not None:
            s["memory"][lib] = {
                "peak_rss_mb": m["peak_rss_mb"],
                "fit_delta_mb": (m["peak_rss_mb"] - m["rss_before_mb"]) if m.get("peak_reset") else None,
                "gc_max_used_mb": m.get("gc_max_used_mb"),
                "gc_fit_delta_mb": (m["gc_max_used_mb"] - m["gc_used_before_mb"])
                if m.get("gc_used_before_mb") is not None else None,
                "ru_maxrss_mb": m.get("ru_maxrss_mb"),
            }
        elif m:
            s["memory"][lib] = {"error": m.get("error", "failed")}
    res["summary"] = s


# --------------------------------------------------------------------------- report
def _fmt_time(x: float | None) -> str:
    if x is None:
        return "–"
    if x < 1:
        return f"{x * 1000:.3g} ms"
    if x < 100:
        return f"{x:.3g} s"
    return f"{x:.0f} s"


def _fmt_ratio(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.3g}×" if x < 100 else f"{x:.0f}×"


def _fmt_obj(x: float | None) -> str:
    return "–" if x is None else f"{x:.6f}"


def _cell_time(entry: dict) -> str:
    st = entry.get("status", "")
    if st == "ok":
        return _fmt_time(entry["median_s"])
    if st == "timeout":
        return f"> {entry['timeout_s']:.0f} s (stopped)"
    if st.startswith("n/a"):
        return "n/a"
    if st == "--skip-lme4-big":
        return "skipped"
    if st.startswith("not selected"):
        return "–"
    if st.startswith("error"):
        return "error"
    return st


def _cell_mem(m: dict | None, with_heap: bool = False) -> str:
    if not m:
        return "–"
    if "error" in m:
        return "error"
    txt = f"{m['peak_rss_mb']:.0f}"
    if m.get("fit_delta_mb") is not None:
        txt += f" (+{max(m['fit_delta_mb'], 0):.0f})"
    if with_heap and m.get("gc_fit_delta_mb") is not None:
        txt += f"; R heap +{max(m['gc_fit_delta_mb'], 0):.0f}"
    return txt


def _md(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _shown_libs(report: dict) -> list[str]:
    """The libraries this run measured, in table order (old results.json: those it has)."""
    libs = report["config"].get("libs") or list(LIBS)
    return [lib for lib in LIBS if lib in libs]


def _label(lib: str) -> str:
    return LABELS.get(lib, lib)


def _criterion(res: dict) -> str:
    if res.get("family"):
        return f"{res['family']} (Laplace)"
    return "REML" if res["reml"] else "ML"


def _scale_label(res: dict, e: dict) -> str:
    if e.get("objective") is None:
        return "–"
    scale = e.get("scale", "crit")
    if scale == "crit":
        return "REML crit." if res["reml"] else "−2 log L"
    return {"dev": "−2 log L", "laplace": "laplace"}.get(scale, scale)


def _cell_lib_time(e: dict) -> str:
    txt = _cell_time(e)
    if e.get("optimum_ok") is False:
        txt += " ✗"
    return txt


def _fastest_peer(s: dict, libs: list[str]) -> tuple[str, float] | None:
    """The fastest Python peer that reached lme4's optimum."""
    best = None
    for lib in libs:
        e = s.get(lib, {})
        if lib in PEERS and e.get("median_s") and e.get("optimum_ok"):
            if best is None or e["median_s"] < best[1]:
                best = (lib, e["median_s"])
    return best


def _machine_lines(report: dict) -> list[str]:
    mach, ver, cfg = report["machine"], report["versions"], report["config"]
    peers = "; ".join(f"{DISTRIBUTIONS[p]} {ver.get(DISTRIBUTIONS[p]) or 'not installed'}" for p in PEERS
                      if DISTRIBUTIONS[p] in ver)
    lines = [
        f"- CPU: {mach['cpu_model']}; {mach['logical_cpus']} logical CPUs"
        + (f" ({mach['physical_cores']} physical cores)" if mach.get("physical_cores") else "")
        + (f", {mach['usable_cpus']} usable by this process" if mach.get("usable_cpus") != mach["logical_cpus"] else "")
        + f"; RAM {mach.get('ram_gib')} GiB; {mach['platform']}",
        f"- Python {ver['python']}; mixedfit {ver['mixedfit']}; numpy {ver['numpy']} "
        f"(BLAS: {ver.get('numpy_blas')}, {ver.get('blas_kernels')} kernels); scipy {ver['scipy']}; pandas {ver['pandas']}; "
        f"formulaic {ver.get('formulaic')}; nlopt {ver.get('nlopt')}; statsmodels {ver.get('statsmodels')}; "
        f"cvxopt {ver.get('cvxopt') or 'not installed'} (mixedfit's cholmod extra: CHOLMOD factors sparse rests)",
    ]
    if peers:
        lines.append(f"- Python peers: {peers}")
    lines.append(f"- {ver.get('R', 'R: not run')}; lme4 {ver.get('lme4', '–')}; Matrix {ver.get('Matrix', '–')}; "
                 f"R BLAS of the lme4 column: {ver.get('R_blas', '–')}"
                 + (f"; of the lme4 (OpenBLAS) column: {ver['R_blas_openblas']} (LAPACK {ver.get('R_lapack_openblas')})"
                    if ver.get("R_blas_openblas") else ""))
    lines += [
        "- Thread settings: " + (", ".join(f"{k}={v}" for k, v in mach["thread_env"].items())
                                 or "library defaults (no *_NUM_THREADS set)"),
        f"- Runs per case: {', '.join(f'{k} {v}' for k, v in cfg['repeats'].items())}; "
        f"statsmodels limit {cfg['sm_timeout']:.0f} s per fit"
        + (f", Python peers {cfg['peer_timeout']:.0f} s" if cfg.get("peer_timeout") else "")
        + ("; lme4 skipped on the big simulated cases (--skip-lme4-big)" if cfg["skip_lme4_big"] else ""),
    ]
    return lines


def render_markdown(report: dict) -> str:
    libs = _shown_libs(report)
    lines = [
        "# mixedfit benchmark results",
        "",
        f"Generated {report['date']} by `{report['command']}` "
        f"(total {report['total_s'] / 60:.1f} min). How to read this: see `benchmarks/README.md`.",
        *([""] + [f"- merged from the run of {m['date']} (`{m['command']}`, CPU {m['machine']['cpu_model']})"
                  for m in report["merged_from"]] if report.get("merged_from") else []),
        "",
        "## Machine and versions",
        "",
        *_machine_lines(report),
        "",
        "## Time per fit",
        "",
        "Median wall time per fit, end to end from the data frame. ✗: that library's optimum is worse "
        f"than lme4's by more than {PEER_RTOL:g} relative (mixedfit: {OBJ_RTOL:g}); the objectives are "
        "in the next table. Speed-up = the other library's median / mixedfit's median (above 1: mixedfit "
        "is faster); *vs best peer*: the fastest Python peer that reached lme4's optimum.",
        "",
        "| case | rows | runs | criterion | " + " | ".join(_label(l) for l in libs)
        + " | mixedfit vs lme4 | vs lme4 (OpenBLAS) | vs best peer | check |",
        "|---|---:|---:|---|" + "---:|" * len(libs) + "---:|---:|---:|---|",
    ]
    details = [
        "",
        "## Objective, evaluations, memory",
        "",
        "Objective: the REML criterion (REML), the deviance −2 log L (ML), and for GLMMs −2 log L of "
        "the Laplace approximation (lme4's `-2 * logLik`); *laplace*: lme4's optimised GLMM objective "
        "(−2 log L without the saturated model's part), the scale lme-python reports. *rel. diff*: "
        "(objective − lme4's) / |lme4's| on the same scale, negative = lower (better) than lme4; for a "
        "GLMM peer whose objective is −2 log L, from the higher of that and glmer's −2 log L at its θ "
        "(β refitted, in the notes), since peers evaluate the Laplace approximation otherwise. "
        "*evals*: objective evaluations as the library counts them (see README); *per eval*: median "
        "time / evals. Peak RSS: MB of a fresh process during one fit (in parentheses: increase over "
        "the RSS just before the fit; for lme4 also the R heap the fit allocated).",
        "",
        "| case | library | time | objective | scale | rel. diff vs lme4 | optimum | evals | per eval "
        "| peak RSS MB |",
        "|---|---|---:|---:|---|---:|---|---:|---:|---:|",
    ]
    notes: list[str] = []
    flagged: list[str] = []
    for res in report["cases"]:
        s = res.get("summary", {})
        if "error" in res:
            lines.append(f"| {_md(res['title'])} | | | | error: {_md(res['error'][:80])} |"
                         + " |" * (len(libs) + 3))
            continue
        mf = s["mixedfit"]
        sp = s.get("speedup") or {lib: s[f"speedup_{lib}"] for lib in ("lme4", "statsmodels")
                                  if s.get(f"speedup_{lib}")}  # results.json before the peers
        if "optimum_ok" not in mf and "objective_ok" in s:
            mf = dict(mf, optimum_ok=s["objective_ok"], rel_diff=s.get("objective_rel_diff"))
        vs = []
        for lib in ("lme4", "lme4_openblas"):
            if lib in sp:
                vs.append(_fmt_ratio(sp[lib]))
            elif lib in s.get("speedup_at_least", {}):
                vs.append(f"> {_fmt_ratio(s['speedup_at_least'][lib])}")
            else:
                vs.append("–")
        best = _fastest_peer(s, libs)
        vs.append(f"{_fmt_ratio(best[1] / mf['median_s'])} ({_label(best[0])})"
                  if best and mf.get("median_s") else "–")
        check = []
        if mf.get("optimum_ok") is False:
            check.append("**WORSE than lme4**")
            flagged.append(f"{res['title']}: mixedfit {mf['objective']:.10g} vs lme4 "
                           f"{_reference(s, mf.get('scale', 'crit')):.10g} (rel. {mf['rel_diff']:+.2e})")
        elif mf.get("optimum_ok"):
            check.append("ok")
        if res["data"].get("r_identical") is False:
            check.append("**R data differ**")
        if mf.get("status", "ok").startswith(("error", "timeout")):
            check.append("mixedfit failed")
        lines.append(
            f"| {_md(res['title'])} | {res['data']['nrow']:,} | {res['repeats']} | {_criterion(res)} | "
            + " | ".join(_cell_lib_time(s[lib]) for lib in libs) + " | " + " | ".join(vs)
            + f" | {', '.join(check) or '–'} |")
        mem = s.get("memory", {})
        for lib in libs:
            e = mf if lib == "mixedfit" else s[lib]
            if e.get("status", "").startswith("not selected"):
                continue
            rel = e.get("rel_diff")
            rel_txt = "–" if rel is None else ("0" if rel == 0 else f"{rel:+.1e}")
            opt = {True: "ok", False: "**worse optimum**" if lib != "mixedfit" else "**WORSE**"}.get(
                e.get("optimum_ok"), "ref." if lib == "lme4" and e.get("objective") is not None else "–")
            obj = _fmt_obj(e.get("objective"))
            if e.get("laplace") is not None:
                obj += f" (laplace {e['laplace']:.6f})"
            details.append(
                f"| {_md(res['title'])} | {_label(lib)} | {_cell_time(e)} | {obj} | "
                f"{_scale_label(res, e)} | {rel_txt} | {opt} "
                f"| {e.get('feval') if e.get('feval') is not None else '–'} "
                f"| {_fmt_time(e.get('time_per_eval_s'))} "
                f"| {_cell_mem(mem.get(lib), lib == 'lme4') if lib in ('mixedfit', 'lme4') else '–'} |")
        case_notes = []
        if res.get("note"):
            case_notes.append(res["note"])
        if res.get("peer_formula"):
            case_notes.append(f"Python peers fit `{res['peer_formula']}`"
                              + (f" with weights {res['peer_weights']}" if res.get("peer_weights") else ""))
        for lib in libs:
            e = s[lib]
            st = e.get("status", "")
            if st.startswith("n/a") or st.startswith("error"):
                case_notes.append(f"{_label(lib)} {st[:300]}")
            elif st == "timeout":
                case_notes.append(f"{_label(lib)} stopped after {e['timeout_s']:.0f} s without a result "
                                  "(speed-up shown as a lower bound)")
            elif st == "--skip-lme4-big":
                case_notes.append(f"{_label(lib)} skipped (--skip-lme4-big)")
            if e.get("warnings"):
                case_notes.append(f"{_label(lib)} warnings: " + "; ".join(e["warnings"])[:300])
            if res.get("family") is not None and e.get("objective_at_theta") is not None:
                case_notes.append(f"{_label(lib)} reports {e['objective']:.6f}; glmer's −2 log L at its θ, β "
                                  f"refitted, is {e['objective_at_theta']:.6f} ({e['at_theta_rel_diff']:+.1e} "
                                  "relative); its rel. diff and optimum are the higher one's")
            elif e.get("at_theta_rel_diff") is not None and abs(e["at_theta_rel_diff"]) > PEER_RTOL:
                case_notes.append(f"{_label(lib)}'s reported objective differs from mixedfit's objective at "
                                  f"its θ by {e['at_theta_rel_diff']:+.1e} relative (other constant, or θ "
                                  "in another order)")
            if e.get("n_ok", 0) >= 2 and e["min_s"] and e["max_s"] > 2 * e["min_s"]:
                case_notes.append(f"{_label(lib)} runs ranged {_fmt_time(e['min_s'])} – {_fmt_time(e['max_s'])}")
        if res["data"].get("r_identical") is False:
            case_notes.append(f"R read different values in columns {res['data'].get('r_mismatch')}")
        for lib, m in mem.items():
            if "error" in m:
                case_notes.append(f"{lib} memory probe: {m['error'][:200]}")
        probe = res.get("memory", {})
        probe_t = [f"{lib} {_fmt_time(probe[lib]['elapsed'])}" for lib in ("mixedfit", "lme4")
                   if isinstance(probe.get(lib), dict) and probe[lib].get("ok")
                   and isinstance(probe[lib].get("elapsed"), (int, float))]
        if probe_t:
            case_notes.append("one more fit in a fresh process (memory probe, not in the median): "
                              + ", ".join(probe_t))
        head = f"- **{res['title']}** (`{res['formula']}`, {_criterion(res)})"
        notes.append(head + (": " + " — ".join(" ".join(n.split()) for n in case_notes) if case_notes else ""))
    lines += details
    lines += ["", "## Objective check", ""]
    if flagged:
        lines.append(f"mixedfit's objective is worse than lme4's by more than {OBJ_RTOL:g} relative in:")
        lines += [f"- {f}" for f in flagged]
    else:
        lines.append(f"In every case where both fitted, mixedfit's objective is ≤ lme4's + {OBJ_RTOL:g} relative.")
    lines += ["", "## Notes per case", ""] + notes + [""]
    lines += [
        "## Other benchmarks",
        "",
        "- Scale-out: 1e8 rows from parquet on a two-process Dask cluster, [RESULTS_dask.md](RESULTS_dask.md)"
        " (`benchmarks/dask_bench.py`).",
        "- Profile of InstEval's variance parameters, mixedfit vs lme4: [RESULTS_profile.md](RESULTS_profile.md)"
        " (`benchmarks/profile_insteval.py`).",
        "- The sparse cases as mixedfit fits them without its cholmod extra (cvxopt), rests factored densely:"
        " [RESULTS_without_cholmod.md](RESULTS_without_cholmod.md) (`--without-cholmod --cases egsingle,insteval`).",
        "- The same cases with R linked to OpenBLAS (Debian's `libopenblas0-pthread`) instead of the reference"
        " BLAS: [RESULTS_lme4_openblas.md](RESULTS_lme4_openblas.md).",
        "- Where one evaluation's time goes (the blocked factorization against the glue) and a whole fit's (design,"
        " setup, evaluations, the rest): [RESULTS_evaluation.md](RESULTS_evaluation.md)"
        " (`benchmarks/evaluation_cost.py`).",
        "- The exact gradient's cost per case, and L-BFGS-B on it against BOBYQA:"
        " [RESULTS_gradient.md](RESULTS_gradient.md) (`benchmarks/gradient_sweep.py`, `benchmarks/optimizers.py`).",
        "",
    ]
    return "\n".join(lines)


def merge_reports(reports: list[dict]) -> dict:
    """One report from several runs: the first one's header, every run's cases (later wins).

    For a table assembled from separate invocations (say the big cases on their
    own); the machine and versions of every run are kept under ``merged_from``.
    """
    if len(reports) == 1:
        return reports[0]
    out = json.loads(json.dumps(reports[0]))
    cases: dict[str, dict] = {}
    libs: list[str] = []
    for rep in reports:
        for res in rep["cases"]:
            cases[res["case"]] = res
        libs += [lib for lib in rep["config"].get("libs", []) if lib not in libs]
        out["config"]["repeats"].update(rep["config"]["repeats"])
        for key in ("R_blas_openblas", "R_lapack_openblas"):
            if rep["versions"].get(key):
                out["versions"][key] = rep["versions"][key]
    out["cases"] = list(cases.values())
    out["config"]["libs"] = libs
    out["command"] = " + ".join(rep["command"] for rep in reports)
    out["total_s"] = sum(rep.get("total_s", 0.0) for rep in reports)
    out["merged_from"] = [{k: rep[k] for k in ("date", "command", "machine", "versions")} for rep in reports]
    return out


def write_outputs(report: dict, outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "results.json").write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    (outdir / "RESULTS.md").write_text(render_markdown(report), encoding="utf-8")


# --------------------------------------------------------------------------- main
def parse_repeats(text: str | None, cases: list[Case], quick: bool) -> dict[str, int]:
    reps = {c.key: (1 if quick else c.repeats) for c in cases}
    if not text:
        return reps
    parts = [p.strip() for p in text.split(",") if p.strip()]
    for part in parts:  # a plain N applies to every case ...
        if "=" not in part:
            reps = {k: int(part) for k in reps}
    for part in parts:  # ... and case=N pairs override it
        if "=" in part:
            key, _, val = part.partition("=")
            key = key.strip().lower()
            if key not in CASES_BY_KEY:
                raise SystemExit(f"--repeats: unknown case {key!r}")
            if key in reps:
                reps[key] = int(val)
    if any(v < 1 for v in reps.values()):
        raise SystemExit("--repeats must be at least 1")
    return reps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", help="comma-separated case keys (default: all): "
                    + ", ".join(c.key for c in CASES))
    ap.add_argument("--repeats", help="runs per library per case: N for every case, and/or "
                    "case=N pairs, e.g. '3' or 'sleepstudy=10,insteval=2' "
                    "(default: 5 small, 3 InstEval, 1 simulated)")
    ap.add_argument("--quick", action="store_true", help="1 run each, no memory probes, and the "
                    "big simulated cases left out unless named in --cases")
    ap.add_argument("--skip-lme4-big", action="store_true",
                    help="do not run lme4 on the big simulated cases (they take minutes)")
    ap.add_argument("--libs", help="libraries to run, from " + ", ".join(LIBS) + " (default: all; "
                    "lme4_openblas only with --lme4-openblas; a peer that is not installed is left out)")
    ap.add_argument("--lme4-openblas", metavar="DIR",
                    help="add the column lme4_openblas: lme4 in a second R process that loads "
                    "libblas.so.3 / liblapack.so.3 from DIR (OpenBLAS; see get_openblas.sh)")
    ap.add_argument("--peer-timeout", type=float, default=300.0,
                    help="seconds before a Python peer's fit is stopped (default 300)")
    ap.add_argument("--no-memory", action="store_true", help="skip the fresh-process memory probes")
    ap.add_argument("--sm-timeout", type=float, default=300.0,
                    help="seconds before a statsmodels fit is stopped and reported as '> limit' (default 300)")
    ap.add_argument("--memory-timeout", type=float, default=3600.0, help="limit for one memory probe")
    ap.add_argument("--rscript", default=os.environ.get("RSCRIPT", "Rscript"))
    ap.add_argument("--output-dir", default=str(HERE), help="where RESULTS.md and results.json go")
    ap.add_argument("--blas-threads", type=int, help="set OPENBLAS/OMP/MKL_NUM_THREADS to this for "
                    "every process (R's reference BLAS is single-threaded anyway); default: "
                    "library defaults")
    ap.add_argument("--without-cholmod", action="store_true",
                    help="fit with mixedfit as where its cholmod extra (cvxopt) is not installed")
    ap.add_argument("--render", metavar="RESULTS_JSON", nargs="+",
                    help="only rewrite RESULTS.md from existing results.json files, running nothing; "
                    "with several, their cases are merged (a later file's case replaces an earlier "
                    "one's) and the merged results.json is written too")
    args = ap.parse_args(argv)
    if args.render:
        report = merge_reports([json.loads(Path(f).read_text(encoding="utf-8")) for f in args.render])
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        out = Path(args.output_dir) / "RESULTS.md"
        out.write_text(render_markdown(report), encoding="utf-8")
        if len(args.render) > 1:
            write_outputs(report, Path(args.output_dir))
        log(f"wrote {out}")
        return 0
    if args.without_cholmod:
        os.environ[WITHOUT_CHOLMOD] = "1"  # the memory probes inherit it
    hide_cvxopt_if_asked()
    if args.blas_threads is not None and argv is not None:
        _early_blas_threads(["--blas-threads", str(args.blas_threads)])

    not_run: dict[str, str] = {}
    if args.libs:
        libs = [x.strip() for x in args.libs.split(",") if x.strip()]
        bad = [x for x in libs if x not in LIBS]
        if bad:
            raise SystemExit(f"--libs: unknown {bad}; choose from {LIBS}")
    else:
        libs = [lib for lib in LIBS if lib != "lme4_openblas" or args.lme4_openblas]
        not_run["lme4_openblas"] = "not run (no --lme4-openblas)"
    if "lme4_openblas" in libs and not args.lme4_openblas:
        raise SystemExit("--libs lme4_openblas needs --lme4-openblas DIR")
    if args.lme4_openblas and not (Path(args.lme4_openblas) / "libblas.so.3").exists():
        raise SystemExit(f"--lme4-openblas: no libblas.so.3 in {args.lme4_openblas}")
    for peer in PEERS:
        if peer in libs and importlib.util.find_spec(MODULES[peer]) is None:
            libs.remove(peer)
            not_run[peer] = f"not installed (pip install {DISTRIBUTIONS[peer]})"
            log(f"{peer}: not installed, left out")
    if args.cases:
        keys = [k.strip().lower() for k in args.cases.split(",") if k.strip()]
        unknown = [k for k in keys if k not in CASES_BY_KEY]
        if unknown:
            raise SystemExit(f"--cases: unknown {unknown}; choose from {[c.key for c in CASES]}")
        cases = [CASES_BY_KEY[k] for k in keys]
    else:
        cases = [c for c in CASES if not (args.quick and c.size == "big")]
    if args.quick:
        args.no_memory = True
    repeats = parse_repeats(args.repeats, cases, args.quick)

    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="mixedfit-bench-"))
    report: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "python benchmarks/run.py" + "".join(" " + shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "machine": machine_info(), "versions": python_versions(),
        "config": {"repeats": repeats, "libs": libs, "skip_lme4_big": args.skip_lme4_big,
                   "memory": not args.no_memory, "sm_timeout": args.sm_timeout,
                   "peer_timeout": args.peer_timeout, "lme4_openblas": args.lme4_openblas,
                   "objective_rtol": OBJ_RTOL},
        "cases": [], "total_s": 0.0,
    }
    outdir = Path(args.output_dir)
    ctx: dict[str, Any] = {"tmp": tmp, "libs": libs, "repeats": repeats, "not_run": not_run}
    try:
        # untimed warm-up of every library on sleepstudy, so first-call costs
        # (lazy imports, method dispatch tables) land in no case
        warm_case = CASES_BY_KEY["sleepstudy"]
        warm_manifest = write_manifest(warm_case, source_frame(warm_case), tmp / "_warmup")
        ctx["warm_manifest"] = warm_manifest
        warm = load_manifest(warm_manifest)
        if "lme4" in libs:
            ctx["r"] = start_r(args, tmp, "main")
            v = ctx["r"].call({"cmd": "versions"}, timeout=300)
            report["versions"].update(R=v["R"], lme4=v["lme4"], Matrix=v["Matrix"], R_blas=v["blas"])
            ctx["r"].call({"cmd": "load", "id": "warm", "manifest": str(warm_manifest)}, timeout=300)
            rep = ctx["r"].call({"cmd": "fit", "id": "warm", "formula": WARMUP_FORMULA, "reml": True})
            if not rep.get("ok"):
                raise RuntimeError(f"lme4 warm-up failed: {rep.get('error')}")
            ctx["r"].call({"cmd": "drop", "id": "warm"})
        if "lme4_openblas" in libs:
            ctx["r_ob"] = start_r(args, tmp, "main", openblas=True)
            v = ctx["r_ob"].call({"cmd": "versions"}, timeout=300)
            report["versions"].update(R_blas_openblas=v["blas"], R_lapack_openblas=v["lapack"])
            if "openblas" not in (v["blas"] + v["lapack"]).lower():
                raise RuntimeError(f"--lme4-openblas: R still loads {v['blas']}")
            ctx["r_ob"].call({"cmd": "load", "id": "warm", "manifest": str(warm_manifest)}, timeout=300)
            ctx["r_ob"].call({"cmd": "fit", "id": "warm", "formula": WARMUP_FORMULA, "reml": True})
            ctx["r_ob"].call({"cmd": "drop", "id": "warm"})
        for peer in PEERS:
            if peer not in libs:
                continue
            key = f"peer:{peer}"
            ctx[key] = start_peer(peer, tmp)
            ctx[key].call({"cmd": "versions"}, timeout=300)
            ctx[key].call({"cmd": "load", "id": "warm", "manifest": str(warm_manifest)}, timeout=300)
            rep = ctx[key].call({"cmd": "fit", "id": "warm", "spec": {
                "formula": WARMUP_FORMULA, "lme4_formula": WARMUP_FORMULA, "reml": True}}, timeout=300)
            if not rep.get("ok"):
                log(f"{peer} warm-up failed: {rep.get('error')}")
            ctx[key].call({"cmd": "drop", "id": "warm"}, timeout=300)
        if "statsmodels" in libs:
            ctx["sm"] = start_sm(tmp)
            report["versions"]["statsmodels"] = ctx["sm"].call({"cmd": "versions"}, timeout=300)["statsmodels"]
            ctx["sm"].call({"cmd": "load", "id": "warm", "manifest": str(warm_manifest)}, timeout=300)
            ctx["sm"].call({"cmd": "fit", "id": "warm", "spec": warm_case.statsmodels, "reml": True},
                           timeout=300)
            ctx["sm"].call({"cmd": "drop", "id": "warm"}, timeout=300)
        if "mixedfit" in libs:
            try:
                fit_mixedfit(warm, warm_case)
            except Exception as exc:
                log(f"mixedfit warm-up failed: {type(exc).__name__}: {exc}")
        del warm
        log(f"warm-up done; cases: {', '.join(c.key for c in cases)}")

        for case in cases:
            try:
                res = run_case(case, args, ctx)
            except Exception as exc:
                log(f"   case {case.key} failed: {type(exc).__name__}: {exc}")
                res = {"case": case.key, "title": case.title, "formula": case.formula,
                       "reml": case.reml, "error": f"{type(exc).__name__}: {exc}"}
                if "lme4" in libs and (ctx.get("r") is None or ctx["r"].proc.poll() is not None):
                    ctx["r"] = start_r(args, tmp, f"main-{case.key}")
                if "lme4_openblas" in libs and (ctx.get("r_ob") is None or ctx["r_ob"].proc.poll() is not None):
                    ctx["r_ob"] = start_r(args, tmp, f"main-{case.key}", openblas=True)
            report["cases"].append(res)
            report["total_s"] = time.perf_counter() - t_start
            write_outputs(report, outdir)  # partial results survive an interrupted run
    finally:
        for key in [k for k in ctx if k in ("r", "r_ob", "sm") or k.startswith("peer:")]:
            if ctx.get(key) is not None:
                ctx[key].close()
        shutil.rmtree(tmp, ignore_errors=True)
    report["total_s"] = time.perf_counter() - t_start
    write_outputs(report, outdir)
    log(f"wrote {outdir / 'RESULTS.md'} and {outdir / 'results.json'} "
        f"({report['total_s'] / 60:.1f} min)")
    print(render_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
