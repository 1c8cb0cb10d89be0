"""Bad inputs get a mixedfit error that says what is wrong; hard data still fit.

Each bad input must raise exactly the documented class (never a numpy,
pandas, formulaic or NLopt exception) with a message naming the column,
level or formula position (a caret under it).  Where lme4 refuses the same
input, its own words (``tests/lme4/hard_cases.R`` records them) appear in the
message.  The hard fits are lme4's hard cases: mixedfit must reach lme4's
optimum or a better one (objective at most 1e-9 above lme4's, relative).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import mixedfit as mf
from mixedfit.theta import lower_template
from mixedfit.errors import (ConvergenceWarning, DataError, FormulaError, MixedFitWarning,
                             ModelSpecError, RankDeficiencyWarning, ScaleWarning,
                             SingularFitWarning)

HARD = json.loads((Path(__file__).parent / "lme4" / "fixtures" / "hard_cases.json")
                  .read_text(encoding="utf-8"))
LME4_ERRORS = HARD["errors"]
# Objective never above lme4's by more than this, relative: rounding-level path
# differences stay near 1e-12, and the optimizer polishes until the derivatives
# predict less than 1e-10 (relative) more to gain (model._gap_tolerance).
OBJ_REL = 1e-9
FORMULA = "Reaction ~ Days + (1 | Subject)"


def sleep(**columns: Any) -> pd.DataFrame:
    """A fresh sleepstudy with extra columns (a callable gets the frame)."""
    data = mf.load_dataset("sleepstudy")
    for name, value in columns.items():
        data[name] = value(data) if callable(value) else value
    return data


def with_value(column: str, rows: list[int], value: Any) -> Callable[[], pd.DataFrame]:
    def make() -> pd.DataFrame:
        data = sleep()
        if value is None:
            data[column] = data[column].astype(object)
        data.loc[rows, column] = value
        return data
    return make


@dataclass
class Bad:
    """One bad input: what is passed, the exact error class and what its message must say."""

    id: str
    formula: Any
    error: type
    words: list[str]
    data: Callable[[], Any] = sleep
    kwargs: dict = field(default_factory=dict)
    caret: bool = False  # the message points into the formula
    lme4: str | None = None  # key of lme4's own message in hard_cases.json


BAD = [
    # -- the formula ----------------------------------------------------------
    Bad("unclosed parenthesis", "Reaction ~ Days + (Days | Subject", FormulaError,
        ["unbalanced parentheses", "never closed"], caret=True),
    Bad("unopened parenthesis", "Reaction ~ Days + Days | Subject)", FormulaError,
        ["unbalanced parentheses", r"this '\)' has no matching"], caret=True),
    Bad("bar outside parentheses", "Reaction ~ Days + Days | Subject", FormulaError,
        ["must be in parentheses", r"\(Days \+ Days \| Subject\)"], caret=True),
    Bad("bar inside a sum", "Reaction ~ (Days + 1 | Subject) * Days", FormulaError,
        ["in parentheses and added with '\\+'"], caret=True),
    Bad("empty random term", "Reaction ~ Days + ( | Subject)", FormulaError,
        ["nothing on the left of '\\|'"], caret=True),
    Bad("empty grouping factor", "Reaction ~ Days + (1 | )", FormulaError,
        ["nothing on the right of '\\|'"], caret=True),
    Bad("no random effects", "Reaction ~ Days", FormulaError,
        ["no random effects terms specified"], caret=True, lme4="no_random_effects"),
    Bad("no tilde", "Reaction + (1 | Subject)", FormulaError, ["needs a '~'"], caret=True),
    Bad("two tildes", "Reaction ~ Days ~ (1 | Subject)", FormulaError,
        ["only one '~'"], caret=True),
    Bad("no response", "~ Days + (1 | Subject)", FormulaError, ["no response"], caret=True),
    Bad("empty formula", "  ", FormulaError, ["empty formula"]),
    Bad("formula not a string", 42, FormulaError, ["must be a string", "not int"]),
    Bad("unsupported character", "Reaction ~ Days + (1 | Subject) + d$x", FormulaError,
        ["'\\$' is not supported"], caret=True),
    Bad("unknown function", "Reaction ~ lg(Days) + (1 | Subject)", FormulaError,
        ["unknown function 'lg'"], caret=True),
    Bad("parentheses nested 500 deep", "Reaction ~ " + "(" * 500 + "Days" + ")" * 500
        + " + (1 | Subject)", FormulaError, ["nests parentheses, calls or signs more than 100 deep"],
        caret=True),
    Bad("signs nested 500 deep", "Reaction ~ " + "-" * 500 + "Days + (1 | Subject)",
        FormulaError, ["more than 100 deep"], caret=True),
    Bad("number as a term", "Reaction ~ Days + (2 | Subject)", FormulaError,
        ["only 0 and 1 may appear"], caret=True),
    Bad("random term without columns", "Reaction ~ Days + (0 | Subject)", FormulaError,
        ["random-effects term \\(0 \\| Subject\\) has no columns"], caret=True),
    Bad("spaced name without backticks", "Reaction ~ days slept + (1 | Subject)", FormulaError,
        ["unexpected 'slept'", "backticks: `days slept`"], caret=True,
        data=lambda: sleep().rename(columns={"Days": "days slept"})),
    # -- columns --------------------------------------------------------------
    Bad("unknown column", "Reaction ~ Dayz + (1 | Subject)", DataError,
        ["column 'Dayz' not found", "did you mean 'Days'"], caret=True),
    Bad("unknown grouping column", "Reaction ~ Days + (1 | Subjct)", DataError,
        ["column 'Subjct' not found", "did you mean 'Subject'"], caret=True),
    Bad("duplicated column name", FORMULA, DataError,
        ["more than one column named 'Days'"], caret=True,
        data=lambda: pd.concat([sleep(), sleep()[["Days"]]], axis=1)),
    Bad("datetime column", "Reaction ~ when + (1 | Subject)", DataError,
        ["column 'when'", "datetime64"],
        data=lambda: sleep(when=lambda d: pd.Timestamp("2020-01-01")
                           + pd.to_timedelta(d["Days"], unit="D"))),
    Bad("bad argument of a function", "Reaction ~ scale(Days, middle = 1) + (1 | Subject)",
        DataError, ["cannot evaluate 'scale\\(Days, middle = 1\\)'", "middle"], caret=True),
    Bad("unknown contrasts", "Reaction ~ C(Subject, 'nope') + (1 | Subject)", DataError,
        ["unknown contrasts 'nope'", "contr.sum"], caret=True),
    Bad("arithmetic on a factor", "Reaction ~ I(Subject + 1) + (1 | Subject)", DataError,
        ["'I\\(Subject \\+ 1\\)'", "'\\+' is not meaningful for a factor"], caret=True),
    Bad("factor compared by order", "Reaction ~ I(Subject > 3) + (1 | Subject)", DataError,
        ["'>' is not meaningful for a factor"], caret=True),
    Bad("polynomial of a factor", "Reaction ~ poly(Subject, 2) + (1 | Subject)", DataError,
        ["a factor is not numeric"], caret=True),
    Bad("summary instead of a column", "Reaction ~ mean(Days) + (1 | Subject)", DataError,
        ["'mean\\(Days\\)'", "1 value\\(s\\) but the data have 180 rows"], caret=True),
    Bad("matrix as grouping factor", "Reaction ~ Days + (1 | poly(Days, 2))", DataError,
        ["grouping factor 'poly\\(Days, 2\\)'", "single column"], caret=True),
    Bad("fixed factor with one level", "Reaction ~ f + (1 | Subject)", DataError,
        ["'f' has only 1 level", "2 or more levels"], data=lambda: sleep(f="a")),
    # -- the response ---------------------------------------------------------
    Bad("text response", "text ~ Days + (1 | Subject)", DataError,
        ["response 'text' is not numeric"], lme4="response_not_numeric",
        data=lambda: sleep(text=lambda d: d["Reaction"].astype(str))),
    Bad("constant response", "flat ~ Days + (1 | Subject)", DataError,
        ["response 'flat' is constant"], data=lambda: sleep(flat=5.0)),
    Bad("response fitted exactly", "line ~ Days + (1 | Subject)", DataError,
        ["response 'line' is an exact linear function"],
        data=lambda: sleep(line=lambda d: 3 + 2 * d["Days"])),
    Bad("infinite response", FORMULA, DataError,
        ["response 'Reaction' has infinite values in 1 row", r"index 3\b"],
        data=with_value("Reaction", [3], np.inf)),
    Bad("infinite predictor", FORMULA, DataError,
        ["fixed-effects column 'Days' has infinite values in 2 rows", "index 5, 9"],
        data=with_value("Days", [5, 9], -np.inf)),
    Bad("log of zero", "Reaction ~ log(Days) + (1 | Subject)", DataError,
        ["column 'log\\(Days\\)' has infinite values in 18 rows"]),
    Bad("infinite random slope", "Reaction ~ 1 + (Days | Subject)", DataError,
        ["random-effects term \\(Days \\| Subject\\) column 'Days'", "infinite"],
        data=with_value("Days", [7], np.inf)),
    Bad("infinite offset", FORMULA, DataError, ["offset has infinite values in 1 row"],
        kwargs={"offset": np.r_[np.inf, np.zeros(179)]}),
    # -- grouping factors -----------------------------------------------------
    Bad("grouping factor with one level", "Reaction ~ Days + (1 | one)", ModelSpecError,
        ["problems: one"], lme4="one_level", data=lambda: sleep(one="a")),
    Bad("as many levels as observations", "Reaction ~ Days + (1 | id)", ModelSpecError,
        [], lme4="levels_equal_n", data=lambda: sleep(id=lambda d: np.arange(len(d)))),
    Bad("more random effects than observations", "Reaction ~ Days + (Days | pair)",
        ModelSpecError, [], lme4="too_many_random_effects",
        data=lambda: sleep(pair=lambda d: np.arange(len(d)) // 2)),
    # -- missing values and rows ----------------------------------------------
    Bad("missing response, na_action raise", FORMULA, DataError,
        ["missing values in 'Reaction' \\(2 rows\\)", "na_action='omit'"],
        kwargs={"na_action": "raise"}, data=with_value("Reaction", [1, 2], np.nan)),
    Bad("missing grouping level, na_action raise", FORMULA, DataError,
        ["missing values in 'Subject' \\(1 row\\)"], kwargs={"na_action": "raise"},
        data=with_value("Subject", [4], None)),
    Bad("every row dropped", "gone ~ Days + (1 | Subject)", DataError,
        ["every row has a missing value", "'gone' \\(180 rows\\)"], lme4="all_rows_dropped",
        data=lambda: sleep(gone=np.nan)),
    Bad("empty DataFrame", FORMULA, DataError, ["the data have no rows"], lme4="empty_data",
        data=lambda: sleep().iloc[:0]),
    Bad("data not a table", FORMULA, DataError, ["DataFrame or a dict", "not list"],
        data=lambda: [1, 2, 3]),
    Bad("dict of unequal columns", FORMULA, DataError,
        ["different lengths", "'Days' \\(2\\)"],
        data=lambda: {"Reaction": [1.0, 2.0, 3.0], "Days": [1, 2], "Subject": ["a", "b", "c"]}),
    Bad("dict of single values", FORMULA, DataError, ["dict of single values \\(one row\\)"],
        data=lambda: {"Reaction": 250.0, "Days": 2, "Subject": "308"}),
    Bad("dict with a 2-D column", FORMULA, DataError,
        ["column 'Days' \\(shape \\(180, 2\\)\\)", "more than one dimension"],
        data=lambda: {"Reaction": sleep()["Reaction"].to_numpy(), "Days": np.ones((180, 2)),
                      "Subject": sleep()["Subject"].to_numpy()}),
    # -- weights and offset ---------------------------------------------------
    Bad("negative weight", FORMULA, DataError, ["1 negative weight", "index 4"],
        lme4="negative_weights", kwargs={"weights": np.where(np.arange(180) == 4, -1.0, 1.0)}),
    Bad("all weights zero", FORMULA, DataError, ["every row has a zero weight"],
        kwargs={"weights": np.zeros(180)}),
    Bad("weights of the wrong length", FORMULA, DataError, ["180 values", "shape \\(10,\\)"],
        kwargs={"weights": np.ones(10)}),
    Bad("text weights", FORMULA, DataError, ["weights must be a column name or numbers"],
        kwargs={"weights": ["heavy"] * 180}),
    Bad("weights column of categories", FORMULA, DataError,
        ["weights column 'Subject' is not numeric"], kwargs={"weights": "Subject"}),
    Bad("infinite weight", FORMULA, DataError, ["weights argument has infinite values"],
        kwargs={"weights": np.r_[np.inf, np.ones(179)]}),
    Bad("offset of the wrong length", FORMULA, DataError, ["offset must be", "180 values"],
        kwargs={"offset": np.ones(3)}),
    Bad("weights Series of other rows", FORMULA, DataError,
        ["weights is a pandas Series whose index does not match the rows of the data",
         "180 labels of its index \\(1000, 1001, 1002, 1003, 1004, ...\\) are not among",
         "to_numpy"],
        kwargs={"weights": pd.Series(np.ones(180), index=np.arange(1000, 1180))}),
    Bad("offset Series of fewer rows", FORMULA, DataError,
        ["offset is a pandas Series whose index does not match", "90 labels for 180 rows"],
        kwargs={"offset": pd.Series(np.ones(90), index=np.arange(0, 180, 2))}),
    # -- options --------------------------------------------------------------
    Bad("unknown na_action", FORMULA, ModelSpecError, ["na_action must be 'omit' or 'raise'"],
        kwargs={"na_action": "drop"}),
    Bad("reml as text", FORMULA, ModelSpecError, ["reml must be True or False", "'no'"],
        kwargs={"reml": "no"}),
    Bad("start of the wrong length", "Reaction ~ Days + (Days | Subject)", ModelSpecError,
        ["start has 2"], lme4="start_length", kwargs={"start": [1.0, 2.0]}),
    Bad("negative start", "Reaction ~ Days + (Days | Subject)", ModelSpecError,
        ["diagonal of θ >= 0"], kwargs={"start": [-1.0, 0.0, 1.0]}),
    Bad("maxeval zero", FORMULA, ModelSpecError, ["maxeval must be a positive whole number"],
        kwargs={"maxeval": 0}),
    Bad("maxeval fractional", FORMULA, ModelSpecError, ["maxeval", "2.5"],
        kwargs={"maxeval": 2.5}),
]


def test_at_least_forty_bad_inputs():
    assert len({case.id for case in BAD}) == len(BAD) >= 40


@pytest.mark.parametrize("case", BAD, ids=lambda case: case.id)
def test_bad_input_gets_a_clear_error(case: Bad):
    data = case.data()
    with pytest.raises(case.error) as info:
        mf.mixed(case.formula, data, **case.kwargs)
    assert type(info.value) is case.error
    message = str(info.value)
    for words in case.words:
        assert re.search(words, message), f"{words!r} not in {message!r}"
    assert "RFactor" not in message  # no internal names
    if case.lme4 is not None:
        assert LME4_ERRORS[case.lme4].lower() in message.lower()
    if case.caret:
        line, carets = message.splitlines()[-2:]
        assert line.strip() == case.formula.strip() and carets.strip().strip("^") == ""


def test_errors_are_raised_without_a_chained_low_level_traceback():
    """A wrapped numpy/pandas/formulaic failure does not show its traceback."""
    with pytest.raises(DataError) as info:
        mf.mixed("Reaction ~ scale(Days, middle = 1) + (1 | Subject)", sleep())
    assert info.value.__cause__ is None and info.value.__suppress_context__


# -- inputs that are hard but fit -----------------------------------------------

def fit_quietly(*args, **kwargs) -> mf.MixedResults:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixedFitWarning)
        return mf.mixed(*args, **kwargs)


@pytest.fixture(scope="module")
def reference() -> mf.MixedResults:
    return fit_quietly(FORMULA, sleep())


def same_fit(a: mf.MixedResults, b: mf.MixedResults, rtol: float = 1e-10) -> None:
    np.testing.assert_allclose(a.theta.to_numpy(), b.theta.to_numpy(), rtol=rtol)
    np.testing.assert_allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), rtol=rtol)
    assert a.nobs == b.nobs


def test_numeric_grouping_column_is_a_factor(reference):
    fit = mf.mixed("Reaction ~ Days + (1 | id)", sleep(id=lambda d: d["Subject"].astype(int)))
    assert fit.ngroups == {"id": 18}
    assert list(fit.ranef()["id"].index) == list(reference.ranef()["Subject"].index)
    same_fit(fit, reference)


@pytest.mark.parametrize("column, value", [("Reaction", np.nan), ("Days", np.nan),
                                           ("Subject", None)])
def test_missing_values_are_dropped_and_counted(column, value):
    data = with_value(column, [1, 2], value)()
    fit = mf.mixed(FORMULA, data)
    assert (fit.nobs, fit.n_dropped, fit.model.design.n_dropped) == (178, 2, 2)
    assert 1 not in fit.fittedvalues.index and len(fit.resid) == 178
    same_fit(fit, mf.mixed(FORMULA, sleep().drop(index=[1, 2])))
    # As lme4 with na.omit: the summary shows the rows fitted, nothing else.
    assert "Number of obs: 178, groups:  Subject, 18" in str(fit.summary())


def test_zero_weights_leave_their_rows_out():
    weights = np.where(np.isin(np.arange(180), [0, 50]), 0.0, 1.0)
    with pytest.warns(MixedFitWarning, match="2 rows of zero weight left out"):
        fit = mf.mixed(FORMULA, sleep(), weights=weights)
    assert (fit.nobs, fit.n_dropped) == (178, 2)
    same_fit(fit, mf.mixed(FORMULA, sleep().drop(index=[0, 50])))


def test_rank_deficient_columns_are_dropped_as_lme4():
    with pytest.warns(RankDeficiencyWarning,
                      match="rank deficient so dropping 1 column / coefficient"):
        fit = mf.mixed("Reaction ~ Days + D2 + (1 | Subject)", sleep(D2=lambda d: 2 * d["Days"]))
    assert fit.xnames == ["(Intercept)", "Days"]
    assert fit.model.design.dropped_xnames == ["D2"]


def test_non_convergence_warns_and_leaves_an_inspectable_fit():
    with pytest.warns(ConvergenceWarning) as caught:
        fit = mf.mixed("Reaction ~ Days + (Days | Subject)", sleep(), maxeval=5)
    assert "maxeval reached" in str(caught[0].message)
    assert not fit.converged and fit.optimizer_code == 5
    assert fit.optsummary.feval >= 5 and np.all(np.isfinite(fit.fixef))
    assert "maxeval" in fit.convergence_messages[0]
    assert "Fixed effects" in str(fit.summary())


def test_backquoted_unicode_and_spaced_names(reference):
    data = sleep().rename(columns={"Days": "días sin dormir", "Subject": "the subject"})
    fit = mf.mixed("Reaction ~ `días sin dormir` + (1 | `the subject`)", data)
    assert fit.xnames == ["(Intercept)", "`días sin dormir`"]
    assert fit.ngroups == {"`the subject`": 18}
    same_fit(fit, reference)


def test_unicode_name_without_backticks(reference):
    fit = mf.mixed("Reaction ~ días + (1 | Subject)", sleep().rename(columns={"Days": "días"}))
    same_fit(fit, reference)


def test_dict_of_arrays(reference):
    data = sleep()
    fit = mf.mixed(FORMULA, {name: data[name].to_numpy() for name in data.columns})
    same_fit(fit, reference)


@pytest.mark.parametrize("library", ["polars", "pyarrow"])
def test_polars_and_arrow_tables(library, reference):
    module = pytest.importorskip(library)
    data = sleep()
    columns = {"Reaction": data["Reaction"].to_numpy(), "Days": data["Days"].to_numpy(),
               "Subject": data["Subject"].astype(str).to_numpy()}
    table = module.DataFrame(columns) if library == "polars" else module.table(columns)
    same_fit(mf.mixed(FORMULA, table), reference)


def test_unused_categories_are_dropped(reference):
    data = sleep()
    data["Subject"] = data["Subject"].cat.add_categories(["999"])
    data["half"] = pd.Categorical(np.where(data["Days"] < 5, "early", "late"),
                                  categories=["early", "late", "never"])
    fit = mf.mixed("Reaction ~ half + (1 | Subject)", data)
    assert "999" not in fit.ranef()["Subject"].index
    assert fit.model.design.xlevels == {"half": ["early", "late"]}
    same_fit(mf.mixed(FORMULA, data), reference)


# -- predictions on new data ------------------------------------------------------

@pytest.fixture(scope="module")
def machines() -> mf.MixedResults:
    return mf.mixed("score ~ Machine + (1 | Worker)", mf.load_dataset("Machines"))


def test_xlevels_list_the_factor_levels_of_the_fit(machines):
    assert machines.model.design.xlevels == {"Machine": ["A", "B", "C"]}
    slope = mf.mixed("score ~ 1 + (0 + Machine | Worker)", mf.load_dataset("Machines"))
    assert slope.model.design.xlevels == {"Machine": ["A", "B", "C"]}


def test_predict_refuses_a_fixed_level_unseen_in_the_fit(machines):
    new = pd.DataFrame({"Machine": ["A", "D"], "Worker": ["1", "2"]})
    with pytest.raises(DataError, match="factor 'Machine' has new level\\(s\\) D"):
        machines.predict(new)


def test_predict_refuses_a_grouping_level_unseen_in_the_fit(machines):
    new = pd.DataFrame({"Machine": ["A", "B"], "Worker": ["1", "99"]})
    with pytest.raises(DataError, match="grouping factor 'Worker': 99"):
        machines.predict(new)
    assert np.isfinite(machines.predict(new, allow_new_levels=True)).all()


# -- bad arguments of a fit's methods ---------------------------------------------

INPUTS = json.loads((Path(__file__).parent / "lme4" / "fixtures" / "input_cases.json")
                    .read_text(encoding="utf-8"))


@dataclass
class BadCall:
    """A fit's method called with a bad argument: the error class and its words."""

    id: str
    call: Callable[[mf.MixedResults], Any]
    error: type
    words: list[str]


