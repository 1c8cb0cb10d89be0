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
import time
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
# checked on Machines: lme-python "Column 'Machine' must be numeric", interlace
# "could not convert string to float: 'A'"
FACTOR_SLOPE_NA = {
    "lme_python": "a factor inside a random-effects term (only numeric columns there)",
    "interlace": "a factor inside a random-effects term (only numeric columns there)",
}
GLMM_NA = "statsmodels has no Laplace GLMM (only variational Bayes BinomialBayesMixedGLM)"


@dataclass
class Case:
    """One benchmark case."""

    key: str
    title: str
    source: str                      # bundled data set name, "sim_*" (simulated) or "R:<name>" (r_data.R)
    formula: str
    reml: bool
    size: str                        # "small", "medium" or "big"
    repeats: int                     # default repeat count
    statsmodels: dict[str, Any] | None = None
    statsmodels_na: str = ""
    note: str = ""
    sim: dict[str, Any] = field(default_factory=dict)
    family: str | None = None        # GLMM family ("binomial", "poisson"); None: a linear mixed model
    # the Python peers (peers.py): the formula they are given where it differs
    # from ``formula`` (e.g. a proportion instead of cbind()), the column of
    # prior weights that goes with it, and the peers that cannot write the model
    peer_formula: str | None = None
    peer_weights: str | None = None
    peer_na: dict[str, str] = field(default_factory=dict)

    @property
    def simulated(self) -> bool:
        return self.source.startswith("sim_")

    @property
    def from_r(self) -> bool:
        """Data exported from an R package by ``r_data.R`` (not bundled with mixedfit)."""
        return self.source.startswith("R:")

    @property
    def bundled(self) -> bool:
        return not (self.simulated or self.from_r)


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
        peer_na=FACTOR_SLOPE_NA,
    ),
    # ---- issue 21: published models and a sweep of model shapes
    Case(
        key="insteval_mmjl", title="InstEval, MixedModels.jl's model", source="InstEval",
        formula="y ~ 1 + service + (1|d) + (1|s) + (1|dept) + (0 + service|dept)", reml=False,
        # big: lme4 took 178 s per fit on the reference BLAS here (issue 21)
        size="big", repeats=1, statsmodels_na=CROSSED_NA,
        note="MixedModels.jl's published benchmark model (ML): the dept intercept plus a 2×2 "
             "service block per dept",
        peer_na=FACTOR_SLOPE_NA,
    ),
    Case(
        key="oxboys", title="Oxboys", source="R:Oxboys",
        formula="height ~ age + I(age^2) + (age + I(age^2)|Subject)", reml=True, size="small",
        repeats=5,
        statsmodels=dict(formula="height ~ age + I(age**2)", groups="Subject",
                         re_formula="~age + I(age**2)"),
        peer_formula="height ~ age + age2 + (age + age2|Subject)",
        note="nlme's Oxboys (exported from R): a 3×3 covariance per boy; age2 = age^2, computed in R, "
             "for the Python peers, whose formulas take no I(age^2)",
    ),
    Case(
        key="machines_factor_slope", title="Machines (0 + Machine|Worker)", source="Machines",
        formula="score ~ Machine + (0 + Machine|Worker)", reml=True, size="small", repeats=5,
        statsmodels=dict(formula="score ~ Machine", groups="Worker", re_formula="0 + Machine"),
        peer_na=FACTOR_SLOPE_NA,
    ),
    Case(
        key="sim_crossed_slopes", title="sim (x|subj)+(x|item) 400 x 200", source="sim_crossed_slopes",
        formula="y ~ x + (x|subj) + (x|item)", reml=True, size="medium", repeats=3,
        statsmodels_na=CROSSED_NA,
        sim=dict(n_subj=400, n_item=200, items_per_subj=60, seed=20240604, beta=(1.0, 0.5),
                 sd_subj=(0.8, 0.3), corr_subj=0.2, sd_item=(0.5, 0.2), corr_item=-0.3, sigma=1.0),
    ),
    Case(
        key="sim_nested_slopes", title="sim (x|school/class) 300 x 8", source="sim_nested_slopes",
        formula="y ~ x + (x|school/class)", reml=True, size="medium", repeats=3,
        statsmodels_na="needs a correlated (1+x) block per class inside each school; statsmodels "
                       "variance components are independent scalars",
        sim=dict(n_school=300, n_class=8, n_pupil=15, seed=20240605, beta=(2.0, 0.7),
                 sd_school=(1.0, 0.4), corr_school=0.3, sd_class=(0.6, 0.25), corr_class=0.1,
                 sigma=1.0),
    ),
    Case(
        key="sim_factor_slopes", title="sim (0+f|g) 4 levels, 3,000 groups", source="sim_factor_slopes",
        formula="y ~ f + (0 + f|g)", reml=True, size="medium", repeats=3,
        statsmodels=dict(formula="y ~ f", groups="g", re_formula="0 + f"),
        sim=dict(n_groups=3000, n_levels=4, reps=2, seed=20240606, sd=(1.0, 0.8, 0.6, 0.9),
                 corr=0.5, sigma=0.7),
        peer_na=FACTOR_SLOPE_NA,
    ),
    Case(
        key="sim_crossed_big", title="sim (1|a)+(1|b) unbalanced 200k, 20k x 3k", source="sim_crossed_big",
        formula="y ~ x + (1|a) + (1|b)", reml=True, size="big", repeats=1,
        statsmodels_na=CROSSED_NA,
        note="unbalanced: log-normal level frequencies (rows per level of a: median 6, 1 to 216; of b: median 40, 1 to 1,180)",
        sim=dict(n=200_000, n_a=20_000, n_b=3_000, seed=20240607, beta=(3.0, 1.0), sd_a=0.8,
                 sd_b=0.5, sigma=1.0, skew=1.0),
    ),
    Case(
        key="sim_nested3", title="sim (1|region/school/class) 40 x 25 x 8", source="sim_nested3",
        formula="y ~ x + (1|region/school/class)", reml=True, size="medium", repeats=3,
        statsmodels_na="three nested levels: statsmodels has one grouping level plus independent "
                       "variance components; not attempted",
        sim=dict(n_region=40, n_school=25, n_class=8, n_pupil=10, seed=20240608, beta=(0.0, 0.5),
                 sd=(0.5, 0.7, 0.4), sigma=1.0),
    ),
    Case(
        key="sim_text_ids", title="sim (1|g) 50,000 text ids, 200k rows", source="sim_text_ids",
        formula="y ~ x + (1|g)", reml=True, size="medium", repeats=3,
        statsmodels=dict(formula="y ~ x", groups="g"),
        note="the grouping ids are text, as read_csv gives them (pandas' str dtype; a character vector "
             "in R), not a factor: each library makes the factor itself",
        sim=dict(n=200_000, n_g=50_000, seed=20240609, beta=(1.0, 0.5), sd_g=0.6, sigma=1.0),
    ),
    # ---- GLMMs (issue 19): lme4's glmer and the peers now; mixedfit once it takes family=
    Case(
        key="glmm_cbpp", title="cbpp (binomial)", source="R:cbpp",
        formula="cbind(incidence, size - incidence) ~ period + (1|herd)", reml=False,
        size="small", repeats=5, family="binomial", statsmodels_na=GLMM_NA,
        peer_formula="prop ~ period + (1|herd)", peer_weights="size",
        note="the Python peers take no cbind(): prop = incidence/size with prior weights size is "
             "the same binomial likelihood",
    ),
    Case(
        key="glmm_verbagg", title="VerbAgg (binomial)", source="R:VerbAgg",
        formula="r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item)", reml=False,
        size="small", repeats=3, family="binomial", statsmodels_na=GLMM_NA,
    ),
    Case(
        key="glmm_contraception40", title="Contraception ×40 (binomial)", source="R:Contraception40",
        formula="use ~ age + I(age^2) + urban + livch + (urban|district)", reml=False,
        # big: glmer took 246 s here (reference BLAS; 3,506 evaluations of θ and β together)
        size="big", repeats=1, family="binomial", statsmodels_na=GLMM_NA,
        peer_formula="use ~ age + age2 + urbanY + livch + (urbanY|district)",
        note="mlmRev's Contraception replicated 40 times, districts relabelled per replicate "
             "(77,360 rows, 2,400 districts); for the Python peers age2 = age^2 and urbanY = the 0/1 "
             "dummy of urban (computed in R): the same model",
    ),
    Case(
        key="glmm_grouseticks", title="grouseticks (Poisson)", source="R:grouseticks",
        formula="TICKS ~ YEAR + cHEIGHT + (1|BROOD) + (1|INDEX) + (1|LOCATION)", reml=False,
        size="small", repeats=3, family="poisson", statsmodels_na=GLMM_NA,
        note="lme4's ?grouseticks model; cHEIGHT is HEIGHT centred",
    ),
    Case(
        key="glmm_sim_nested", title="sim binomial (1|subj)+(1|clinic), 10,000 in 2,000",
        source="sim_glmm_nested", formula="y ~ x + (1|subj) + (1|clinic)", reml=False,
        size="medium", repeats=3, family="binomial", statsmodels_na=GLMM_NA,
        note="four 0/1 outcomes for each of 10,000 subjects, five subjects in each of 2,000 clinics "
             "(subject labels unique): a large two-level nested GLMM",
        sim=dict(n_clinic=2000, n_subj=5, n_obs=4, seed=20261207, beta=(-0.5, 0.4), sd=(0.5, 0.8)),
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
    sim = _SIMULATIONS.get(case.source)
    if sim is None:
        raise ValueError(f"unknown simulation {case.source!r}")
    return sim(p, rng)


def _factor(codes: np.ndarray, prefix: str, k: int) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(np.int32), categories=_levels(prefix, k))


