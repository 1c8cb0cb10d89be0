"""The first fit of a fresh process, as a script or a notebook's first cell meets it: import, read, fit.

Run from the repository root (R with lme4 on PATH as Rscript; the peers and
statsmodels from ``requirements.txt``; a library that is not installed is left out)::

    PYTHONPATH=$PWD python benchmarks/first_fit.py [--runs 9]

``run.py`` times warm fits, every library's imports and first-call costs paid
by an untimed warm-up.  A user's script pays them on every run.  Here each run
is a new process that reads sleepstudy from one CSV file and fits
``Reaction ~ Days + (Days|Subject)`` by REML: *in process* is the time from its
first line (before any import, pandas' or R's packages' included) to the fitted
model, *process* the wall time of the whole process from outside (the
interpreter's start and exit too).  The libraries take turns run by run; the
medians go to ``RESULTS_first_fit.md``, each with the library's REML criterion.

Each mixedfit tree timed is byte-compiled first, as ``pip install`` compiles
an installed package and the peers' were: run from a checkout with
``PYTHONDONTWRITEBYTECODE`` set, every child compiled mixedfit's modules from
source again: 700 ms a first fit against 589 compiled, taking turns in one run
(2026-12-07).
"""

from __future__ import annotations

import argparse
import compileall
import datetime
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FORMULA = "Reaction ~ Days + (Days|Subject)"

# Each child prints one JSON line: seconds from its first line to the fit, and the REML criterion.
_PYTHON_START = ("import time\nt0 = time.perf_counter()\nimport json\nimport pandas as pd\n"
                 "data = pd.read_csv({csv!r}, dtype={{'Subject': str}})\n")
_PYTHON_END = "print(json.dumps({'seconds': time.perf_counter() - t0, 'criterion': float(criterion)}))\n"
_PEER = (f"import sys\nsys.path.insert(0, {str(HERE)!r})\nimport peers\n"
         f"criterion = peers.RUNNERS[{{lib!r}}](data, {{{{'formula': {FORMULA!r}, 'reml': True}}}})['objective']\n")
PYTHON_FITS = {  # library: (module, the fit's lines)
    "mixedfit": ("mixedfit", f"import mixedfit as mf\ncriterion = mf.mixed({FORMULA!r}, data).optsummary.fmin\n"),
    "statsmodels": ("statsmodels", "import statsmodels.formula.api as smf\n"
                                   "fit = smf.mixedlm('Reaction ~ Days', data, groups='Subject',"
                                   " re_formula='~Days').fit(reml=True)\ncriterion = -2.0 * fit.llf\n"),
    # the peers through peers.py's runners, which import the peer when called
    **{lib: (lib, _PEER.format(lib=lib))
       for lib in ("lme_python", "mixedlm", "interlace")},
}
R_FIT = ("t0 <- proc.time()[['elapsed']]; suppressMessages(library(lme4)); "
         "data <- read.csv('{csv}'); data$Subject <- factor(data$Subject); "
         "fit <- lmer({formula}, data); "
         "cat(sprintf('{{\"seconds\": %.4f, \"criterion\": %.8f}}\\n', "
         "proc.time()[['elapsed']] - t0, REMLcrit(fit)))")


