"""The fit of Dask data (mixedfit.distributed) against the in-memory fit of the same rows.

The cross products are summed in another order than in memory, so the two
objectives differ by rounding (~1e-14 relative).  BOBYQA stops on a tolerance
(lme4's xtol_rel = 1e-4), so where that rounding changes one of its steps θ
and the standard errors move within that tolerance: ~1e-9 in most cases, up
to ~3e-7 here, ~3e-6 on the flat optimum of Pastes (where the in-memory fit
of the same rows in another order moves by up to 8e-6 itself).  Objectives
and β are compared at 1e-8, θ and standard errors at THETA_RTOL.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import mixedfit as mf  # noqa: E402
from mixedfit.distributed import mixed_parquet  # noqa: E402
from mixedfit.terms import SCALE_MESSAGE  # noqa: E402
from mixedfit.errors import DataError, ModelSpecError, RankDeficiencyWarning, ScaleWarning  # noqa: E402

RTOL = 1e-8
THETA_RTOL = 1e-6  # BOBYQA's stopping point moves with rounding (module docstring)


@pytest.fixture(scope="module")
def client():
    """Two worker processes, as a real cluster has (the data cross process boundaries)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def _partitioned(pieces: list[pd.DataFrame]):
    """A Dask DataFrame with exactly these partitions."""
    return dd.concat([dd.from_pandas(p, npartitions=1, sort=False) for p in pieces])


