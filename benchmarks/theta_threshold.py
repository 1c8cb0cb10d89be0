"""How many θ L-BFGS-B first needs to beat BOBYQA first, on simulated models with a dense rest.

Run from the repository root::

    PYTHONPATH=$PWD python benchmarks/theta_threshold.py

``MixedModel._gradient_first`` sends a model to L-BFGS-B on the exact gradient
(and lme4's check to that gradient) from ``_GRADIENT_FIRST_THETA`` θ on, where
each evaluation factors the whole rest densely.  This sweep fits crossed models
(``(x||subj) + (1|item)``, ``(x|subj) + (1|item)``, ``(x|subj) + (z||item)``: 3, 4
and 5 θ) and models of one grouping factor (``(x|g) + (0 + z|g)`` and with
``(0 + w|g)``: 4 and 5 θ) at several sizes, three seeds each, both ways: the
whole ``MixedModel.optimize`` (restarts, check and polish included), the best
of three, and the objective each reaches.  Times are one run on a shared machine:
read the ratios within a row.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from mixedfit.model import MixedModel
from mixedfit.terms import build_design

CROSSED = {3: "y ~ x + (x||subj) + (1|item)", 4: "y ~ x + (x|subj) + (1|item)",
           5: "y ~ x + z + (x|subj) + (z||item)"}
ONE_FACTOR = {4: "y ~ x + z + (x|subj) + (0 + z|subj)", 5: "y ~ x + z + w + (x|subj) + (0 + z|subj) + (0 + w|subj)"}
CROSSED_SIZES = ((20, 10), (40, 30), (100, 40), (300, 60))  # subjects × items, one row each
ONE_FACTOR_SIZES = ((18, 10), (60, 8), (500, 6))  # groups × rows per group
SEEDS = 3


def simulated(seed: int, subjects: int, items: int) -> pd.DataFrame:
    """Every subject crossed with every item, random intercepts and slopes of both, sizes drawn per seed."""
    rng = np.random.default_rng(seed)
    subj, item = np.repeat(np.arange(subjects), items), np.tile(np.arange(items), subjects)
    x, z, w = rng.normal(size=(3, subj.size))
    sd = rng.uniform(0, 1.2, 5)
    y = (1 + x + rng.normal(size=subjects)[subj] * sd[0] + rng.normal(size=subjects)[subj] * x * sd[1]
         + rng.normal(size=items)[item] * sd[2] + rng.normal(size=items)[item] * z * sd[3]
         + rng.normal(size=subjects)[subj] * w * sd[4] + rng.normal(size=subj.size))
    return pd.DataFrame({"y": y, "x": x, "z": z, "w": w, "subj": subj.astype(str), "item": item.astype(str)})


class _BOBYQAFirst(MixedModel):
    _gradient_first = False


class _LBFGSFirst(MixedModel):
    @property
    def _gradient_first(self) -> bool:
        return self.cross.factors_whole_rest


def best_optimize(design, gradient_first: bool, repeats: int = 3) -> tuple[float, float]:
    """(seconds, objective) of the best of ``repeats`` whole optimizations, L-BFGS-B first or BOBYQA first."""
    times = []
    for _ in range(repeats):
        model = (_LBFGSFirst if gradient_first else _BOBYQAFirst)(design)
        start = time.perf_counter()
        with model.blas_threads():
            opt = model.optimize()
        times.append(time.perf_counter() - start)
    return min(times), opt.fmin


def main() -> None:
    warnings.simplefilter("ignore")
    print("| model | θ | size | seed | BOBYQA first ms | L-BFGS-B first ms | ratio | objective, L-BFGS-B − BOBYQA |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    runs = [("crossed", nt, f, size) for nt, f in CROSSED.items() for size in CROSSED_SIZES]
    runs += [("one factor", nt, f, size) for nt, f in ONE_FACTOR.items() for size in ONE_FACTOR_SIZES]
    for kind, ntheta, formula, (a, b) in runs:
        for seed in range(SEEDS):
            design = build_design(formula, simulated(seed, a, b))
            bobyqa_s, bobyqa_f = best_optimize(design, False)
            lbfgs_s, lbfgs_f = best_optimize(design, True)
            print(f"| {kind} `{formula.split('~')[1].strip()}` | {ntheta} | {a} × {b} | {seed} | {bobyqa_s * 1e3:.1f} "
                  f"| {lbfgs_s * 1e3:.1f} | {lbfgs_s / bobyqa_s:.2f} | {lbfgs_f - bobyqa_f:.1e} |", flush=True)


if __name__ == "__main__":
    main()
