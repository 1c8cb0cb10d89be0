"""Time the likelihood profile of InstEval's variance parameters, mixedfit and lme4.

Run from the repository root::

    python benchmarks/profile_insteval.py [--skip-lme4]

Both sides compute ``confint(fit, parm = "theta_", method = "profile")`` for
``y ~ service + (1|s) + (1|d) + (1|dept)`` (REML fit; lme4 and mixedfit profile
the ML deviance), one after the other in this process's machine, and the
result is written to ``benchmarks/RESULTS_profile.md``.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import mixedfit as mf
from run import machine_info  # this folder's harness: the same CPU line as RESULTS.md

HERE = Path(__file__).parent
FORMULA = "y ~ service + (1|s) + (1|d) + (1|dept)"
R_SCRIPT = f"""
suppressMessages(library(lme4))
fm <- lmer({FORMULA}, InstEval)
t <- system.time(ci <- confint(fm, parm = "theta_", method = "profile", oldNames = FALSE))
write.csv(ci, stdout())
cat("BLAS", extSoftVersion()[["BLAS"]], "\\n")
cat("SECONDS", t[["elapsed"]], "\\n")
"""


def time_mixedfit() -> tuple[float, str]:
    """Seconds for mixedfit's profile intervals (fit excluded), and the intervals as text."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mf.mixed(FORMULA, mf.load_dataset("InstEval"))
        start = time.perf_counter()
        ci = fit.confint(method="profile", parm="theta_", progress=False)
    return time.perf_counter() - start, ci.to_string()


def time_lme4() -> tuple[float, str, str]:
    """Seconds for lme4's profile intervals (fit excluded), its output, and R's BLAS library."""
    out = subprocess.run(["Rscript", "-e", R_SCRIPT], capture_output=True, text=True, check=True).stdout
    rest, seconds = out.rsplit("SECONDS", 1)
    ci, blas = rest.rsplit("BLAS", 1)
    return float(seconds.split()[0]), ci.strip(), blas.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-lme4", action="store_true", help="time mixedfit only")
    args = parser.parse_args(argv)
    ours, our_ci = time_mixedfit()
    lines = [
        "# Profile of InstEval's variance parameters",
        "",
        f"Generated {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')} by "
        f"`python benchmarks/profile_insteval.py` on {machine_info()['cpu_model']}, "
        f"Python {platform.python_version()}, mixedfit {mf.__version__}.",
        "",
        f"`confint(fit, parm = \"theta_\", method = \"profile\")` for `{FORMULA}` (REML fit).",
        "",
        "| library | seconds |",
        "|---|---:|",
        f"| mixedfit | {ours:.1f} |",
    ]
    if not args.skip_lme4:
        theirs, their_ci, blas = time_lme4()
        lines += [f"| lme4 | {theirs:.1f} |", "", f"Speed-up: {theirs / ours:.2f}×; R's BLAS: {blas}", ""]
        lines += ["lme4's intervals:", "", "```", their_ci, "```"]
    lines += ["", "mixedfit's intervals:", "", "```", our_ci, "```", ""]
    (HERE / "RESULTS_profile.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