def commands(csv: Path, rscript: str | None, baseline: str | None) -> dict[str, tuple[list[str], dict | None]]:
    """Each library's child process and its environment (None: this one's), for those installed.

    ``baseline``: another checkout of mixedfit, run as one more library (before and after a change, in one run).
    """
    out: dict[str, tuple[list[str], dict | None]] = {}
    for lib, (module, body) in PYTHON_FITS.items():
        if importlib.util.find_spec(module) is not None:
            code = _PYTHON_START.format(csv=str(csv)) + body + _PYTHON_END
            out[lib] = ([sys.executable, "-c", code], None)
    if baseline:
        commit = subprocess.run(["git", "-C", baseline, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        out[f"mixedfit at {commit or baseline}"] = (out["mixedfit"][0], {**os.environ, "PYTHONPATH": baseline})
    if rscript:
        out["lme4"] = ([rscript, "-e", R_FIT.format(csv=csv, formula=FORMULA)], None)
    return out


def compile_trees(baseline: str | None) -> None:
    """Byte-compile the mixedfit trees the children import (this one's and ``baseline``'s), as pip does on install."""
    spec = importlib.util.find_spec("mixedfit")
    trees = [] if spec is None else list(spec.submodule_search_locations or [])
    if baseline:
        trees.append(str(Path(baseline) / "mixedfit"))
    for tree in trees:
        if not compileall.compile_dir(tree, quiet=1):
            raise RuntimeError(f"could not byte-compile {tree}")


def one_run(command: list[str], env: dict | None, directory: str) -> dict:
    """One child, started in ``directory``: ``python -c`` looks for modules there first, before PYTHONPATH."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=directory)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {done.stderr[-1000:]}")
    reply = json.loads(done.stdout.strip().splitlines()[-1])
    return {**reply, "process": wall}


def write_csv(directory: Path) -> Path:
    import mixedfit as mf

    path = directory / "sleepstudy.csv"
    mf.load_dataset("sleepstudy").to_csv(path, index=False)
    return path


def versions_line(rscript: str | None) -> str:
    """The CPU and every library's version, as RESULTS.md gives them."""
    from run import machine_info, python_versions

    machine, py = machine_info(), python_versions()
    blas = f"numpy's BLAS {py.pop('numpy_blas')} ({py.pop('blas_kernels')} kernels)"
    libs = ", ".join(f"{k} {v}" for k, v in py.items() if v is not None and k not in ("python", "cvxopt"))
    line = f"{machine['cpu_model']}, {machine['logical_cpus']} logical CPUs; Python {py['python']}: {libs}; {blas}"
    if rscript:
        r = subprocess.run([rscript, "-e", "cat(R.version.string, '; lme4', as.character(packageVersion('lme4')))"],
                           capture_output=True, text=True, timeout=120)
        line += f"; {r.stdout.strip()}"
    return line


def table(results: dict[str, list[dict]]) -> str:
    lines = ["| library | in process (median) | process (median) | REML criterion |", "|---|---:|---:|---:|"]
    medians = {lib: [statistics.median(r[key] for r in rows) for key in ("seconds", "process")]
               for lib, rows in results.items()}
    for lib in sorted(medians, key=lambda lib: medians[lib][0]):
        inside, whole = medians[lib]
        lines.append(f"| {lib} | {inside * 1e3:.0f} ms | {whole * 1e3:.0f} ms | {results[lib][-1]['criterion']:.6f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9, help="fresh processes per library (default 9)")
    ap.add_argument("--rscript", default=shutil.which("Rscript"), help="Rscript with lme4 (default: on PATH)")
    ap.add_argument("--baseline", help="another checkout of mixedfit to time as one more library")
    ap.add_argument("--output", default=str(HERE / "RESULTS_first_fit.md"))
    args = ap.parse_args()
    compile_trees(args.baseline)
    with tempfile.TemporaryDirectory() as tmp:
        cmds = commands(write_csv(Path(tmp)), args.rscript, args.baseline)
        results: dict[str, list[dict]] = {lib: [] for lib in cmds}
        for _ in range(args.runs):
            for lib, (command, env) in cmds.items():
                results[lib].append(one_run(command, env, tmp))
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    command = " ".join(["python benchmarks/first_fit.py", *sys.argv[1:]])
    text = (f"# The first fit of a fresh process\n\nGenerated {stamp} by `{command}`. "
            "How to read it: the docstring of `benchmarks/first_fit.py`.\n\n"
            f"{versions_line(args.rscript)}\n\n"
            f"sleepstudy, `{FORMULA}` by REML, read from one CSV file; {args.runs} fresh processes per "
            f"library, taking turns.\n\n{table(results)}\n")
    Path(args.output).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