def _pairs(rng: np.random.Generator, k: int, sd: tuple[float, float], corr: float) -> np.ndarray:
    """k correlated (intercept, slope) deviations, shape (k, 2)."""
    cov = np.array([[sd[0] ** 2, corr * sd[0] * sd[1]], [corr * sd[0] * sd[1], sd[1] ** 2]])
    return rng.multivariate_normal([0.0, 0.0], cov, size=k)


def _sim_crossed_slopes(p: dict, rng: np.random.Generator) -> pd.DataFrame:
    # each subject sees a random subset of the items: crossed, partially filled
    ks, ki, m = p["n_subj"], p["n_item"], p["items_per_subj"]
    subj = np.repeat(np.arange(ks), m)
    item = np.concatenate([rng.choice(ki, size=m, replace=False) for _ in range(ks)])
    x = rng.normal(0.0, 1.0, size=subj.size)
    u = _pairs(rng, ks, p["sd_subj"], p["corr_subj"])
    v = _pairs(rng, ki, p["sd_item"], p["corr_item"])
    y = (p["beta"][0] + u[subj, 0] + v[item, 0] + (p["beta"][1] + u[subj, 1] + v[item, 1]) * x
         + rng.normal(0.0, p["sigma"], size=subj.size))
    return pd.DataFrame({"y": y, "x": x, "subj": _factor(subj, "s", ks), "item": _factor(item, "i", ki)})