BAD_CALLS = [
    BadCall("predict with allow_new_levels as text",
            lambda fit: fit.predict(sleep().head(2), allow_new_levels="no"), ModelSpecError,
            ["allow_new_levels must be True or False, not 'no'"]),
    BadCall("predict on a dict with a 2-D column",
            lambda fit: fit.predict({"Days": np.ones((2, 2)), "Subject": ["308", "309"]}),
            DataError, ["column 'Days' \\(shape \\(2, 2\\)\\) of newdata"]),
    BadCall("simulate with use_u as text", lambda fit: fit.simulate(use_u="yes"),
            ModelSpecError, ["use_u must be True or False"]),
    BadCall("anova of a fit and a string", lambda fit: mf.anova(fit, "hello"), ModelSpecError,
            ["argument 2 is a str \\('hello'\\)"]),
    BadCall("anova with refit as text", lambda fit: mf.anova(fit, fit, refit="no"),
            ModelSpecError, ["refit must be True or False"]),
    BadCall("refit to text", lambda fit: fit.refit(["a"] * 200), DataError,
            ["new_y must be numbers", "a, a, a, a, a, ..."]),
    BadCall("refit to a constant", lambda fit: fit.refit(np.ones(180)), DataError,
            ["the response 'new_y' is constant"]),
    BadCall("refit to an exact line", lambda fit: fit.refit(3 + 2 * sleep()["Days"]), DataError,
            ["'new_y' is an exact linear function"]),
    BadCall("refit to a Series of other rows",
            lambda fit: fit.refit(pd.Series(sleep()["Reaction"].to_numpy(),
                                            index=np.arange(1, 181))),
            DataError, ["new_y is a pandas Series whose index does not match the rows of the fit",
                        "1 label of its index \\(180\\) is not among them"]),
    BadCall("bootstrap with a negative seed", lambda fit: fit.bootstrap(10, seed=-1),
            ModelSpecError, ["seed must be None, a non-negative integer", "not -1"]),
    BadCall("simulate with a text seed", lambda fit: fit.simulate(seed="abc"), ModelSpecError,
            ["seed must be", "not 'abc'"]),
    BadCall("summary with an unknown ddf, not printed", lambda fit: fit.summary(ddf="bogus"),
            ModelSpecError, ["'Satterthwaite', 'Kenward-Roger', 'lme4'", "not 'bogus'"]),
    BadCall("coef_table with an unknown ddf", lambda fit: fit.coef_table(ddf="KR"),
            ModelSpecError, ["ddf must be one of", "not 'KR'"]),
    BadCall("type III anova with ddf lme4", lambda fit: fit.anova(ddf="lme4"), ModelSpecError,
            ["no denominator degrees of freedom", "'Satterthwaite' or 'Kenward-Roger'"]),
]


