"""Where one evaluation of the objective goes, and where a whole fit's time goes, per benchmark case.

Run from the repository root (the cases exported from R, such as Oxboys, need ``Rscript``)::

    PYTHONPATH=$PWD python benchmarks/evaluation_cost.py [--cases sleepstudy,oxboys] [--output FILE]

*Per evaluation*, at θ near the fit's optimum, each evaluation at a θ of its own
so that no kept elimination is reused: the median time of
``MixedModel.objective``, and the parts of it that are the blocked Cholesky
factorization — eliminating the first term level by level
(``FirstTerm.eliminate``, or ``eliminate_at`` in a model of one term), the Schur update of the rest by that elimination
(``A_rr − A_r0 M A_r0ᵀ``: on crossed designs with dense rest rows, the bulk of
the factorization's flops) and factoring the rest (LAPACK's ``dpotrf``, or
CHOLMOD's numeric factorization).  What is left is glue: templates, Λ scaling,
copies, log-determinants and the Python calls between them.  A small model that
L-BFGS-B minimizes is evaluated on its whole system (``mixedfit.blocks.whole``):
there the factorization is ``WholeSystem.factor``, its Λ scaling and ``dpotrf``
(shown as *factor*; rest ``WholeSystem``).  Issue 21 asks for
every evaluation within 2× of its factorization.

*Per fit*: the median time of ``mixed()`` from the data frame, split into
building the design, setting up the model (cross products, the Schur update's
maps), the objective evaluations (optimizer and derivative check together,
timed in a fit) and the rest (NLopt, the convergence check, the results, and
where L-BFGS-B runs first its and the derivative check's objective-and-gradient
calls, which are not objective calls).  Times are medians of one run on a shared machine: compare within a run.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import time
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import mixedfit as mf
from mixedfit.blocks.rest import CholmodRest
from mixedfit.model import MixedModel
from mixedfit.terms import build_design

from common import CASES_BY_KEY, Case, at_each, median_seconds, nearby, source_frame
from run import machine_info, python_versions

DEFAULT_CASES = ("sleepstudy", "hsb82", "oxboys", "machines_factor_slope", "chem97", "egsingle",
                 "sim_factor_slopes", "sim_nested_slopes", "sim_crossed_slopes", "sim_nested3",
                 "sim_maximal", "insteval", "insteval_mmjl")
FIT_REPEATS = {"small": 20, "medium": 5, "big": 1}
EVALUATIONS = {"small": 100, "medium": 20, "big": 6}  # per round
ROUNDS = 5
PARTS = ("elimination", "update", "factor")


def quiet(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call(*args, **kwargs)


@contextmanager
def timed_parts(model: MixedModel):
    """Within the context, the seconds spent in each of ``PARTS``, accumulated in the dict it gives."""
    totals = dict.fromkeys(PARTS, 0.0)
    rest = model.cross.rest
    # A CholmodRest whose factor fills in goes to LAPACK after its first factorization (CholmodRest.dense).
    factorizer = (rest.cholmod, "diagonal") if isinstance(rest, CholmodRest) and not rest.dense \
        else (rest.factorization, "factor")
    # A model of one term eliminates at its θ (FirstTerm.eliminate_at, CrossProducts.logdets_at), others at templates.
    eliminate = "eliminate" if model.cross.rest_columns.random else "eliminate_at"
    targets = {"elimination": (model.cross.first, eliminate), "update": (rest.update, "subtract"),
               "factor": factorizer}
    if model._whole is not None:  # the whole system, scaled and factored in one: no elimination, no update
        targets = {"factor": (model._whole, "factor")}

    def timing(part, method):
        @functools.wraps(method)
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                totals[part] += time.perf_counter() - start
        return call

    for part, (owner, name) in targets.items():
        setattr(owner, name, timing(part, getattr(owner, name)))
    try:
        yield totals
    finally:
        for owner, name in targets.values():
            delattr(owner, name)  # the instance attribute: the class's method shows through again


def evaluation_cost(model: MixedModel, theta: np.ndarray, count: int, rounds: int = ROUNDS) -> dict:
    """Median seconds of one evaluation at distinct θ near ``theta``, and of its parts.

    Rounds alternate evaluations timed whole with evaluations timed by parts,
    each at θ of its own; each number is the median over the rounds (of a
    median, for the whole), so that a burst of load on a shared machine moves
    the two alike.
    """
    whole, parts = [], {p: [] for p in PARTS}
    with model.blas_threads():
        model.objective(theta)  # first-use allocations
        for r in range(rounds):
            points = nearby(theta * (1.0 + 1e-5 * (2 * r)), count)
            whole.append(median_seconds(functools.partial(at_each, model.objective, points), count))
            with timed_parts(model) as totals:
                for t in nearby(theta * (1.0 + 1e-5 * (2 * r + 1)), count):
                    model.objective(t)
            for p in PARTS:
                parts[p].append(totals[p] / count)
    return {"evaluation": float(np.median(whole))} | {p: float(np.median(parts[p])) for p in PARTS}


def objective_calls(formula: str, data, reml: bool) -> tuple[int, float, float]:
    """Objective evaluations in one ``mixed()`` fit (the optimizer's, its restarts' and the derivative
    check's), the seconds they took there, and the seconds of that fit.

    Timed in the fit itself, not as their count times the evaluation above: BOBYQA's
    first steps and the derivative check move one θ at a time, and where the first
    term's θ stays, its kept elimination is reused (``CrossProducts._eliminated``).
    """
    count, seconds = 0, 0.0
    original = MixedModel.objective

    def counted(self, theta):
        nonlocal count, seconds
        count += 1
        start = time.perf_counter()
        try:
            return original(self, theta)
        finally:
            seconds += time.perf_counter() - start

    MixedModel.objective = counted
    start = time.perf_counter()
    try:
        quiet(mf.mixed, formula, data, reml=reml)
    finally:
        MixedModel.objective = original
    return count, seconds, time.perf_counter() - start


def measure(case: Case) -> dict:
    data = source_frame(case)
    fit = quiet(mf.mixed, case.formula, data, reml=case.reml)  # warm: parsed formula, first-use costs
    repeats = FIT_REPEATS[case.size]
    design = quiet(build_design, case.formula, data)
    calls, in_fit, timed_fit = objective_calls(case.formula, data, case.reml)
    out = {
        "calls": calls,
        "in_fit": in_fit,
        "timed_fit": timed_fit,
        "fit": median_seconds(lambda: quiet(mf.mixed, case.formula, data, reml=case.reml), repeats),
        "design": median_seconds(lambda: quiet(build_design, case.formula, data), repeats),
        "setup": median_seconds(lambda: MixedModel(design, reml=case.reml), repeats),
        "ntheta": fit.model.ntheta,
        "rest": "WholeSystem" if fit.model._whole is not None else rest_kind(fit.model.cross.rest),
    }
    model = MixedModel(design, reml=case.reml)
    model.objective(fit.optsummary.final)  # a CholmodRest decides at its first factorization who factors it
    return out | evaluation_cost(model, np.asarray(fit.optsummary.final, float), EVALUATIONS[case.size])


def rest_kind(rest) -> str:
    """The rest's class, and for a CholmodRest whose factor fills in, that LAPACK factors it."""
    return type(rest).__name__ + (" (LAPACK: dense fill)" if getattr(rest, "dense", False) else "")


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g}"


