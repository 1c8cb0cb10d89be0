"""Cases, data preparation and data exchange shared by the benchmark processes.

Every process that fits a model (the harness itself for mixedfit, the
statsmodels worker, the memory probes, and the R child for lme4) builds its
data frame from the same *manifest*: a JSON file plus one raw little-endian
binary file per column, written once per case by :func:`write_manifest`.

* numeric columns: float64 (R's ``NA_real_`` bit pattern for missing values)
* integer columns: int32 (R's ``NA_integer_`` for missing values)
* factors: int32 codes, 1-based as in R, with the levels (and the ``ordered``
  flag) in the manifest

Bundled data sets are additionally read by R from mixedfit's own CSV.gz (with
the levels from the JSON beside it) and checked ``identical()`` to the raw
columns, so both libraries provably fit the same numbers.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run from a checkout without installing mixedfit
    sys.path.insert(0, str(REPO))

WITHOUT_CHOLMOD = "MIXEDFIT_BENCH_WITHOUT_CHOLMOD"  # set by run.py --without-cholmod, read by every process


def hide_cvxopt_if_asked() -> None:
    """Make cvxopt unimportable in this process when --without-cholmod asked for it.

    mixedfit then fits as it does where its ``cholmod`` extra is not installed.
    """
    if os.environ.get(WITHOUT_CHOLMOD):
        sys.modules["cvxopt"] = None  # type: ignore[assignment]  # import now raises ImportError


R_NA_REAL = np.array([0x7FF00000000007A2], dtype="<u8").view("<f8")[0]
R_NA_INTEGER = np.iinfo(np.int32).min

CROSSED_NA = (
    "crossed grouping factors: statsmodels can only write them as variance "
    "components of one all-data group, with a dense n x q design per group; not attempted"
)


@dataclass
class Case:
    """One benchmark case."""

    key: str
    title: str
    source: str                      # bundled data set name, or "sim_slope" / "sim_crossed"
    formula: str
    reml: bool
    size: str                        # "small", "medium" or "big"
    repeats: int                     # default repeat count
    statsmodels: dict[str, Any] | None = None
    statsmodels_na: str = ""
    note: str = ""
    sim: dict[str, Any] = field(default_factory=dict)

    @property
    def simulated(self) -> bool:
        return self.source.startswith("sim_")


CASES: list[Case] = [
    Case(
        key="sleepstudy", title="sleepstudy", source="sleepstudy",
        formula="Reaction ~ Days + (Days|Subject)", reml=True, size="small", repeats=5,
        statsmodels=dict(formula="Reaction ~ Days", groups="Subject", re_formula="~Days"),
    ),
    Case(
        key="hsb82", title="Hsb82", source="Hsb82",
        formula="mAch ~ meanses*cses + sector*cses + (cses|school)", reml=True,
        size="small", repeats=5,
        statsmodels=dict(formula="mAch ~ meanses*cses + sector*cses", groups="school",
                         re_formula="~cses"),
    ),
    Case(
        key="chem97", title="Chem97", source="Chem97",
        formula="score ~ gcsecnt + (1|school) + (1|lea)", reml=False, size="small", repeats=5,
        # every school lies in exactly one lea (checked in R: 2410 schools, each
        # in 1 lea), so (1|school) + (1|lea) is exactly lea groups with a lea
        # intercept plus a school variance component inside each lea
        statsmodels=dict(formula="score ~ gcsecnt", groups="lea", re_formula="1",
                         vc_formula={"school": "0 + C(school)"}),
        note="statsmodels: school nested in lea, written as lea groups + school variance component",
    ),
    Case(
        key="egsingle", title="egsingle", source="egsingle",
        formula="math ~ year + size + female + (year|childid) + (year|schoolid)", reml=True,
        size="small", repeats=5,
        statsmodels_na=(
            "needs a correlated (1+year) block per child inside each school; statsmodels "
            "variance components are independent scalars"
        ),
    ),
    Case(
        key="insteval", title="InstEval", source="InstEval",
        formula="y ~ service + (1|s) + (1|d) + (1|dept)", reml=True, size="medium", repeats=3,
        statsmodels_na=CROSSED_NA,
    ),
    Case(
        key="sim_slope", title="sim (x|g) 1M x 10k", source="sim_slope",
        formula="y ~ x + (x|g)", reml=True, size="big", repeats=1,
        statsmodels=dict(formula="y ~ x", groups="g", re_formula="~x"),
        sim=dict(n=1_000_000, n_groups=10_000, seed=20240601,
                 beta=(10.0, 2.0), sd=(2.0, 0.5), corr=0.3, sigma=1.0),
    ),
    Case(
        key="sim_crossed", title="sim crossed 500k, 5k x 2k", source="sim_crossed",
        formula="y ~ x + (1|a) + (1|b)", reml=True, size="big", repeats=1,
        statsmodels_na=CROSSED_NA,
        sim=dict(n=500_000, n_a=5_000, n_b=2_000, seed=20240602,
                 beta=(5.0, 1.5), sd_a=1.0, sd_b=0.7, sigma=1.2),
    ),
    Case(
        key="sim_maximal", title="sim maximal 60 x 40 x 4", source="sim_maximal",
        formula="y ~ cond + (1 + cond|subj) + (1 + cond|item)", reml=True, size="medium", repeats=3,
        statsmodels_na=CROSSED_NA,
        note="every subject sees every item in every condition: the rest's rows are dense",
        sim=dict(n_subj=60, n_item=40, n_cond=4, seed=20240603, effect=0.2, sd_subj=0.5, sd_item=0.4,
                 sigma=1.0),
    ),
]

CASES_BY_KEY = {c.key: c for c in CASES}


# --------------------------------------------------------------------------- simulation
def _levels(prefix: str, k: int) -> list[str]:
    width = len(str(k))
    return [f"{prefix}{i + 1:0{width}d}" for i in range(k)]


def simulate(case: Case) -> pd.DataFrame:
    """The seeded simulated data set of ``case`` as a data frame (factors are Categorical)."""
    p = case.sim
    rng = np.random.default_rng(p["seed"])
    if case.source == "sim_slope":
        n, k = p["n"], p["n_groups"]
        # every group gets at least one row, the rest are assigned at random
        g = np.concatenate([np.arange(k), rng.integers(0, k, size=n - k)])
        g.sort()  # rows grouped by subject, as longitudinal data usually are
        x = rng.normal(0.0, 1.0, size=n)
        s0, s1 = p["sd"]
        r = p["corr"]
        cov = np.array([[s0 * s0, r * s0 * s1], [r * s0 * s1, s1 * s1]])
        b = rng.multivariate_normal([0.0, 0.0], cov, size=k)
        y = (p["beta"][0] + b[g, 0]) + (p["beta"][1] + b[g, 1]) * x + rng.normal(0.0, p["sigma"], size=n)
        return pd.DataFrame({
            "y": y, "x": x,
            "g": pd.Categorical.from_codes(g.astype(np.int32), categories=_levels("g", k)),
        })
    if case.source == "sim_crossed":
        n, ka, kb = p["n"], p["n_a"], p["n_b"]
        # every level of each factor appears; otherwise rows pick a and b at random
        a = rng.integers(0, ka, size=n)
        b = rng.integers(0, kb, size=n)
        a[:ka] = np.arange(ka)
        b[:kb] = np.arange(kb)
        perm = rng.permutation(n)
        a, b = a[perm], b[perm]
        x = rng.normal(0.0, 1.0, size=n)
        ua = rng.normal(0.0, p["sd_a"], size=ka)
        vb = rng.normal(0.0, p["sd_b"], size=kb)
        y = p["beta"][0] + p["beta"][1] * x + ua[a] + vb[b] + rng.normal(0.0, p["sigma"], size=n)
        return pd.DataFrame({
            "y": y, "x": x,
            "a": pd.Categorical.from_codes(a.astype(np.int32), categories=_levels("a", ka)),
            "b": pd.Categorical.from_codes(b.astype(np.int32), categories=_levels("b", kb)),
        })
    if case.source == "sim_maximal":
        ks, ki, kc = p["n_subj"], p["n_item"], p["n_cond"]
        subj, item, cond = (a.ravel() for a in np.meshgrid(np.arange(ks), np.arange(ki), np.arange(kc),
                                                          indexing="ij"))
        # a deviation per condition for each subject and each item: independent,
        # so the fitted 4×4 covariances are near diagonal
        us = rng.normal(0.0, p["sd_subj"], size=(ks, kc))
        vi = rng.normal(0.0, p["sd_item"], size=(ki, kc))
        y = p["effect"] * cond + us[subj, cond] + vi[item, cond] + rng.normal(0.0, p["sigma"], size=subj.size)
        return pd.DataFrame({
            "y": y,
            "cond": pd.Categorical.from_codes(cond.astype(np.int32), categories=_levels("c", kc)),
            "subj": pd.Categorical.from_codes(subj.astype(np.int32), categories=_levels("s", ks)),
            "item": pd.Categorical.from_codes(item.astype(np.int32), categories=_levels("i", ki)),
        })
    raise ValueError(f"unknown simulation {case.source!r}")


def source_frame(case: Case) -> pd.DataFrame:
    """The case's data: mixedfit's bundled data set, or the simulated one."""
    if case.simulated:
        return simulate(case)
    import mixedfit as mf

    return mf.load_dataset(case.source)


# --------------------------------------------------------------------------- manifest
def _bundled_paths(name: str) -> tuple[str, str]:
    from importlib import resources

    base = resources.files("mixedfit.datasets").joinpath("data")
    return str(base.joinpath(name + ".csv.gz")), str(base.joinpath(name + ".json"))


def write_manifest(case: Case, frame: pd.DataFrame, directory: Path) -> Path:
    """Write ``frame`` column by column as raw binaries plus a manifest; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    columns = []
    for i, (name, col) in enumerate(frame.items()):
        path = directory / f"col{i:03d}.bin"
        spec: dict[str, Any] = {"name": str(name), "file": str(path)}
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy().astype(np.int64)
            raw = np.where(codes < 0, R_NA_INTEGER, codes + 1).astype("<i4")
            spec.update(type="factor", levels=[str(v) for v in col.cat.categories],
                        ordered=bool(col.cat.ordered))
        elif pd.api.types.is_integer_dtype(col.dtype):
            vals = col.to_numpy(dtype="float64", na_value=np.nan)
            if np.nanmax(np.abs(vals), initial=0) >= 2**31 - 1:
                raise ValueError(f"integer column {name!r} does not fit R's integer")
            raw = np.where(np.isnan(vals), R_NA_INTEGER, np.nan_to_num(vals)).astype("<i4")
            spec.update(type="integer")
        elif pd.api.types.is_float_dtype(col.dtype):
            vals = col.to_numpy(dtype="float64")
            raw = np.where(np.isnan(vals), R_NA_REAL, vals).astype("<f8")
            spec.update(type="numeric")
        else:
            raise TypeError(f"column {name!r}: unsupported dtype {col.dtype}")
        raw.tofile(path)
        columns.append(spec)
    manifest: dict[str, Any] = {
        "case": case.key, "nrow": int(len(frame)), "columns": columns,
        "bundled_csv": None, "bundled_json": None,
    }
    if not case.simulated:
        manifest["bundled_csv"], manifest["bundled_json"] = _bundled_paths(case.source)
    path = directory / "manifest.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return path


