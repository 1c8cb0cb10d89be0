"""GLMMs: mixedfit against lme4's glmer on the same data, same machine, side by side.

    python benchmarks/glmm_bench.py [--repeats 3] [--cases cbpp,verbagg] [--output benchmarks/RESULTS_glmm.md]

Each case is fitted ``--repeats`` times by each library (the fastest time is
kept), on the bundled data sets that R reads back bit for bit
(``tests/lme4/common.R``'s ``read_dataset``); the table gives the times, the
deviance (−2 logLik) each reached and the objective evaluations of the
optimizer (glmer's ``optinfo$feval``, its second stage; mixedfit's both
stages).  ``contraception40`` is Contraception stacked 40 times with the
districts of each copy made distinct (77,360 rows, 2,400 districts).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mixedfit as mf  # noqa: E402

CASES = {
    "cbpp": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "binomial"),
    "grouseticks": ("TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | LOCATION)", "grouseticks", "poisson"),
    "verbagg": ("r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", "VerbAgg", "binomial"),
    "contraception": ("use ~ age + I(age^2) + urban + livch + (urban | district)", "Contraception", "binomial"),
    "contraception40": ("use ~ age + I(age^2) + urban + livch + (urban | district)", "Contraception", "binomial"),
}
COPIES = 40

R_SCRIPT = r"""
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
source(file.path("tests", "lme4", "common.R"))
args <- commandArgs(trailingOnly = TRUE)
spec <- fromJSON(args[1])
out <- list()
for (case in names(spec$cases)) {
  s <- spec$cases[[case]]
  d <- read_dataset(s$dataset)
  if (case == "contraception40") {
    d <- do.call(rbind, lapply(seq_len(s$copies), function(k) {
      x <- d; x$district <- paste0(as.character(x$district), "_", k); x }))
    d$district <- factor(d$district)
  }
  fam <- get(s$family)
  times <- numeric(0)
  for (r in seq_len(spec$repeats)) {
    t0 <- proc.time()[["elapsed"]]
    m <- suppressWarnings(suppressMessages(glmer(as.formula(s$formula), data = d, family = fam)))
    times <- c(times, proc.time()[["elapsed"]] - t0)
  }
  out[[case]] <- list(seconds = min(times), deviance = -2 * as.numeric(logLik(m)),
                      feval = m@optinfo$feval)
}
write_json(out, args[2], digits = NA, auto_unbox = TRUE)
"""


def data_for(case: str) -> pd.DataFrame:
    data = mf.load_dataset(CASES[case][1])
    if case != "contraception40":
        return data
    copies = []
    for k in range(1, COPIES + 1):
        part = data.copy()
        part["district"] = part["district"].astype(str) + f"_{k}"
        copies.append(part)
    return pd.concat(copies, ignore_index=True)


def run_mixedfit(cases: list[str], repeats: int) -> dict:
    out = {}
    for case in cases:
        formula, _, family = CASES[case]
        data = data_for(case)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = mf.mixed(formula, data, family=family)
            times.append(time.perf_counter() - start)
        out[case] = {"seconds": min(times), "deviance": -2.0 * fit.llf,
                     "feval": fit.optsummary.feval + fit.fitted.stage1.feval}
    return out


def run_glmer(cases: list[str], repeats: int, rscript: str) -> dict:
    spec = {"repeats": repeats, "cases": {c: {"formula": CASES[c][0], "dataset": CASES[c][1],
                                              "family": CASES[c][2], "copies": COPIES} for c in cases}}
    with tempfile.TemporaryDirectory() as tmp:
        script, spec_file, result = Path(tmp, "bench.R"), Path(tmp, "spec.json"), Path(tmp, "out.json")
        script.write_text(R_SCRIPT)
        spec_file.write_text(json.dumps(spec))
        subprocess.run([rscript, str(script), str(spec_file), str(result)], check=True, cwd=ROOT)
        return json.loads(result.read_text())


def table(ours: dict, theirs: dict) -> str:
    lines = ["| case | rows | glmer s | mixedfit s | speed-up | deviance glmer | deviance mixedfit | "
             "mixedfit − glmer | evals glmer (stage 2) | evals mixedfit (both stages) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case, m in ours.items():
        r = theirs[case]
        rows = len(data_for(case))
        lines.append(f"| {case} | {rows} | {r['seconds']:.2f} | {m['seconds']:.2f} | "
                     f"{r['seconds'] / m['seconds']:.1f}× | {r['deviance']:.6f} | {m['deviance']:.6f} | "
                     f"{m['deviance'] - r['deviance']:.2e} | {r['feval']} | {m['feval']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--rscript", default="Rscript")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "RESULTS_glmm.md"))
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; the cases are {list(CASES)}")
    theirs = run_glmer(cases, args.repeats, args.rscript)
    ours = run_mixedfit(cases, args.repeats)
    text = (f"# GLMMs: mixedfit vs lme4's glmer\n\n{table(ours, theirs)}\n\n"
            f"Fastest of {args.repeats} runs each; machine: {platform.machine()}, {platform.processor() or ''} "
            f"Python {platform.python_version()}; `python benchmarks/glmm_bench.py`.\n")
    Path(args.output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