def _sim_nested_slopes(p: dict, rng: np.random.Generator) -> pd.DataFrame:
    # class labels repeat across schools (c1..c8 in every school): the model
    # needs school/class, as in lme4's documentation of nesting
    ks, kc, m = p["n_school"], p["n_class"], p["n_pupil"]
    school = np.repeat(np.arange(ks), kc * m)
    klass = np.tile(np.repeat(np.arange(kc), m), ks)
    x = rng.normal(0.0, 1.0, size=school.size)
    u = _pairs(rng, ks, p["sd_school"], p["corr_school"])
    v = _pairs(rng, ks * kc, p["sd_class"], p["corr_class"])
    sc = school * kc + klass
    y = (p["beta"][0] + u[school, 0] + v[sc, 0] + (p["beta"][1] + u[school, 1] + v[sc, 1]) * x
         + rng.normal(0.0, p["sigma"], size=school.size))
    return pd.DataFrame({"y": y, "x": x, "school": _factor(school, "s", ks), "class": _factor(klass, "c", kc)})


def _sim_factor_slopes(p: dict, rng: np.random.Generator) -> pd.DataFrame:
    # every group sees every level of f `reps` times; the per-group level
    # deviations are equicorrelated
    kg, kl, r = p["n_groups"], p["n_levels"], p["reps"]
    g = np.repeat(np.arange(kg), kl * r)
    f = np.tile(np.repeat(np.arange(kl), r), kg)
    sd = np.asarray(p["sd"])
    cov = p["corr"] * np.outer(sd, sd)
    np.fill_diagonal(cov, sd ** 2)
    b = rng.multivariate_normal(np.zeros(kl), cov, size=kg)
    y = 0.3 * f + b[g, f] + rng.normal(0.0, p["sigma"], size=g.size)
    return pd.DataFrame({"y": y, "f": _factor(f, "f", kl), "g": _factor(g, "g", kg)})