def _blocks(data: pd.DataFrame, k: int) -> list[pd.DataFrame]:
    """The rows in k consecutive blocks."""
    cuts = np.linspace(0, len(data), k + 1).astype(int)
    return [data.iloc[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


def _fits(formula: str, data: pd.DataFrame, pieces: list[pd.DataFrame], **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mf.mixed(formula, data, **kwargs), mf.mixed(formula, _partitioned(pieces), **kwargs)


def _assert_same_fit(ref, fit, theta_rtol: float = THETA_RTOL) -> None:
    # lme4's start for random intercepts, from the summed sums as from the rows.
    np.testing.assert_allclose(fit.optsummary.initial, ref.optsummary.initial, rtol=1e-12)
    np.testing.assert_allclose(fit.optsummary.fmin, ref.optsummary.fmin, rtol=RTOL)
    np.testing.assert_allclose(fit.fixef, ref.fixef, rtol=RTOL)
    np.testing.assert_allclose(fit.theta, ref.theta, rtol=theta_rtol, atol=theta_rtol)
    np.testing.assert_allclose(fit.bse, ref.bse, rtol=theta_rtol)
    assert fit.nobs == ref.nobs and fit.xnames == ref.xnames and fit.ngroups == ref.ngroups
    for group, frame in ref.ranef().items():
        assert list(fit.ranef()[group].index) == list(frame.index)


@pytest.fixture(scope="module")
def sleep10() -> pd.DataFrame:
    """sleepstudy ten times over, each copy with its own subjects (1,800 rows, 180 subjects)."""
    sleep = mf.load_dataset("sleepstudy")
    rng = np.random.default_rng(7)
    copies = []
    for k in range(10):
        copy = sleep.assign(Subject=sleep["Subject"].astype(str) + f"-{k}",
                            Reaction=sleep["Reaction"] + rng.normal(0, 5, len(sleep)))
        copies.append(copy)
    return pd.concat(copies, ignore_index=True)


def test_replicated_sleepstudy_on_two_processes(client, sleep10):
    # Partitions by blocks of rows: every partition lacks most subjects.
    pieces = _blocks(sleep10, 6)
    ref, fit = _fits("Reaction ~ Days + (Days | Subject)", sleep10, pieces)
    _assert_same_fit(ref, fit)
    assert str(fit.summary()) == str(ref.summary())
    fitted = fit.fittedvalues.compute()
    np.testing.assert_allclose(fitted.loc[ref.fittedvalues.index], ref.fittedvalues, rtol=1e-7)
    np.testing.assert_allclose(fit.resid.compute().sort_index(), ref.resid.sort_index(),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fit.resid_quantiles(),
                               np.quantile(ref.scaled_resid, [0, 0.25, 0.5, 0.75, 1]), rtol=1e-6)


@pytest.mark.parametrize("formula, kwargs", [
    ("Reaction ~ Days + (Days | Subject)", {}),
    ("Reaction ~ t + (1 | Subject)", {}),  # lme4's start from the response's sums
    ("Reaction ~ t + t2 + (1 | Subject)", {"weights": "w"}),  # t2 = 2 t is dropped
])
def test_response_and_predictor_with_large_means_fit_as_in_memory(client, sleep10, formula, kwargs):
    # Reaction + 1e10 and epoch seconds t: each partition's cross products are
    # formed in the frame of its own rows (mixedfit.blocks.Frame), centered
    # and shifted its own way: sorted by day, a partition holds one or two
    # days, and some see t constant.  The sums must be those of all the rows.
    shift = 1e10
    data = sleep10.assign(Reaction=sleep10["Reaction"] + shift, t=1.7e9 + 86400.0 * sleep10["Days"],
                          w=1.0 + sleep10.index % 3)
    data = data.assign(t2=2 * data["t"]).sort_values("Days", kind="stable", ignore_index=True)
    ref, fit = _fits(formula, data, _blocks(data, 6), reml=False, **kwargs)
    _assert_same_fit(ref, fit)
    np.testing.assert_allclose(fit.fixef.iloc[0] - shift, ref.fixef.iloc[0] - shift, rtol=RTOL)
    # and both are the fit of the unshifted response on days (ML: invariant to both changes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        days = mf.mixed(formula.replace("t + t2", "Days").replace("t ", "Days "), sleep10.assign(
            w=1.0 + sleep10.index % 3), reml=False, **kwargs)
    np.testing.assert_allclose(fit.optsummary.fmin, days.optsummary.fmin, rtol=RTOL)
    np.testing.assert_allclose(fit.theta, days.theta, rtol=THETA_RTOL, atol=THETA_RTOL)
    slope = days.fixef.iloc[1] / (86400.0 if "t" in fit.xnames else 1.0)
    np.testing.assert_allclose(fit.fixef.iloc[1], slope, rtol=THETA_RTOL)


def test_crossed_factors_with_a_categorical_fixed_effect(client):
    rng = np.random.default_rng(3)
    n = 3000
    a, b = rng.integers(0, 60, n), rng.integers(0, 25, n)
    data = pd.DataFrame({"x": rng.normal(size=n), "a": a, "b": [f"b{v}" for v in b],
                         "f": rng.choice(["lo", "mid", "hi"], n)})
    data["y"] = (1 + 0.5 * data.x + (data.f == "hi") + rng.normal(0, 1, 60)[a]
                 + rng.normal(0, 0.7, 25)[b] + rng.normal(0, 1, n))
    # Sorted by b: each partition holds a few of b's levels, and maybe not all of f's.
    data = data.sort_values(["b", "f"], ignore_index=True)
    ref, fit = _fits("y ~ x + f + (1|a) + (1|b)", data, _blocks(data, 5))
    _assert_same_fit(ref, fit)


def test_missing_levels_all_missing_rows_and_empty_partitions(client, sleep10):
    data = sleep10.copy()
    data.loc[data.index[:10], "Reaction"] = np.nan  # subject 308-0: 10 rows, all incomplete
    lost = pd.DataFrame({"Reaction": np.nan, "Days": 1.0, "Subject": ["only-in-NA-rows"] * 4})
    all_missing = pd.DataFrame({"Reaction": [np.nan] * 5, "Days": np.nan, "Subject": None})
    whole = pd.concat([data, lost, all_missing], ignore_index=True)
    pieces = [data.iloc[:700], all_missing, data.iloc[700:1300], lost, data.iloc[:0],
              data.iloc[1300:]]
    ref, fit = _fits("Reaction ~ Days + (Days | Subject)", whole, pieces)
    _assert_same_fit(ref, fit)
    assert "only-in-NA-rows" not in fit.ranef()["Subject"].index
    assert "308-0" not in fit.ranef()["Subject"].index


def test_nested_interaction_grouping_factor():
    pastes = mf.load_dataset("Pastes")
    pieces = [pastes.iloc[i::4] for i in range(4)]
    ref, fit = _fits("strength ~ 1 + (1|batch/cask)", pastes, pieces)
    _assert_same_fit(ref, fit, theta_rtol=1e-5)  # a flat optimum (see the module's note)


def test_weights_offset_and_rank_deficiency():
    sleep = mf.load_dataset("sleepstudy")
    rng = np.random.default_rng(1)
    data = sleep.assign(w=rng.uniform(0.5, 2, len(sleep)), o=rng.normal(size=len(sleep)),
                        Days2=2 * sleep["Days"])
    formula = "Reaction ~ Days + Days2 + (1 | Subject)"
    with pytest.warns(RankDeficiencyWarning):
        fit = mf.mixed(formula, dd.from_pandas(data, npartitions=3), weights="w", offset="o")
    ref = mf.mixed(formula, data, weights="w", offset="o")
    _assert_same_fit(ref, fit)
    assert fit.fit_warnings == ref.fit_warnings
    np.testing.assert_allclose(fit.predict().compute(), ref.predict(), rtol=1e-7)


def test_grouping_values_that_print_alike_are_one_level_as_in_memory():
    sleep = mf.load_dataset("sleepstudy")
    subject = sleep["Subject"].cat.codes.to_numpy()
    # 0.1 * 3 is 0.30000000000000004, which R's factor() labels "0.3" as it does 0.3
    tenths = np.where(np.arange(len(sleep)) % 2, 0.1 * subject, np.round(0.1 * subject, 10))
    data = sleep.assign(g=tenths, h=subject % 3)
    for formula in ["Reaction ~ Days + (1 | g)", "Reaction ~ Days + (1 | g:h)"]:
        ref = mf.mixed(formula, data)
        fit = mf.mixed(formula, dd.from_pandas(data, npartitions=3))
        _assert_same_fit(ref, fit)
        group = next(iter(ref.ranef()))
        assert list(fit.ranef()[group].index) == list(ref.ranef()[group].index)


def test_badly_scaled_predictors_warn_and_summarise_as_in_memory():
    sleep = mf.load_dataset("sleepstudy").assign(Dbig=lambda d: d["Days"] * 1e6)
    formula = "Reaction ~ Dbig + (1 | Subject)"
    with pytest.warns(ScaleWarning):
        fit = mf.mixed(formula, dd.from_pandas(sleep, npartitions=3))
    with pytest.warns(ScaleWarning):
        ref = mf.mixed(formula, sleep)
    assert fit.fit_warnings == ref.fit_warnings == [SCALE_MESSAGE]  # lme4's words: test_errors.py


def test_parquet_files_and_predictions_on_new_dask_data(tmp_path):
    sleep = mf.load_dataset("sleepstudy")
    for k in range(3):
        sleep.iloc[k::3].to_parquet(tmp_path / f"part{k}.parquet")
    fit = mixed_parquet("Reaction ~ Days + (Days | Subject)", str(tmp_path / "*.parquet"))
    ref = mf.mixed("Reaction ~ Days + (Days | Subject)", sleep)
    _assert_same_fit(ref, fit)
    new = pd.DataFrame({"Days": [0.0, 9.0], "Subject": ["308", "999"]})
    expected = ref.predict(new, allow_new_levels=True)
    lazy = fit.predict(dd.from_pandas(new, npartitions=1), allow_new_levels=True)
    np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-9)
    np.testing.assert_allclose(fit.predict(new, allow_new_levels=True), expected, rtol=1e-9)


