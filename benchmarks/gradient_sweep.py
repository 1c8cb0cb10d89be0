"""Cost of the exact gradient: one objective+gradient against one objective, per lme4 fixture model.

Run from the repository root::

    PYTHONPATH=$PWD python benchmarks/gradient_sweep.py [--repeat 20]

For each model, near lme4's θ: the median time of ``MixedModel.objective`` and
of ``MixedModel.objective_and_gradient``, each call at a θ of its own
(``common.nearby``), their ratio, and the evaluations a central-difference
gradient would take instead (2 per θ), so that the ratio reads against
``2 × ntheta``.  Times are noisy on a shared machine: compare
only the ratios of one run.
"""

from __future__ import annotations

import argparse
import functools
import json
import warnings
from pathlib import Path

import numpy as np

import mixedfit as mf
from mixedfit.model import MixedModel
from mixedfit.terms import build_design

from common import at_each, median_seconds, nearby

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "lme4" / "fixtures"


def cases() -> list[dict]:
    """The fixture cases with a summary, then the hard and the performance cases."""
    out = [json.loads(p.read_text()) | {"id": p.stem} for p in sorted(FIXTURES.glob("*.json"))]
    out = [c for c in out if "summary_text" in c]
    for name in ("hard_cases", "perf_cases"):
        out += json.loads((FIXTURES / f"{name}.json").read_text())["fits"]
    return out


def model_of(case: dict) -> MixedModel:
    data = mf.load_dataset(case["dataset"])
    for col, values in (case.get("extra_columns") or {}).items():
        data[col] = values
    if case.get("drop_rows"):
        data = data.drop(index=data.index[case["drop_rows"]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        design = build_design(case["formula"], data, weights=case.get("weights"), offset=case.get("offset"))
    return MixedModel(design, reml=case["reml"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"{'case':32s} {'nθ':>3s} {'rest':>12s} {'objective':>11s} {'obj+grad':>11s} {'ratio':>6s} {'FD evals':>8s}")
    for case in cases():
        model = model_of(case)
        theta = np.asarray(case["theta"], float)
        with model.blas_threads():
            model.objective_and_gradient(theta)  # warm: first-use allocations
            objective = median_seconds(functools.partial(at_each, model.objective, nearby(theta, args.repeat)),
                                       args.repeat)
            both = median_seconds(functools.partial(at_each, model.objective_and_gradient,
                                                    nearby(1.0001 * theta, args.repeat)), args.repeat)
        print(f"{case['id']:32s} {model.ntheta:3d} {type(model.cross.rest).__name__:>12s} "
              f"{objective * 1e3:9.3f}ms {both * 1e3:9.3f}ms {both / objective:6.1f} {2 * model.ntheta:8d}")


if __name__ == "__main__":
    main()