def _skewed_levels(rng: np.random.Generator, n: int, k: int, skew: float) -> np.ndarray:
    """n draws of k levels with log-normal frequencies; every level appears."""
    w = rng.lognormal(0.0, skew, size=k)
    codes = rng.choice(k, size=n - k, p=w / w.sum())
    return rng.permutation(np.concatenate([np.arange(k), codes]))


def _sim_crossed_big(p: dict, rng: np.random.Generator) -> pd.DataFrame:
    n, ka, kb = p["n"], p["n_a"], p["n_b"]
    a = _skewed_levels(rng, n, ka, p["skew"])
    b = _skewed_levels(rng, n, kb, p["skew"])
    x = rng.normal(0.0, 1.0, size=n)
    y = (p["beta"][0] + p["beta"][1] * x + rng.normal(0.0, p["sd_a"], size=ka)[a]
         + rng.normal(0.0, p["sd_b"], size=kb)[b] + rng.normal(0.0, p["sigma"], size=n))
    return pd.DataFrame({"y": y, "x": x, "a": _factor(a, "a", ka), "b": _factor(b, "b", kb)})


def _sim_nested3(p: dict, rng: np.random.Generator) -> pd.DataFrame:
    # labels repeat inside their parent (school s01 in every region, ...)
    kr, ks, kc, m = p["n_region"], p["n_school"], p["n_class"], p["n_pupil"]
    n = kr * ks * kc * m
    region = np.repeat(np.arange(kr), ks * kc * m)
    school = np.tile(np.repeat(np.arange(ks), kc * m), kr)
    klass = np.tile(np.repeat(np.arange(kc), m), kr * ks)
    rs = region * ks + school
    rsc = rs * kc + klass
    x = rng.normal(0.0, 1.0, size=n)
    sd = p["sd"]
    y = (p["beta"][0] + p["beta"][1] * x + rng.normal(0.0, sd[0], size=kr)[region]
         + rng.normal(0.0, sd[1], size=kr * ks)[rs] + rng.normal(0.0, sd[2], size=kr * ks * kc)[rsc]
         + rng.normal(0.0, p["sigma"], size=n))
    return pd.DataFrame({"y": y, "x": x, "region": _factor(region, "r", kr),
                         "school": _factor(school, "s", ks), "class": _factor(klass, "c", kc)})


def _sim_text_ids(p: dict, rng: np.random.Generator) -> pd.DataFrame:
    n, k = p["n"], p["n_g"]
    g = _skewed_levels(rng, n, k, 0.5)
    x = rng.normal(0.0, 1.0, size=n)
    y = p["beta"][0] + p["beta"][1] * x + rng.normal(0.0, p["sd_g"], size=k)[g] + rng.normal(0.0, p["sigma"], size=n)
    ids = np.array([f"id{i}" for i in rng.permutation(k)], dtype=object)  # labels in no sorted order
    return pd.DataFrame({"y": y, "x": x, "g": pd.Series(ids[g], dtype="str")})