def title(key: str) -> str:
    return CASES_BY_KEY[key].title.replace("|", "\\|")  # a bar would end the table cell


def tables(results: dict[str, dict]) -> str:
    lines = ["## One evaluation", "",
             "Milliseconds per evaluation; *ratio* = evaluation / (elimination + update + factor), the "
             "blocked factorization (issue 21's target: at most 2).", "",
             "| case | nθ | rest | evaluation | elimination | update | factor | glue | ratio |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for key, r in results.items():
        factorization = sum(r[p] for p in PARTS)
        glue = max(r["evaluation"] - factorization, 0.0)
        lines.append(f"| {title(key)} | {r['ntheta']} | {r['rest']} | {ms(r['evaluation'])} | "
                     f"{ms(r['elimination'])} | {ms(r['update'])} | {ms(r['factor'])} | {ms(glue)} | "
                     f"{r['evaluation'] / factorization:.1f} |")
    lines += ["", "## One fit", "",
              "Milliseconds of a `mixed()` fit from the data frame (median); *evaluations*: the time its "
              "objective calls took, timed in one more fit (where the first term's θ stays, they reuse its "
              "kept elimination, so they can cost less than the evaluation above); *other*: that fit's time "
              "less its evaluations and the median design and setup (NLopt, the convergence check, the "
              "results; where L-BFGS-B runs first, `MixedModel._gradient_first`, also its and the derivative "
              "check's objective-and-gradient calls, which *calls* does not count).", "",
              "| case | fit | design | setup | calls | evaluations | other |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for key, r in results.items():
        other = r["timed_fit"] - r["design"] - r["setup"] - r["in_fit"]
        lines.append(f"| {title(key)} | {ms(r['fit'])} | {ms(r['design'])} | {ms(r['setup'])} | "
                     f"{r['calls']} | {ms(r['in_fit'])} | {ms(other)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES))
    parser.add_argument("--output", type=Path, help="write the tables, with the command and machine, here")
    args = parser.parse_args()
    results = {}
    for key in args.cases.split(","):
        case = CASES_BY_KEY[key]
        if case.from_r and shutil.which("Rscript") is None:
            print(f"{key}: skipped (its data come from R; no Rscript on PATH)", file=sys.stderr)
            continue
        results[key] = measure(case)
        print(f"{key}: {results[key]}", file=sys.stderr)
    text = tables(results)
    print(text)
    if args.output:
        machine, versions = machine_info(), python_versions()
        header = (f"# Where the time of an evaluation and of a fit goes\n\n"
                  f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} by "
                  f"`python benchmarks/evaluation_cost.py --cases {args.cases}` on {machine['cpu_model']} "
                  f"({machine['logical_cpus']} logical CPUs); Python {versions['python']}, numpy {versions['numpy']} "
                  f"({versions['numpy_blas']}, {versions['blas_kernels']} kernels), scipy {versions['scipy']}, "
                  f"cvxopt {versions['cvxopt']}.  How to read it: the docstring of "
                  f"`benchmarks/evaluation_cost.py`.\n\n")
        args.output.write_text(header + text, encoding="utf-8")


if __name__ == "__main__":
    main()