def test_what_partitions_cannot_do_is_refused():
    sleep = dd.from_pandas(mf.load_dataset("sleepstudy"), npartitions=2)
    with pytest.raises(ModelSpecError, match="scale"):
        mf.mixed("Reaction ~ scale(Days) + (1 | Subject)", sleep)
    with pytest.raises(ModelSpecError, match="columns or interactions"):
        mf.mixed("Reaction ~ Days + (1 | factor(Subject))", sleep)
    with pytest.raises(DataError, match="name a column"):
        mf.mixed("Reaction ~ Days + (1 | Subject)", sleep, weights=np.ones(180))
    fit = mf.mixed("Reaction ~ Days + (1 | Subject)", sleep)
    with pytest.raises(NotImplementedError):
        fit.simulate()
    with pytest.raises(NotImplementedError):
        fit.confint()  # profile intervals refit from the rows
    assert fit.confint(method="wald").shape == (4, 2)


def test_anova_refits_reml_fits_from_the_sums(client):
    # lme4's anova refits REML fits by ML; from Dask data that must use the summed cross products.
    sleep = mf.load_dataset("sleepstudy")
    formulas = ("Reaction ~ Days + (Days || Subject)", "Reaction ~ Days + (Days | Subject)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = mf.anova(*[mf.mixed(f, _partitioned(_blocks(sleep, 3))) for f in formulas])
        ref = mf.anova(*[mf.mixed(f, sleep) for f in formulas])
    np.testing.assert_allclose(ours["deviance"].to_numpy(float), ref["deviance"].to_numpy(float), rtol=RTOL)
    np.testing.assert_allclose(ours["Chisq"].to_numpy(float)[1], ref["Chisq"].to_numpy(float)[1], rtol=1e-6)


# -- files and partitions that cannot make one table -------------------------------

SLEEP_FORMULA = "Reaction ~ Days + (1 | Subject)"


def _no_pass_over_the_data(monkeypatch) -> None:
    """Make any pass over the data fail the test: the refusal must come first."""
    from mixedfit import dask_opening, distributed

    def refuse(value):
        raise AssertionError("a pass over the data ran before the refusal")

    for module in (dask_opening, distributed):  # the levels pass, the sums
        monkeypatch.setattr(module, "_compute", refuse)


def _sleep_files(folder, odd: int, spoil) -> str:
    """sleepstudy in four parquet files, file ``odd`` spoilt by ``spoil(path, rows)``; the glob."""
    sleep = mf.load_dataset("sleepstudy")
    for k in range(4):
        path, rows = folder / f"part{k}.parquet", sleep.iloc[k::4].reset_index(drop=True)
        if k == odd:
            spoil(path, rows)
        else:
            rows.to_parquet(path)
    return str(folder / "*.parquet")


def _garbage(path, rows) -> None:
    path.write_bytes(b"not a parquet file\n" * 20)


def _empty(path, rows) -> None:
    path.write_bytes(b"")


def _truncated(path, rows) -> None:
    rows.to_parquet(path)
    path.write_bytes(path.read_bytes()[:-100])


@pytest.mark.parametrize("odd", [0, 3])  # the first file is the one dask reads its columns from
@pytest.mark.parametrize("spoil", [_garbage, _empty, _truncated])
def test_an_unreadable_parquet_file_is_named(tmp_path, monkeypatch, spoil, odd):
    glob = _sleep_files(tmp_path, odd, spoil)
    _no_pass_over_the_data(monkeypatch)
    with pytest.raises(DataError, match=rf"part{odd}\.parquet is not a readable parquet file"):
        mixed_parquet(SLEEP_FORMULA, glob)
    if odd:  # dask reads the first file's footer only: the others fail in mf.mixed
        with pytest.raises(DataError, match=rf"part{odd}\.parquet is not a readable parquet file"):
            mf.mixed(SLEEP_FORMULA, dd.read_parquet(glob))


def _subject_as_int(path, rows) -> None:
    rows.assign(Subject=rows["Subject"].astype(int)).to_parquet(path)


def _days_as_text(path, rows) -> None:
    # Once refused after the rows were read: each partition's text column became a
    # factor of one level per row, a dense rows × rows fixed-effects matrix (23 GB).
    rows.assign(Days=rows["Days"].astype(str)).to_parquet(path)


def _without_days(path, rows) -> None:
    rows.drop(columns="Days").to_parquet(path)


@pytest.mark.parametrize("spoil, message", [
    (_subject_as_int, r"column 'Subject' is int64 in \S*part2\.parquet but .* in 3 other files"),
    (_days_as_text, r"column 'Days' is \S*string in \S*part2\.parquet but double in 3 other files"),
    (_without_days, r"column 'Days' is missing from \S*part2\.parquet"),
])
def test_parquet_files_that_disagree_are_refused_before_reading_rows(tmp_path, monkeypatch, spoil,
                                                                     message):
    glob = _sleep_files(tmp_path, 2, spoil)
    _no_pass_over_the_data(monkeypatch)
    with pytest.raises(DataError, match=message):
        mixed_parquet(SLEEP_FORMULA, glob)
    with pytest.raises(DataError, match=message):
        mf.mixed(SLEEP_FORMULA, dd.read_parquet(glob))


def test_partitions_of_different_kinds_are_refused_after_the_levels_pass(monkeypatch):
    # dd.concat makes such a column object, and each partition holds one kind of values.
    from mixedfit import distributed as module

    def no_sums(*args):
        raise AssertionError("the sums pass ran")

    monkeypatch.setattr(module, "_partition_sums", no_sums)
    sleep = mf.load_dataset("sleepstudy").assign(Subject=lambda d: d["Subject"].astype(str))
    pieces = _blocks(sleep, 3)
    odd = pieces[:1] + [pieces[1].assign(Days=pieces[1]["Days"].astype(str))] + pieces[2:]
    with pytest.raises(DataError, match="column 'Days' holds text in partition 1 but numbers in "
                                        "partition 0"):
        mf.mixed(SLEEP_FORMULA, _partitioned(odd))
    odd = pieces[:2] + [pieces[2].assign(Subject=pieces[2]["Subject"].astype(int))]
    with pytest.raises(DataError, match="column 'Subject' holds numbers in partition 2 but text in "
                                        "partition 0"):
        mf.mixed(SLEEP_FORMULA, _partitioned(odd))


def test_summary_and_rows_of_a_dask_fit_read_its_own_attributes(client):
    # The summary's fit is a MixedResults at the same optimum whose scaled residuals are
    # their exact quantiles: no attribute is forwarded by __getattr__.  The partitions
    # read β, b and σ (two terms on one grouping factor: b split by term).
    sleep = mf.load_dataset("sleepstudy")
    formula = "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"
    ref, fit = _fits(formula, sleep, _blocks(sleep, 3))
    summary = fit.summary()
    assert isinstance(summary.fit, mf.MixedResults)
    assert not any("__getattr__" in vars(cls) for cls in type(summary.fit).__mro__)
    assert not any("__getattr__" in vars(cls) for cls in type(fit).__mro__)
    np.testing.assert_allclose(summary.fit.scaled_resid, fit.resid_quantiles(), rtol=0)
    np.testing.assert_allclose(fit.resid_quantiles(),
                               np.quantile(ref.scaled_resid, [0, 0.25, 0.5, 0.75, 1]), rtol=1e-6)
    assert str(summary) == str(ref.summary())
    assert str(fit.summary(ddf="Satterthwaite")) == str(ref.summary(ddf="Satterthwaite"))
    assert fit._repr_html_() == ref._repr_html_()
    for re_form in [None, "~0", "~(1 | Subject)"]:
        np.testing.assert_allclose(fit.predict(re_form=re_form).compute().sort_index(),
                                   ref.predict(re_form=re_form).sort_index(), rtol=1e-7)
    scaled = pd.Series(ref.scaled_resid, index=ref.resid.index)
    np.testing.assert_allclose(fit.scaled_resid.compute().sort_index(), scaled.sort_index(),
                               rtol=1e-6, atol=1e-6)