@pytest.mark.parametrize("case", BAD_CALLS, ids=lambda case: case.id)
def test_bad_method_argument_gets_a_clear_error(case: BadCall, reference):
    with pytest.raises(case.error) as info:
        case.call(reference)
    assert type(info.value) is case.error
    for words in case.words:
        assert re.search(words, str(info.value)), f"{words!r} not in {str(info.value)!r}"


def test_predict_takes_a_dict_of_single_values_as_one_row(reference):
    one = reference.predict({"Days": 2.5, "Subject": "308"})
    frame = reference.predict(pd.DataFrame({"Days": [2.5], "Subject": ["308"]}))
    pd.testing.assert_series_equal(one, frame)
    # as pandas, a single value among columns fills its column
    filled = reference.predict({"Days": [0.0, 2.5], "Subject": "308"})
    pd.testing.assert_series_equal(
        filled, reference.predict(pd.DataFrame({"Days": [0.0, 2.5], "Subject": "308"})))


def weights_case() -> dict:
    return INPUTS["weights"]


def test_weights_series_in_another_row_order_is_aligned_by_index():
    case = weights_case()
    data = sleep()
    weights = pd.Series(case["w"], index=data.index).sample(frac=1.0, random_state=1)
    fit = mf.mixed(case["formula"], data, weights=weights)
    assert fit.optsummary.fmin - case["objective"] <= OBJ_REL * abs(case["objective"])
    np.testing.assert_allclose(fit.fixef.to_numpy(), case["beta"], rtol=1e-6)
    np.testing.assert_allclose(fit.theta.to_numpy(), case["theta"], rtol=1e-6)
    same_fit(fit, mf.mixed(case["formula"], sleep(w=case["w"]), weights="w"), rtol=1e-12)


