"""Shared loading of ``tests/lme4/fixtures/postfit_cases.json`` and the fits it describes.

The file is written by ``tests/lme4/postfit_cases.R``; each case records the
data set, formula, REML flag, extra columns, weights and whether ordered
factors were made plain factors.  Used by ``test_r2.py``, ``test_ranova.py``
and ``test_drop1.py``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pandas as pd

import mixedfit as mf
from conftest import fit_quietly

FIXTURE = Path(__file__).parents[1] / "lme4" / "fixtures" / "postfit_cases.json"

# The R script's extra columns (R code over the data set `d`), written in pandas.
EXTRA = {
    "1 + (d$Days %% 3)": lambda d: 1 + d["Days"] % 3,
    "2 * d$Days": lambda d: 2 * d["Days"],
    "factor(d$Days %% 3)": lambda d: pd.Categorical((d["Days"] % 3).astype(int).astype(str)),
}


@lru_cache(maxsize=None)
def fixture() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def case_data(case: dict) -> pd.DataFrame:
    data = mf.load_dataset(case["dataset"])
    for name, code in case["extra"].items():
        data[name] = EXTRA[code](data)
    if case["unordered"]:
        for col in data.columns:
            if isinstance(data[col].dtype, pd.CategoricalDtype) and data[col].cat.ordered:
                data[col] = data[col].cat.as_unordered()
    return data


@lru_cache(maxsize=None)
def fitted(section: str, name: str):
    """The mixedfit fit of case *name* of a fixture section (``r2_icc``, ``ranova``, ...)."""
    case = next(c for c in fixture()[section] if c["name"] == name)
    return fit_quietly(case["formula"], case_data(case), reml=case["reml"], weights=case["weights"],
                       data_name=case["dataset"])


def cases(section: str) -> list[dict]:
    return fixture()[section]


def at_theta(fit, theta):
    """The fit's results at another θ (lme4's), so a formula is checked apart from the optimizer."""
    import dataclasses

    import numpy as np

    from mixedfit.results import MixedResults

    opt = dataclasses.replace(fit.optsummary, final=np.asarray(theta, float))
    return MixedResults(fit.model, opt, fit._conv, data_name=fit.data_name)