def _sim_glmm_nested(p: dict, rng: np.random.Generator) -> pd.DataFrame:
    kc, ks, m = p["n_clinic"], p["n_subj"], p["n_obs"]
    clinic = np.repeat(np.arange(kc), ks * m)
    subj = np.repeat(np.arange(kc * ks), m)
    x = rng.normal(0.0, 1.0, size=clinic.size)
    sd = p["sd"]
    eta = (p["beta"][0] + p["beta"][1] * x + rng.normal(0.0, sd[0], size=kc)[clinic]
           + rng.normal(0.0, sd[1], size=kc * ks)[subj])
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"y": y, "x": x, "subj": _factor(subj, "s", kc * ks), "clinic": _factor(clinic, "c", kc)})


_SIMULATIONS = {
    "sim_crossed_slopes": _sim_crossed_slopes,
    "sim_nested_slopes": _sim_nested_slopes,
    "sim_factor_slopes": _sim_factor_slopes,
    "sim_crossed_big": _sim_crossed_big,
    "sim_nested3": _sim_nested3,
    "sim_text_ids": _sim_text_ids,
    "sim_glmm_nested": _sim_glmm_nested,
}


def source_frame(case: Case) -> pd.DataFrame:
    """The case's data: mixedfit's bundled data set, the simulated one, or one exported from R."""
    if case.simulated:
        return simulate(case)
    if case.from_r:
        return r_dataset(case.source[2:])
    import mixedfit as mf

    return mf.load_dataset(case.source)


def r_dataset(name: str, rscript: str | None = None) -> pd.DataFrame:
    """A data set that mixedfit does not bundle, exported by ``r_data.R`` (needs R)."""
    import subprocess
    import tempfile

    rscript = rscript or os.environ.get("RSCRIPT", "Rscript")
    with tempfile.TemporaryDirectory(prefix="mixedfit-rdata-") as tmp:
        proc = subprocess.run([rscript, "--vanilla", str(HERE / "r_data.R"), name, tmp],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"r_data.R {name} failed: {proc.stderr[-800:]}")
        return load_manifest(Path(tmp) / "manifest.json")


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
        elif pd.api.types.is_string_dtype(col.dtype):  # text: codes into its distinct values, in no sorted order
            codes, values = pd.factorize(col, sort=False)
            raw = np.where(codes < 0, R_NA_INTEGER, codes + 1).astype("<i4")
            spec.update(type="text", values=[str(v) for v in values])
        else:
            raise TypeError(f"column {name!r}: unsupported dtype {col.dtype}")
        raw.tofile(path)
        columns.append(spec)
    manifest: dict[str, Any] = {
        "case": case.key, "nrow": int(len(frame)), "columns": columns,
        "bundled_csv": None, "bundled_json": None,
    }
    if case.bundled:
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
            elif spec["type"] == "text":
                text = np.array(spec["values"] + [None], dtype=object)[np.where(isna, -1, raw - 1)]
                out[spec["name"]] = pd.Series(text, dtype="str")
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


# --------------------------------------------------------------------------- timing
def _seconds(call, repeat: int) -> list[float]:
    """The wall times of ``repeat`` calls of ``call()``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def median_seconds(call, repeat: int) -> float:
    """The median wall time of ``repeat`` calls of ``call()``."""
    return float(np.median(_seconds(call, repeat)))


def best_seconds(call, repeat: int) -> float:
    """The least wall time of ``repeat`` calls of ``call()``."""
    return min(_seconds(call, repeat))


def nearby(theta: np.ndarray, count: int) -> list[np.ndarray]:
    """``count`` distinct θ a few 1e-7 from ``theta``, moved up so that none leaves its bound.

    A model keeps its last few first-term eliminations (``CrossProducts``), so
    an objective timed again and again at one θ skips them; an optimizer
    seldom returns to a θ, so evaluations are timed at θ of their own.
    """
    return [theta + 1e-7 * (k + 1) * (1.0 + np.abs(theta)) for k in range(count)]


def at_each(call, points: list[np.ndarray]) -> None:
    """``call`` at the next of ``points``, taken from the list: timed again and again, each call at a θ of its own."""
    call(points.pop())