def test_refit_series_in_another_row_order_is_aligned_by_index(reference):
    y = sleep()["Reaction"] * 2
    shuffled = y.sample(frac=1.0, random_state=2)
    same_fit(reference.refit(shuffled), reference.refit(y.to_numpy()), rtol=1e-12)


# -- lme4's hard cases -------------------------------------------------------------

def hard_data(case: dict) -> pd.DataFrame:
    data = mf.load_dataset(case["dataset"])
    for name, values in case["extra_columns"].items():
        data[name] = values
    return data.drop(index=data.index[case["drop_rows"]])


@pytest.fixture(scope="module")
def hard_fits() -> dict[str, tuple[mf.MixedResults, list[warnings.WarningMessage]]]:
    out = {}
    for case in HARD["fits"]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = mf.mixed(case["formula"], hard_data(case), reml=case["reml"])
        out[case["id"]] = fit, caught
    return out


@pytest.mark.parametrize("case", HARD["fits"], ids=lambda case: case["id"])
def test_hard_case_reaches_lme4s_optimum_or_better(case, hard_fits):
    fit, caught = hard_fits[case["id"]]
    assert fit.optsummary.fmin - case["objective"] <= OBJ_REL * abs(case["objective"])
    assert fit.xnames == case["beta_names"]
    # Only mixedfit's own warnings reach the user (no numpy RuntimeWarning).
    assert all(issubclass(w.category, MixedFitWarning) for w in caught), \
        [str(w.message) for w in caught]


