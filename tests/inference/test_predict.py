"""predict, simulate and refit against lme4 1.1-31.

Reference predictions: ``tests/lme4/fixtures/inference_lrt_satt.json``
(``predict`` and ``refit`` sections), written by ``tests/lme4/inference2_cases.R``.
simulate cannot reproduce R's random numbers, so it is checked by its
distribution instead.
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
from conftest import dataset_fit
from mixedfit.errors import DataError, ModelSpecError
from mixedfit.inference.predict import predict, refit, simulate

FIXTURE = Path(__file__).parents[1] / "lme4" / "fixtures" / "inference_lrt_satt.json"
REF = json.loads(FIXTURE.read_text())
PRED = REF["predict"]

REL = 1e-6  # predictions: our θ agrees with lme4's to ~1e-4 at worst (Penicillin)


def fitted(key: str):
    dataset = {"sleepstudy": "sleepstudy", "penicillin": "Penicillin", "cake": "cake"}[key]
    return dataset_fit(PRED[key]["formula"], dataset, reml=PRED[key]["reml"])


def frame(spec: dict, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: spec[c] for c in columns})


def close(ours: pd.Series, ref: list) -> None:
    np.testing.assert_allclose(ours.to_numpy(), np.asarray(ref, float), rtol=REL)


# -- sleepstudy ----------------------------------------------------------------
SLEEP = PRED["sleepstudy"]
OLD = frame(SLEEP["old"], ["Days", "Subject"])
NEW = frame(SLEEP["new"], ["Days", "Subject"])


def test_fitted_rows():
    fit = fitted("sleepstudy")
    close(predict(fit), SLEEP["fitted"])
    pd.testing.assert_index_equal(predict(fit).index, fit.fittedvalues.index)


@pytest.mark.parametrize("fixed", ["~0", "NA", "~ 0", "~1", np.nan, pd.NA])
def test_fixed_only_spellings(fixed):
    fit = fitted("sleepstudy")
    close(predict(fit, re_form=fixed), SLEEP["fixed_only_fitted"])
    close(predict(fit, OLD, re_form=fixed), SLEEP["old_fixed"])


def test_existing_subjects():
    close(predict(fitted("sleepstudy"), OLD), SLEEP["old_all"])


def test_new_subjects_allowed():
    fit = fitted("sleepstudy")
    close(predict(fit, NEW, allow_new_levels=True), SLEEP["new_allow"])
    close(predict(fit, NEW, re_form="~0"), SLEEP["new_fixed"])


def test_new_subjects_refused_naming_factor_and_levels():
    with pytest.raises(DataError) as info:
        predict(fitted("sleepstudy"), NEW)
    message = str(info.value)
    assert "Subject" in message
    lme4_levels = SLEEP["new_error"].split(": ", 1)[1]  # "999, new"
    assert lme4_levels in message


def test_intercept_only_subset_of_a_correlated_term():
    fit = fitted("sleepstudy")
    close(predict(fit, OLD, re_form="~(1|Subject)"), SLEEP["old_intercept_only"])
    close(predict(fit, re_form="(1|Subject)"), SLEEP["fitted_intercept_only"])


def test_index_of_newdata_is_kept():
    new = OLD.set_index(pd.Index(list("abcde")))
    assert list(predict(fitted("sleepstudy"), new).index) == list("abcde")


def test_missing_covariate_gives_nan():
    new = OLD.copy()
    new.loc[1, "Days"] = np.nan
    pred = predict(fitted("sleepstudy"), new)
    assert np.isnan(pred.iloc[1]) and np.isfinite(pred.drop(index=1)).all()


def test_missing_group_needs_allow_new_levels():
    new = pd.DataFrame({"Days": [1.0, 2.0], "Subject": ["308", None]})
    fit = fitted("sleepstudy")
    with pytest.raises(DataError, match="NAs are not allowed"):
        predict(fit, new)
    pred = predict(fit, new, allow_new_levels=True)
    assert pred.iloc[1] == pytest.approx(predict(fit, new, re_form="~0").iloc[1])


def test_unknown_grouping_factor_in_re_form():
    with pytest.raises(ModelSpecError, match="Worker"):
        predict(fitted("sleepstudy"), OLD, re_form="~(1|Worker)")


# -- Penicillin: crossed terms, re_form subsets ----------------------------------
PEN = PRED["penicillin"]
PNEW = frame(PEN["new"], ["plate", "sample"])


def test_penicillin_subsets():
    fit = fitted("penicillin")
    close(predict(fit, PNEW, re_form="~(1|plate)", allow_new_levels=True), PEN["plate_only"])
    close(predict(fit, PNEW, re_form="~(1|sample)"), PEN["sample_only"])
    close(predict(fit, PNEW, allow_new_levels=True), PEN["both_allow"])
    close(predict(fit, re_form="~(1|plate)"), PEN["fitted_plate_only"])


def test_penicillin_new_plate_refused():
    new = pd.DataFrame({"plate": ["a", "z"], "sample": ["A", "B"]})
    with pytest.raises(DataError, match="'plate': z"):
        predict(fitted("penicillin"), new)


# -- cake: factor in the fixed part, interaction grouping factor -------------------
CAKE = PRED["cake"]


def test_cake_new_rows():
    fit = fitted("cake")
    new = frame(CAKE["new"], ["recipe", "temp", "replicate"])
    close(predict(fit, new), CAKE["all"])
    close(predict(fit, new, re_form="NA"), CAKE["fixed"])


def test_cake_rows_of_one_non_baseline_level():
    fit = fitted("cake")
    close(predict(fit, frame(CAKE["only_b"], ["recipe", "temp", "replicate"])), CAKE["only_b"]["all"])


def test_cake_training_data_reproduce_fitted_values():
    fit = fitted("cake")
    np.testing.assert_allclose(predict(fit, mf.load_dataset("cake")), fit.fittedvalues, rtol=1e-12)


def test_cake_unseen_fixed_levels():
    new = pd.DataFrame({"recipe": ["D", "E"], "temp": [180.0, 190.0], "replicate": ["1", "2"]})
    with pytest.raises(DataError, match="recipe.*D, E"):
        predict(fitted("cake"), new, re_form="~0")


# -- refit -----------------------------------------------------------------------
REFIT = REF["refit"]


@lru_cache(maxsize=None)
def refitted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return refit(fitted("sleepstudy"), REFIT["newresp"])


def test_refit_reaches_lme4s_optimum():
    # lme4's refit() stops at a criterion of REFIT["objective"]; a fresh lmer() fit
    # to the new response reaches REFIT["fresh_objective"] (lower); we must too.
    ours = refitted()
    assert ours.optsummary.fmin <= REFIT["fresh_objective"] * (1 + 1e-9)
    assert ours.optsummary.fmin <= REFIT["objective"]


def test_refit_estimates():
    ours = refitted()
    se = np.asarray(REFIT["se"], float)
    assert np.all(np.abs(ours.fixef.to_numpy() - np.asarray(REFIT["fresh_beta"])) < 2e-3 * se)
    np.testing.assert_allclose(ours.theta.to_numpy(), REFIT["fresh_theta"], rtol=1e-3)
    np.testing.assert_allclose(ours.bse.to_numpy(), se, rtol=5e-3)


def test_refit_with_own_response_reproduces_fit():
    fit = fitted("sleepstudy")
    again = refit(fit, pd.Series(fit.model.design.y))
    # restarted at the optimum, BOBYQA may move only where the objective is flat: θ agree as far as
    # the objective tells them apart (a first BOBYQA step, 1e-4 of θ, may go where it is 4e-12 lower)
    assert again.optsummary.fmin <= fit.optsummary.fmin + 1e-8
    delta = again.optsummary.final - fit.optsummary.final
    assert 0.5 * delta @ fit.optsummary.hessian @ delta <= 1e-8
    assert again.reml == fit.reml


def test_refit_checks_length():
    with pytest.raises(DataError, match="179 values"):
        refit(fitted("sleepstudy"), np.ones(179))


# -- simulate --------------------------------------------------------------------


def test_simulate_shape_and_seed():
    fit = fitted("sleepstudy")
    a = simulate(fit, nsim=3, seed=42)
    assert a.shape == (180, 3) and list(a.columns) == ["sim_1", "sim_2", "sim_3"]
    pd.testing.assert_frame_equal(a, simulate(fit, nsim=3, seed=42))
    assert a.attrs["seed"] == 42
    assert not a.equals(simulate(fit, nsim=3, seed=43))


def test_simulate_marginal_moments():
    # mean Xβ̂ and covariance σ̂²(I + ZΛΛᵀZᵀ): per row, var = σ̂² + z Σ̂ zᵀ
    fit = fitted("sleepstudy")
    sims = simulate(fit, nsim=4000, seed=1).to_numpy()
    term = fit.model.design.terms[0]
    cov = fit.vc_blocks[0][2]
    var = fit.sigma**2 + np.einsum("ns,st,nt->n", term.z, cov, term.z)
    mean = predict(fit, re_form="~0").to_numpy()
    z = (sims.mean(axis=1) - mean) / np.sqrt(var / sims.shape[1])
    assert np.abs(z).max() < 5
    np.testing.assert_allclose(sims.var(axis=1, ddof=1), var, rtol=0.15)


def test_simulate_use_u_centres_on_fitted():
    fit = fitted("sleepstudy")
    sims = simulate(fit, nsim=2000, seed=3, use_u=True).to_numpy()
    resid = sims - fit.fittedvalues.to_numpy()[:, None]
    assert abs(resid.mean()) < 5 * fit.sigma / np.sqrt(resid.size)
    assert resid.std() == pytest.approx(fit.sigma, rel=0.02)


@pytest.mark.parametrize("formula", ["score ~ Machine + (0 + Machine|Worker)",
                                     "score ~ Machine + (1|Worker/Machine)"])
def test_string_rows_without_the_baseline_level_match_fitted(formula):
    # no row of the new data has the baseline level A: the fit's coding must be used
    data = mf.load_dataset("Machines")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mf.mixed(formula, data)
    rows = data.index[(data["Machine"] != "A")][[0, 7, 20]]
    new = pd.DataFrame({"Machine": data.loc[rows, "Machine"].astype(str).to_numpy(),
                        "Worker": data.loc[rows, "Worker"].astype(str).to_numpy()})
    np.testing.assert_allclose(predict(fit, new), fit.fittedvalues.loc[rows], rtol=1e-12)
