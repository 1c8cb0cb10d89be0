"""build_design against lme4 (R's model.matrix rules: tests/formula/test_model_matrix.py).

Expected values come from ``tests/lme4/formula_cases.R`` (R 4.2, lme4 1.1-31):
``lme4::lFormula()`` on the bundled data sets (fixed and random-effects names,
matrices, levels, lme4's term order, rows used, weights and offsets).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixedfit.datasets import load_dataset
from mixedfit.errors import (DataError, FormulaError, MixedFitWarning, ModelSpecError,
                             RankDeficiencyWarning, ScaleWarning)
from mixedfit.terms import build_design

FIXTURE = Path(__file__).parent / "lme4" / "fixtures" / "formula_cases.json"
CASES = json.loads(FIXTURE.read_text(encoding="utf-8"))
DESIGNS = {case["id"]: case for case in CASES["designs"]}


def _matrix(values) -> np.ndarray:
    return np.array(values, dtype=float).reshape(len(values), -1)


def _assert_summary(actual: np.ndarray, expected: dict) -> None:
    """Compare a matrix with R's column sums, cross product and first rows."""
    np.testing.assert_allclose(actual.sum(axis=0), expected["colsums"], rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(actual.T @ actual, _matrix(expected["crossprod"]),
                               rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(actual[: len(expected["head"])], _matrix(expected["head"]),
                               rtol=1e-12, atol=1e-12)


# ---- lFormula on the bundled data sets ---------------------------------------

def _case_data(case: dict) -> pd.DataFrame:
    data = load_dataset(case["data"])
    for name, values in (case.get("columns") or {}).items():
        data[name] = np.array([np.nan if v is None else v for v in values], dtype=float)
    return data


def _build(case: dict):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        design = build_design(case["formula"], _case_data(case), weights=case.get("weights"),
                              offset=case.get("offset"))
    return design, [w for w in caught if issubclass(w.category, RankDeficiencyWarning)]


@pytest.mark.parametrize("case_id", DESIGNS)
def test_design_fixed_part_matches_lme4(case_id):
    case = DESIGNS[case_id]
    design, rank_warnings = _build(case)
    assert design.formula == case["deparse"]
    assert design.response == case["response"]
    assert design.xnames == case["xnames"]
    assert design.dropped_xnames == case["dropped"]
    assert [str(w.message) + "\n" for w in rank_warnings] == case["messages"]
    _assert_summary(design.X, case["X"])
    assert design.nobs == case["nobs"]
    np.testing.assert_allclose(design.y.sum(), case["y"]["sum"], rtol=1e-12)
    np.testing.assert_allclose(design.y[:6], case["y"]["head"], rtol=1e-12)
    assert design.rows.tolist() == case["rows"]
    assert design.n_dropped == len(load_dataset(case["data"])) - case["nobs"]


@pytest.mark.parametrize("case_id", DESIGNS)
def test_design_random_terms_match_lme4(case_id):
    case = DESIGNS[case_id]
    design, _ = _build(case)
    assert [t.label for t in design.terms] == [t["label"] for t in case["terms"]]
    for term, expected in zip(design.terms, case["terms"]):
        assert term.group == expected["group"]
        assert term.cnames == expected["cnames"]
        assert term.levels == expected["levels"]
        assert term.codes.dtype == np.intp
        np.testing.assert_array_equal(term.codes, expected["codes"])
        _assert_summary(term.z, expected["z"])


@pytest.mark.parametrize("case_id", [c for c in DESIGNS if "offset_values" in DESIGNS[c]])
def test_design_weights_and_offset_match_lme4(case_id):
    case = DESIGNS[case_id]
    design, _ = _build(case)
    if "prior_weights" in case:
        np.testing.assert_allclose(design.weights, case["prior_weights"], rtol=1e-12)
    else:
        assert design.weights is None
    np.testing.assert_allclose(design.offset, case["offset_values"], rtol=1e-12)


def test_uncorrelated_pieces_are_marked():
    design, _ = _build(DESIGNS["sleepstudy_uncorr"])
    assert [t.correlated for t in design.terms] == [False, False]
    design, _ = _build(DESIGNS["sleepstudy_corr"])
    assert design.terms[0].correlated


# ---- behaviour that R shows as errors or that is specific to Python input ----

@pytest.fixture
def sleep() -> pd.DataFrame:
    return load_dataset("sleepstudy")


def test_data_frame_is_not_modified(sleep):
    before = sleep.copy()
    sleep.loc[3, "Reaction"] = np.nan
    snapshot = sleep.copy()
    build_design("log(Reaction) ~ scale(Days) + (Days || Subject)", sleep)
    pd.testing.assert_frame_equal(sleep, snapshot)
    assert not before.equals(snapshot)


def test_dict_of_arrays_is_accepted(sleep):
    as_dict = {name: sleep[name].to_numpy() for name in sleep.columns}
    design = build_design("Reaction ~ Days + (1 | Subject)", as_dict)
    reference = build_design("Reaction ~ Days + (1 | Subject)", sleep)
    np.testing.assert_array_equal(design.X, reference.X)
    # Strings sort as R's factor() sorts them; these are numbers written as text.
    assert design.terms[0].levels == reference.terms[0].levels


def test_na_raise_names_columns_and_counts(sleep):
    sleep.loc[[1, 2], "Reaction"] = np.nan
    sleep.loc[5, "Days"] = np.nan
    with pytest.raises(DataError, match=r"'Reaction' \(2 rows\), 'Days' \(1 row\)"):
        build_design("Reaction ~ Days + (1 | Subject)", sleep, na_action="raise")


def test_na_in_unused_column_is_ignored(sleep):
    sleep["other"] = np.nan
    assert build_design("Reaction ~ Days + (1 | Subject)", sleep).n_dropped == 0


def test_unknown_column_suggests_closest(sleep):
    with pytest.raises(DataError, match="'Dayz' not found.*did you mean 'Days'") as info:
        build_design("Reaction ~ Dayz + (1 | Subject)", sleep)
    assert "^^^^" in str(info.value)


def test_unknown_function_is_a_formula_error(sleep):
    with pytest.raises(FormulaError, match="unknown function 'lg'"):
        build_design("Reaction ~ lg(Days) + (1 | Subject)", sleep)


def test_negative_weights_are_refused_and_zero_weights_left_out(sleep):
    weights = np.ones(len(sleep))
    weights[4] = 0.0
    with pytest.warns(MixedFitWarning, match="1 row of zero weight left out"):
        design = build_design("Reaction ~ Days + (1 | Subject)", sleep, weights=weights)
    assert (design.nobs, design.n_dropped, 4 in design.rows) == (179, 1, False)
    weights[4] = -1.0
    with pytest.raises(DataError, match="1 negative weight"):
        build_design("Reaction ~ Days + (1 | Subject)", sleep, weights=weights)


def test_weights_of_wrong_length_are_refused(sleep):
    with pytest.raises(DataError, match="180 values"):
        build_design("Reaction ~ Days + (1 | Subject)", sleep, weights=np.ones(10))


def test_infinite_values_are_refused(sleep):
    sleep.loc[0, "Days"] = np.inf
    with pytest.raises(DataError, match="infinite"):
        build_design("Reaction ~ Days + (1 | Subject)", sleep)


def test_string_and_integer_grouping_columns_work(sleep):
    sleep["code"] = sleep["Subject"].astype(str).astype(int)
    sleep["name"] = "s" + sleep["Subject"].astype(str)
    by_int = build_design("Reaction ~ 1 + (1 | code)", sleep).terms[0]
    by_str = build_design("Reaction ~ 1 + (1 | name)", sleep).terms[0]
    assert by_int.levels == list(sleep["Subject"].cat.categories)
    np.testing.assert_array_equal(by_int.codes, by_str.codes)


def test_unused_categories_of_a_grouping_factor_are_dropped(sleep):
    sleep["Subject"] = sleep["Subject"].cat.add_categories(["999"])
    assert "999" not in build_design("Reaction ~ 1 + (1 | Subject)", sleep).terms[0].levels


def test_backquoted_column_names(sleep):
    renamed = sleep.rename(columns={"Days": "days since"})
    design = build_design("Reaction ~ `days since` + (1 | Subject)", renamed)
    assert design.xnames == ["(Intercept)", "`days since`"]


def test_grouping_factor_with_one_level_stops_as_lme4(sleep):
    sleep["one"] = "a"
    with pytest.raises(ModelSpecError, match="> 1 sampled level"):
        build_design("Reaction ~ 1 + (1 | one)", sleep)


def test_more_random_effects_than_observations_stops_as_lme4(sleep):
    sleep["pair"] = np.arange(len(sleep)) // 2  # 90 levels, 2 effects each: q = n
    with pytest.raises(ModelSpecError, match=r"\(=180\) <= number of random effects \(=180\)"):
        build_design("Reaction ~ 1 + (Days | pair)", sleep)


def test_no_random_effects_is_an_error(sleep):
    with pytest.raises(FormulaError, match="no random effects"):
        build_design("Reaction ~ Days", sleep)


def test_predictors_on_different_scales_warn(sleep):
    sleep["big"] = sleep["Days"] * 1e5
    with pytest.warns(ScaleWarning, match="very different scales"):
        build_design("Reaction ~ big + (1 | Subject)", sleep)


def _rank_test_matrices():
    rng = np.random.default_rng(11)
    base = rng.normal(size=(50, 4))
    for case in DESIGNS.values():
        yield case["id"], _build(case)[0].X
    yield "collinear", np.column_stack([base, base[:, 0] - 2 * base[:, 2]])
    yield "near threshold", np.column_stack([base, base[:, 1] + 1e-6 * rng.normal(size=50)])
    yield "zero column", np.column_stack([base[:, :2], np.zeros(50), base[:, 2:]])
    yield "wide", rng.normal(size=(3, 5))


@pytest.mark.parametrize("name, X", list(_rank_test_matrices()), ids=lambda v: v if isinstance(v, str) else "")
def test_rank_shortcut_agrees_with_the_dqrdc2_port(name, X):
    from mixedfit.terms import RANK_TOLERANCE, _dqrdc2, _pivoted_qr_rank

    rank, pivot = _pivoted_qr_rank(X, RANK_TOLERANCE)
    port_rank, port_pivot = _dqrdc2(X, RANK_TOLERANCE)
    assert rank == port_rank
    assert pivot.tolist() == port_pivot.tolist()


@pytest.mark.parametrize("name, X", list(_rank_test_matrices()), ids=lambda v: v if isinstance(v, str) else "")
def test_rank_on_the_r_factor_agrees_with_the_rank_on_x(name, X):
    # build_design decides X's rank on R of [X, y]: orthogonal steps keep every inner product of X's columns
    from mixedfit.terms import RANK_TOLERANCE, _pivoted_qr_rank, tall_r_factor

    y = np.random.default_rng(3).normal(size=X.shape[0])
    r = tall_r_factor(np.column_stack([X, y]))
    rank, pivot = _pivoted_qr_rank(X, RANK_TOLERANCE)
    on_r, pivot_on_r = _pivoted_qr_rank(r[:, : X.shape[1]], RANK_TOLERANCE)
    assert (on_r, pivot_on_r.tolist()) == (rank, pivot.tolist())


def _scale_test_matrices():
    rng = np.random.default_rng(5)
    n = 20_000  # more rows than a block of tall_r_factor: R comes from the blocks' Rs
    ones = np.ones(n)
    yield "spread", np.column_stack([ones, rng.normal(size=n), 1e4 * rng.normal(size=n)])
    yield "epoch seconds", np.column_stack([ones, 1.7e9 + 100.0 * rng.normal(size=n)])
    yield "binary", np.column_stack([ones, rng.integers(0, 2, n).astype(float), rng.normal(size=n)])
    yield "constant", np.column_stack([ones, np.full(n, 3.0)])
    yield "few rows", np.column_stack([np.ones(3), [1.0, 5.0, 2.0]])


@pytest.mark.parametrize("name, X", list(_scale_test_matrices()), ids=lambda v: v if isinstance(v, str) else "")
def test_scales_from_the_r_factor_are_the_columns_sds(name, X):
    from mixedfit.terms import _check_scale, _column_sds, tall_r_factor

    r = tall_r_factor(np.column_stack([X, np.arange(X.shape[0], dtype=float)]))
    sd = X.std(axis=0, ddof=1)
    assert np.allclose(_column_sds(X, r), sd, rtol=1e-9, atol=1e-12 * np.abs(X).max())
    with warnings.catch_warnings(record=True) as from_x:
        warnings.simplefilter("always")
        decided_on_x = _check_scale(X)
    with warnings.catch_warnings(record=True) as from_r:
        warnings.simplefilter("always")
        assert _check_scale(X, r) == decided_on_x
    assert len(from_r) == len(from_x)
