"""Agreement of method="moments" with the exact REML fit on simulated crossed designs.

Each replicate draws an unbalanced crossed design (rows land on level pairs
at random, so cells are empty, single or repeated), a covariate, and
``y = 1 + 0.5 x + a + b + e`` with var(a), var(b), var(e) = 1, 0.5, 1; it is
fitted by REML (``mixedfit.mixed``) and by moments (``method="moments"``).
For each variance component and each β the distance between the two is
expressed in REML standard errors (``vcov_varpar(scale="var")`` and ``bse``);
the spread of each estimator around the truth is reported too.

Run: ``PYTHONPATH=. python benchmarks/moments_agreement.py [replicates]``;
prints the markdown table of benchmarks/RESULTS_moments.md.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd

import mixedfit as mf

TRUTH = {"a": 1.0, "b": 0.5, "Residual": 1.0, "(Intercept)": 1.0, "x": 0.5}
FORMULA = "y ~ x + (1|a) + (1|b)"


def simulate(seed: int, n: int = 600, la: int = 40, lb: int = 25) -> pd.DataFrame:
    """One unbalanced crossed design: levels drawn with Zipf-like (1/rank) frequencies."""
    rng = np.random.default_rng(seed)
    wa, wb = 1 / np.arange(1, la + 1), 1 / np.arange(1, lb + 1)
    a = rng.choice(la, n, p=wa / wa.sum())
    b = rng.choice(lb, n, p=wb / wb.sum())
    x = rng.normal(size=n)
    y = (TRUTH["(Intercept)"] + TRUTH["x"] * x + rng.normal(0, np.sqrt(TRUTH["a"]), la)[a]
         + rng.normal(0, np.sqrt(TRUTH["b"]), lb)[b] + rng.normal(0, np.sqrt(TRUTH["Residual"]), n))
    return pd.DataFrame({"y": y, "x": x, "a": a.astype(str), "b": b.astype(str)})


def replicate(seed: int) -> dict:
    """Both fits of one replicate: estimates, REML SEs, and seconds."""
    data = simulate(seed)
    clock = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.errors.MixedFitWarning)
        reml = mf.mixed(FORMULA, data)
        t_reml = time.perf_counter() - clock
        clock = time.perf_counter()
        mom = mf.mixed(FORMULA, data, method="moments")
    t_mom = time.perf_counter() - clock
    out = {"seed": seed, "t_reml": t_reml, "t_mom": t_mom}
    se_vc = np.sqrt(np.diag(reml.vcov_varpar(scale="var").to_numpy()))
    vc_reml = reml.varcorr.set_index("grp")["vcov"]
    vc_mom = mom.varcorr.set_index("grp")["vcov"]
    for k, grp in enumerate(["a", "b", "Residual"]):  # vcov_varpar: by term order, then sigma^2
        out[grp] = (vc_mom[grp], vc_reml[grp], se_vc[k], np.nan)
    for name in reml.xnames:
        out[name] = (mom.fixef[name], reml.fixef[name], reml.bse[name], mom.bse[name])
    return out


def table(rows: list[dict]) -> pd.DataFrame:
    """Per parameter: distances in REML SEs and each estimator's spread around the truth."""
    lines = []
    for name in ["a", "b", "Residual", "(Intercept)", "x"]:
        mom, reml, se, se_mom = (np.array([r[name][i] for r in rows]) for i in range(4))
        z = np.abs(mom - reml) / se
        line = {"parameter": name if name in ("(Intercept)", "x") else f"var({name})",
                "truth": TRUTH[name], "median abs(Δ)/SE": np.median(z),
                "95th pct abs(Δ)/SE": np.quantile(z, 0.95), "max abs(Δ)/SE": z.max(),
                "share within 1 SE": np.mean(z <= 1),
                "RMSE moments": np.sqrt(np.mean((mom - TRUTH[name]) ** 2)),
                "RMSE REML": np.sqrt(np.mean((reml - TRUTH[name]) ** 2))}
        if name in ("(Intercept)", "x"):
            line["SE ratio moments/REML"] = np.median(se_mom / se)
        lines.append(line)
    return pd.DataFrame(lines).set_index("parameter")


def markdown(frame: pd.DataFrame) -> str:
    """A data frame as a markdown table (pandas' to_markdown needs tabulate)."""
    cells = [[frame.index.name] + list(frame.columns)]
    cells += [[str(i)] + ["" if pd.isna(v) else f"{v:.3g}" for v in row]
              for i, row in zip(frame.index, frame.to_numpy())]
    lines = ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join([lines[0], "|" + "---|" * len(cells[0])] + lines[1:])


def main(replicates: int = 50) -> None:
    rows = [replicate(seed) for seed in range(replicates)]
    print(f"{replicates} replicates of `{FORMULA}`, 600 rows, 40 × 25 levels (1/rank frequencies)\n")
    print(markdown(table(rows)))
    t_reml = np.median([r["t_reml"] for r in rows])
    t_mom = np.median([r["t_mom"] for r in rows])
    print(f"\nmedian seconds per fit: REML {t_reml:.3f}, moments {t_mom:.4f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
