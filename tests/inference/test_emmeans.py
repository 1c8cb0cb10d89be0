"""Estimated marginal means and pairwise contrasts against R's emmeans 1.8.4 on lmer fits.

Reference numbers: ``tests/lme4/fixtures/emmeans_cases.json``, written by
``tests/lme4/emmeans_cases.R`` (``as.data.frame(summary(...))`` of
``emmeans(fit, specs, by, lmer.df)`` and of ``pairs(..., adjust)``).  Every
column of every summary is compared, on our own fit (not pinned at lme4's θ:
these fits agree with lme4's to far better than the tolerances below):

* estimates, SEs, t ratios and confidence limits: 1e-6 relative (an estimate
  that is zero up to rounding, ``B - C`` at 195 degrees in cake, within 1e-9
  of the largest estimate);
* degrees of freedom (Kenward-Roger, Satterthwaite): 1e-5 relative, 1000
  times tighter than the end-to-end convention of test_satterthwaite.py;
* p-values: 1e-5 relative or 1e-8 absolute: R's ``ptukey`` integrates the
  studentized range to about 1e-9 absolute (the far tail, p < 1e-7, differs
  from scipy's ``studentized_range`` by up to 3e-9 absolute);
* the printed text: equal to emmeans' ``print()``, line for line.
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
from mixedfit.inference import emmeans as em_mod
from mixedfit.results import MixedResults
from conftest import fit_quietly

FIXTURE = Path(__file__).parents[1] / "lme4" / "fixtures" / "emmeans_cases.json"
CASES = json.loads(FIXTURE.read_text())["cases"]
CALLS = [(name, k) for name in CASES for k in range(len(CASES[name]["calls"]))]

EST_REL = 1e-6
DF_REL = 1e-5
P_REL, P_ABS = 1e-5, 1e-8
NUMERIC = {"emmean", "estimate", "SE", "lower.CL", "upper.CL", "asymp.LCL", "asymp.UCL",
           "t.ratio", "z.ratio"}


def prepare(case: dict) -> pd.DataFrame:
    """The data as the R script's prepare_data() changes them."""
    data = mf.load_dataset(case["dataset"])
    kind = case["prepare"]
    if kind == "factor_days":
        days = data["Days"].astype(int).astype(str)
        data["fDays"] = pd.Categorical(days, categories=[str(i) for i in range(10)])
    elif kind in ("phase", "phase_na"):
        data["phase"] = np.where(data["Days"] < 5, "early", "late")
        if kind == "phase_na":
            data.loc[data.index[[0, 11, 22]], "Reaction"] = np.nan
    elif kind == "drop_cell":
        data = data[~((data["recipe"] == "C") & (data["temperature"] == "225"))]
    else:
        assert kind == "none", kind
    return data


@lru_cache(maxsize=None)
def fitted(name: str) -> MixedResults:
    case = CASES[name]
    return fit_quietly(case["formula"], prepare(case), reml=case["reml"])


@lru_cache(maxsize=None)
def result(name: str, k: int) -> em_mod.EmmeansFrame:
    call = CASES[name]["calls"][k]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em = fitted(name).emmeans(call["specs"], by=call["by"], ddf=call["lmer_df"])
        return em if call["kind"] == "emmeans" else em.pairs(adjust=call["adjust"])


def numbers(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], float)


def call_id(param) -> str:
    name, k = param
    call = CASES[name]["calls"][k]
    by = f"|{'+'.join(call['by'])}" if call["by"] else ""
    extra = [call["lmer_df"] or "default"] + ([call["adjust"]] if call["adjust"] else [])
    return f"{name}-{'+'.join(call['specs'])}{by}-{call['kind']}-{'-'.join(extra)}"


@pytest.mark.parametrize("param", CALLS, ids=call_id)
def test_summary_matches_emmeans(param):
    name, k = param
    ours = result(name, k)
    ref = CASES[name]["calls"][k]["table"]
    assert list(ours.columns) == ref["columns"]
    for col in ref["columns"]:
        expected = ref[col]
        if col not in NUMERIC | {"df", "p.value"} and any(isinstance(v, str) for v in expected):
            assert [str(v) for v in ours[col]] == expected, col  # levels, contrast labels
            continue
        want, got = numbers(expected), ours[col].to_numpy(float)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{col}: nonEst rows")
        ok = ~np.isnan(want)
        if col == "df":
            np.testing.assert_allclose(got[ok], want[ok], rtol=DF_REL, err_msg=col)
        elif col == "p.value":
            np.testing.assert_allclose(got[ok], want[ok], rtol=P_REL, atol=P_ABS, err_msg=col)
        else:
            scale = np.max(np.abs(want[ok]), initial=0.0)
            np.testing.assert_allclose(got[ok], want[ok], rtol=EST_REL, atol=1e-9 * scale,
                                       err_msg=col)


@pytest.mark.parametrize("param", CALLS, ids=call_id)
def test_print_matches_emmeans(param):
    """print(em) is emmeans' print, line for line (trailing spaces aside)."""
    name, k = param
    ours = [line.rstrip() for line in str(result(name, k)).rstrip().splitlines()]
    theirs = [line.rstrip() for line in CASES[name]["calls"][k]["print_text"].rstrip().splitlines()]
    assert ours == theirs