@pytest.mark.parametrize("case", [c for c in HARD["fits"] if all(
    m.startswith("boundary") for m in c["conv_messages"])], ids=lambda case: case["id"])
def test_hard_case_estimates_match_lme4_where_lme4_converged(case, hard_fits):
    fit, _ = hard_fits[case["id"]]
    if fit.optsummary.fmin < case["objective"] - 1e-6 * abs(case["objective"]):
        pytest.skip("mixedfit found a lower optimum than lme4 (lme4 stopped short)")
    np.testing.assert_allclose(fit.theta.to_numpy(), case["theta"], rtol=2e-3, atol=1e-3)
    np.testing.assert_allclose(fit.fixef.to_numpy(), case["beta"], rtol=2e-5)
    assert fit.is_singular == case["isSingular"]


@pytest.mark.parametrize("case", [c for c in HARD["fits"] if c["id"].startswith("scale_")],
                         ids=lambda case: case["id"])
def test_rescale_warning_has_lme4s_words(case, hard_fits):
    _, caught = hard_fits[case["id"]]
    texts = [str(w.message) for w in caught if w.category is ScaleWarning]
    assert texts == [w for w in case["warnings"] if "rescaling" in w]


@pytest.mark.parametrize("case", HARD["fits"], ids=lambda case: case["id"])
def test_summary_repeats_lme4s_fit_warnings(case, hard_fits):
    fit, _ = hard_fits[case["id"]]
    assert fit.fit_warnings == case["fit_msgs"]
    lines = str(fit.summary()).splitlines()
    if not case["fit_msgs"]:
        assert "fit warnings:" not in lines
    else:
        start = lines.index("fit warnings:") + 1
        assert lines[start:start + len(case["fit_msgs"])] == case["fit_msgs"]


