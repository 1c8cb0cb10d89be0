"""Child processes of benchmarks/run.py (not meant to be run by hand).

``python benchmarks/worker.py statsmodels``
    A persistent statsmodels worker: one JSON command per line on stdin, one
    ``@@ {json}`` answer per line on stdout (the same protocol as
    ``lme4_server.R``).  statsmodels runs in its own process so that a fit
    which runs past the time limit can be stopped, and so its memory use does
    not disturb the process that times mixedfit.

``python benchmarks/worker.py peer NAME``
    The same kind of persistent worker for one Python peer of mixedfit
    (``peers.py``: lme_python, mixedlm, interlace), one process per peer so that
    a fit past the time limit can be stopped without losing the others.

``python benchmarks/worker.py memprobe --manifest M --formula F --reml 0|1 --warmup W``
    A fresh process that measures the memory of ONE mixedfit fit: it imports
    mixedfit, fits the warm-up model (so lazy imports are not counted), loads
    the case data, resets the peak-RSS counter and fits once.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import resource
import sys
import time
import traceback
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import hide_cvxopt_if_asked, load_manifest, read_status_kb, reset_peak_rss  # noqa: E402


def _reply(obj) -> None:
    sys.stdout.write("@@ " + json.dumps(obj, default=_jsonable) + "\n")
    sys.stdout.flush()


def _jsonable(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


def _finite(x):
    x = float(x)
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------- statsmodels
def statsmodels_fit(frame, spec: dict, reml: bool) -> dict:
    """Fit statsmodels MixedLM end to end from the data frame; time it."""
    import statsmodels.formula.api as smf

    data = frame.copy(deep=True)  # untimed: no caching by object identity across runs
    gc.collect()
    calls = [0]
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as wlist:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        model = smf.mixedlm(spec["formula"], data, groups=spec["groups"],
                            re_formula=spec.get("re_formula"), vc_formula=spec.get("vc_formula"))
        loglike = model.loglike

        def counted(*args, **kwargs):
            calls[0] += 1
            return loglike(*args, **kwargs)

        model.loglike = counted
        res = model.fit(reml=reml)
        elapsed = time.perf_counter() - t0
        caught = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in wlist})
    return {
        "ok": True, "elapsed": elapsed,
        "objective": _finite(-2.0 * res.llf),
        "feval": calls[0],
        "converged": bool(getattr(res, "converged", True)),
        "method": str(getattr(res, "method", "")),
        "warnings": caught,
    }


def serve_statsmodels() -> None:
    import statsmodels

    serve(lambda frame, msg: statsmodels_fit(frame, msg["spec"], bool(msg["reml"])),
          {"statsmodels": statsmodels.__version__})


def serve_peer(name: str) -> None:
    from importlib import import_module, metadata

    from peers import DISTRIBUTIONS, MODULES, fit_peer

    import_module(MODULES[name])  # import before the first timed fit
    serve(lambda frame, msg: fit_peer(name, frame, msg["spec"]),
          {name: metadata.version(DISTRIBUTIONS[name])})


def serve(fit, versions: dict) -> None:
    """Answer load / drop / fit / versions / quit commands, one JSON line each."""
    frames: dict[str, object] = {}
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
            cmd = msg.get("cmd")
            if cmd == "quit":
                _reply({"ok": True})
                return
            if cmd == "versions":
                _reply({"ok": True, **versions})
            elif cmd == "load":
                t0 = time.perf_counter()
                frames[msg["id"]] = load_manifest(msg["manifest"])
                _reply({"ok": True, "load_s": time.perf_counter() - t0})
            elif cmd == "drop":
                frames.pop(msg["id"], None)
                gc.collect()
                _reply({"ok": True})
            elif cmd == "fit":
                _reply(fit(frames[msg["id"]], msg))
            else:
                _reply({"ok": False, "error": f"unknown command {cmd!r}"})
        except Exception as exc:  # report, keep serving
            _reply({"ok": False, "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(limit=5)})


# --------------------------------------------------------------------------- memory probe
def memprobe(args) -> None:
    import mixedfit as mf

    out: dict = {"ok": True}
    try:
        warm = load_manifest(args.warmup)
        mf.mixed("Reaction ~ Days + (Days|Subject)", warm, reml=True)
        del warm
        frame = load_manifest(args.manifest)
        data = frame.copy(deep=True)
        gc.collect()
        out["rss_before_mb"] = (read_status_kb("VmRSS") or float("nan")) / 1024
        out["peak_reset"] = reset_peak_rss()
        t0 = time.perf_counter()
        fit = mf.mixed(args.formula, data, reml=bool(int(args.reml)))
        out["elapsed"] = time.perf_counter() - t0
        out["fmin"] = float(fit.optsummary.fmin)
        hwm = read_status_kb("VmHWM")
        out["peak_rss_mb"] = hwm / 1024 if hwm is not None else None
    except Exception as exc:
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
               "traceback": traceback.format_exc(limit=5)}
    # whole-process maximum (includes imports and data loading); kB on Linux
    out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _reply(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("statsmodels")
    sub.add_parser("peer").add_argument("name")
    p = sub.add_parser("memprobe")
    p.add_argument("--manifest", required=True)
    p.add_argument("--warmup", required=True)
    p.add_argument("--formula", required=True)
    p.add_argument("--reml", required=True)
    args = parser.parse_args()
    hide_cvxopt_if_asked()
    if args.mode == "statsmodels":
        serve_statsmodels()
    elif args.mode == "peer":
        serve_peer(args.name)
    else:
        memprobe(args)


if __name__ == "__main__":
    main()