@pytest.mark.parametrize("param", CALLS, ids=call_id)
def test_interaction_note_as_emmeans(param):
    name, k = param
    note = "NOTE: Results may be misleading due to involvement in interactions"
    expected = note in CASES[name]["calls"][k]["messages"]
    assert (note in result(name, k).messages) == expected


def test_default_ddf_is_kenward_roger_below_3000_rows():
    fit = fitted("machines")
    default = fit.emmeans("Machine")
    kr = fit.emmeans("Machine", ddf="Kenward-Roger")
    pd.testing.assert_frame_equal(pd.DataFrame(default), pd.DataFrame(kr))
    assert "Degrees-of-freedom method: kenward-roger" in str(default)


def test_default_ddf_above_the_limits_is_asymptotic_with_a_note():
    with pytest.warns(mf.errors.MixedFitWarning, match="exceeds 3000"):
        em = fitted("hsb82").emmeans("sector", ddf="satterthwaite")
    assert np.isinf(em["df"]).all() and "asymp.LCL" in em.columns


def test_covariate_mean_is_over_the_rows_fitted():
    # three rows have no response: emmeans' Days is the mean over the 177 rows fitted
    (days,) = set(CASES["sleepstudy_phase_na"]["calls"][1]["table"]["Days"])
    fit = fitted("sleepstudy_phase_na")
    assert fit.model.design.covariate_means["Days"] == pytest.approx(days, rel=1e-15)
    assert days != pytest.approx(mf.load_dataset("sleepstudy")["Days"].mean(), rel=1e-6)


def test_pairwise_flag_returns_the_contrasts():
    fit = fitted("cake")
    direct = fit.emmeans("recipe", by="temperature", pairwise=True, adjust="holm")
    chained = fit.emmeans("recipe", by="temperature").pairs(adjust="holm")
    pd.testing.assert_frame_equal(pd.DataFrame(direct), pd.DataFrame(chained))
    assert em_mod.pairs(fit.emmeans("recipe", by="temperature")).shape == (18, 7)


def test_selecting_columns_gives_a_plain_frame():
    em = fitted("machines").emmeans("Machine")
    assert type(em[["emmean", "SE"]]) is pd.DataFrame
    assert type(em.round(2)) is pd.DataFrame


# -- bad input -----------------------------------------------------------------


def test_unknown_spec_lists_the_factors():
    with pytest.raises(ModelSpecError, match=r"'nope'.*factors: recipe, temperature"):
        fitted("cake").emmeans("nope")
    with pytest.raises(ModelSpecError, match=r"by 'time'.*factors: phase \(covariates: Days\)"):
        fitted("sleepstudy_phase").emmeans("phase", by="time")


def test_unknown_adjust_lists_the_valid_ones():
    em = fitted("machines").emmeans("Machine")
    with pytest.raises(ModelSpecError, match="'tukey', 'holm', 'bonferroni', 'none'"):
        em.pairs(adjust="scheffe")


def test_unknown_ddf_lists_the_valid_ones():
    with pytest.raises(ModelSpecError, match="'kenward-roger', 'satterthwaite', 'asymptotic'"):
        fitted("machines").emmeans("Machine", ddf="containment")


def test_kenward_roger_default_on_an_ml_fit_says_what_to_do():
    with pytest.raises(ModelSpecError, match="REML.*ddf='satterthwaite'"):
        fitted("sleepstudy_phase_ml").emmeans("phase")


def test_pairs_needs_an_emmeans_result():
    contrasts = fitted("machines").emmeans("Machine", pairwise=True)
    with pytest.raises(ModelSpecError, match="result of emmeans"):
        contrasts.pairs()


def test_factor_made_in_the_formula_is_refused_clearly():
    # factor(Days) is the grid's factor Days (test_type3_transforms.py); this one is not
    data = mf.load_dataset("sleepstudy")
    fit = mf.mixed("Reaction ~ factor(Days > 4) + (1|Subject)", data)
    with pytest.raises(ModelSpecError,
                       match="'factor\\(Days > 4\\)' is another factor made in the formula"):
        fit.emmeans("Days")


def test_pairs_of_a_single_mean_is_refused():
    em = fitted("sleepstudy_phase").emmeans("Days")
    with pytest.raises(ModelSpecError, match="two or more means.*Days takes one value"):
        em.pairs()


def test_dask_fit_is_refused():
    dd = pytest.importorskip("dask.dataframe")
    from mixedfit.distributed import mixed_dask

    data = dd.from_pandas(prepare(CASES["machines"]), npartitions=2)
    fit = mixed_dask(CASES["machines"]["formula"], data)
    with pytest.raises(ModelSpecError, match="in-memory data"):
        fit.emmeans("Machine")


def test_logical_column_is_refused_clearly():
    data = prepare(CASES["sleepstudy_phase"])
    data["late"] = data["phase"] == "late"
    fit = mf.mixed("Reaction ~ late + (1|Subject)", data)
    with pytest.raises(ModelSpecError, match="'late' in the reference grid"):
        fit.emmeans("late")