def test_singular_fit_warns_as_lme4(hard_fits):
    fit, caught = hard_fits["dyestuff2_singular"]
    singular = [str(w.message) for w in caught if w.category is SingularFitWarning]
    assert singular == HARD["fits"][0]["messages"]
    assert fit.is_singular and fit.theta.iloc[0] == 0.0


def test_collinear_random_slopes_fit_the_model_they_reduce_to(hard_fits):
    # With D2 = 2 Days, (Days + D2|Subject) identifies only the covariance of
    # (1, Days + 2 D2): the six θ lie anywhere on a ridge of equal objective,
    # and whether the Hessian where the optimizer stops looks nearly singular
    # (lme4 warns, at max|grad| 0.033) varies with the CPU's rounding.  What is
    # determined is the fit of (Days|Subject): lme4's, from its fixture.
    fit, _ = hard_fits["collinear_slopes"]
    reduced = json.loads((Path(__file__).parent / "lme4" / "fixtures" / "sleepstudy_reml.json").read_text())
    A = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 2.0]])
    L = lower_template(fit.theta.to_numpy(), 3)
    L2 = lower_template(np.asarray(reduced["theta"]), 2)
    # lme4's own fit of the collinear model stops 1.6e-3 (relative) away from these
    np.testing.assert_allclose(fit.sigma**2 * A @ L @ L.T @ A.T, reduced["sigma"] ** 2 * L2 @ L2.T, rtol=1e-4)
    np.testing.assert_allclose(fit.fixef.to_numpy(), reduced["beta"], rtol=1e-9)
    assert fit.optsummary.fmin == pytest.approx(reduced["objective"], rel=1e-10)


