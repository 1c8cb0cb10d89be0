"""Shared loading of lme4's inference reference and the fits it describes.

``tests/lme4/fixtures/inference_profile.json`` is written by
``tests/lme4/inference_cases.R``; its ``cases`` record, per case, the data
set, formula and REML flag that ``fitted`` fits with mixedfit.  Used by
``test_bootstrap.py``, ``test_profile.py`` and ``test_wald.py``.
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import mixedfit as mf

FIXTURE = Path(__file__).parents[1] / "lme4" / "fixtures" / "inference_profile.json"
CASES = ["sleepstudy_reml", "sleepstudy_ml", "dyestuff_reml", "dyestuff_ml", "dyestuff2", "penicillin"]


@lru_cache(maxsize=None)
def fixture() -> dict:
    return json.loads(FIXTURE.read_text())


@lru_cache(maxsize=None)
def fitted(case: str):
    c = fixture()["cases"][case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mf.mixed(c["formula"], mf.load_dataset(c["dataset"]), reml=c["reml"])
