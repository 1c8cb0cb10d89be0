"""GLMM profile intervals against lme4.

References: ``tests/lme4/fixtures/glmer_inference.json``, written by
``tests/lme4/glmer_inference_cases.R`` (lme4 1.1-31): ``confint(fit, method =
"profile", oldNames = FALSE)`` at 95 % and 90 % for cbpp (binomial) and a
Poisson fit with an offset (the simulated data of glmer_cases.R's
``poisson_offset``).  Criterion as the linear ``test_profile.py``: bounds
within 0.5 % of lme4's interval width.
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfit as mf
from mixedfit.errors import ModelSpecError
from mixedfit.inference.profile import profile_confint

from test_profile import assert_bounds_close

FIXTURES = Path(__file__).parents[1] / "lme4" / "fixtures"
CASES = ["cbpp", "poisson_offset"]
FAMILY = {"cbpp": "binomial", "poisson_offset": "poisson"}


@lru_cache(maxsize=None)
def fixture() -> dict:
    return json.loads((FIXTURES / "glmer_inference.json").read_text(encoding="utf-8"))


def case_data(case: str) -> pd.DataFrame:
    if case == "cbpp":
        return mf.load_dataset("cbpp")
    cols = json.loads((FIXTURES / f"glmer_{case}.json").read_text(encoding="utf-8"))["data"]
    return pd.DataFrame({k: pd.Categorical(v["values"], categories=v["levels"]) if isinstance(v, dict)
                         else np.array(v, float) for k, v in cols.items()})


@lru_cache(maxsize=None)
def fitted(case: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mf.mixed(fixture()["cases"][case]["formula"], case_data(case), family=FAMILY[case])


@lru_cache(maxsize=None)
def profiled(case: str) -> pd.DataFrame:
    return fitted(case).profile(progress=False)


def table(rec) -> pd.DataFrame:
    values = np.column_stack([[np.nan if v is None else float(v) for v in rec["lower"]],
                              [np.nan if v is None else float(v) for v in rec["upper"]]])
    return pd.DataFrame(values, index=rec["rownames"], columns=rec["colnames"])


@pytest.mark.parametrize("case", CASES)
def test_the_fit_profiled_is_lme4s(case):
    rec, fit = fixture()["cases"][case], fitted(case)
    assert -2 * fit.llf <= rec["minus2logLik"] * (1 + 1e-10)
    np.testing.assert_allclose(fit.fitted.theta, rec["theta"], rtol=2e-3)
    np.testing.assert_allclose(fit.fixef.to_numpy(), rec["beta"], rtol=2e-3, atol=1e-4)


@pytest.mark.parametrize("level", [0.95, 0.9])
@pytest.mark.parametrize("case", CASES)
def test_profile_intervals_match_lme4(case, level):
    ours = profile_confint(profiled(case), level=level)
    assert_bounds_close(ours, table(fixture()["cases"][case][f"profile_{round(100 * level):02d}"]))


def test_confint_profiles_by_default_and_selects_rows():
    fit = fitted("poisson_offset")
    ref = table(fixture()["cases"]["poisson_offset"]["profile_95"])
    assert_bounds_close(fit.confint(progress=False), ref)
    assert_bounds_close(fit.confint(parm="beta_", progress=False), ref.loc[["(Intercept)", "x"]])


def test_profile_frame_layout():
    prof = profiled("poisson_offset")
    names = ["sd_(Intercept)|g", "(Intercept)", "x"]
    assert list(prof.columns) == [".zeta"] + names + [".par", ".focal"]
    assert list(dict.fromkeys(prof[".par"])) == names
    at_opt = prof[prof[".zeta"] == 0]
    np.testing.assert_allclose(at_opt[names].to_numpy()[0][1:], fitted("poisson_offset").fixef.to_numpy())
    for name in names:  # ζ increases with the parameter profiled, through 0 at the estimate
        rows = prof[prof[".par"] == name]
        assert np.all(np.diff(rows[".zeta"].to_numpy()) > 0)


def test_families_with_a_scale_and_nagq0_are_refused_as_in_lme4():
    gamma = mf.mixed("y ~ x + (1 | g)", mf.load_dataset("cbpp").assign(y=lambda d: d["size"], x=lambda d: d["incidence"],
                                                                        g=lambda d: d["herd"]),
                     family=mf.family("Gamma", link="log"))
    with pytest.raises(ModelSpecError, match="scale parameter"):
        gamma.profile()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nagq0 = mf.mixed("cbind(incidence, size - incidence) ~ period + (1 | herd)", mf.load_dataset("cbpp"),
                         family="binomial", nagq=0)
    with pytest.raises(ModelSpecError, match="nagq=0"):
        nagq0.confint()