# -- the command line ------------------------------------------------------------

def test_cli_reports_bad_input_in_one_line(capsys):
    from mixedfit.cli import main

    assert main(["fit", "Reaction ~ Dayz + (1 | Subject)", "--data", "sleepstudy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mixedfit: error: column 'Dayz' not found") and "Traceback" not in err


def test_cli_reports_a_missing_csv(tmp_path, capsys):
    from mixedfit.cli import main

    assert main(["fit", FORMULA, "--csv", str(tmp_path / "absent.csv")]) == 2
    assert "absent.csv" in capsys.readouterr().err


def test_cli_stops_quietly_when_its_reader_leaves():
    # `mixedfit fit ... | head -3` closes the pipe before the summary is written.
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "mixedfit.cli", "fit", "Reaction ~ Days + (Days|Subject)", "--data", "sleepstudy"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait() == 1 and "Traceback" not in err, err


# -- where warnings point ----------------------------------------------------------------

def _scaled_sleep() -> pd.DataFrame:
    sleep = mf.load_dataset("sleepstudy")
    return sleep.assign(Dbig=sleep["Days"] * 1e6, D2=sleep["Days"] * 2)


@pytest.mark.parametrize("call", [
    lambda: mf.mixed("Reaction ~ Dbig + (1|Subject)", _scaled_sleep()),                 # checkScaleX
    lambda: mf.mixed("Reaction ~ Days + D2 + (1|Subject)", _scaled_sleep()),             # rank drop
    lambda: mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff2")),             # singular
    lambda: mf.anova(mf.mixed("Reaction ~ 1 + (1|Subject)", mf.load_dataset("sleepstudy")),
                     mf.mixed("Reaction ~ Days + (1|Subject)", mf.load_dataset("sleepstudy"))),  # ML refit
    lambda: mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff2")).confint(),  # profile
    lambda: mf.mixed("cbind(incidence, size - incidence) ~ period + (1 | herd)",                # glmer's
                     mf.load_dataset("cbpp").assign(size=lambda d: d["size"] + 0.5),
                     family="binomial", maxeval=3),                                    # non-integer, maxeval
], ids=["scale", "rank", "singular", "anova", "profile", "glmm"])
def test_warnings_point_at_the_users_line(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    ours = [w for w in caught if issubclass(w.category, MixedFitWarning)]
    assert ours
    assert {w.filename for w in ours} == {__file__}, [(w.filename, w.lineno, str(w.message)) for w in ours]