def load_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Rebuild the data frame from a manifest (bit-identical to the one written)."""
    man = json.loads(Path(path).read_text(encoding="utf-8"))
    n = man["nrow"]
    out: dict[str, Any] = {}
    for spec in man["columns"]:
        if spec["type"] == "numeric":
            raw = np.fromfile(spec["file"], dtype="<f8", count=n)
            isna = raw.view("<u8") == np.array([0x7FF00000000007A2], dtype="<u8")[0]
            vals = raw.astype(np.float64)
            vals[isna] = np.nan
            out[spec["name"]] = vals
        else:
            raw = np.fromfile(spec["file"], dtype="<i4", count=n).astype(np.int64)
            isna = raw == R_NA_INTEGER
            if spec["type"] == "factor":
                codes = np.where(isna, -1, raw - 1)
                out[spec["name"]] = pd.Categorical.from_codes(
                    codes, categories=spec["levels"], ordered=spec["ordered"])
            elif isna.any():
                out[spec["name"]] = pd.array(np.where(isna, 0, raw), dtype="Int64")
                out[spec["name"]][isna] = pd.NA
            else:
                out[spec["name"]] = raw
    return pd.DataFrame(out, columns=[s["name"] for s in man["columns"]])


def frames_identical(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """True if both frames hold the same columns with bit-identical values."""
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    for name in a.columns:
        x, y = a[name], b[name]
        if isinstance(x.dtype, pd.CategoricalDtype) or isinstance(y.dtype, pd.CategoricalDtype):
            if not (isinstance(x.dtype, pd.CategoricalDtype) and isinstance(y.dtype, pd.CategoricalDtype)):
                return False
            if list(x.cat.categories.astype(str)) != list(y.cat.categories.astype(str)):
                return False
            if not np.array_equal(x.cat.codes.to_numpy(), y.cat.codes.to_numpy()):
                return False
        elif pd.api.types.is_float_dtype(x.dtype):
            xv, yv = x.to_numpy(np.float64), y.to_numpy(np.float64)
            if not np.array_equal(xv.view("<u8")[~np.isnan(xv)], yv.view("<u8")[~np.isnan(yv)]) \
                    or not np.array_equal(np.isnan(xv), np.isnan(yv)):
                return False
        elif not x.equals(y):
            return False
    return True


# --------------------------------------------------------------------------- memory
def read_status_kb(field_name: str) -> float | None:
    """A field of /proc/self/status in kB (Linux), or None."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False
