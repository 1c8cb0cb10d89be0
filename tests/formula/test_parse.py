"""The formula language against R: deparse, terms, number labels, level order.

Expected values come from ``tests/lme4/formula_cases.R`` (R 4.2, lme4 1.1-31),
stored in ``tests/lme4/fixtures/formula_cases.json``.  Error cases check the
exception type and where the caret points.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mixedfit.errors import FormulaError
from mixedfit.formula import deparse_formula, lme4_deparse, parse_formula
from mixedfit.formula.deparse import format_number
from mixedfit.formula.parse import parse_formula_tree
from mixedfit.formula.rterms import model_terms
from mixedfit.formula.rvalues import as_factor

FIXTURE = Path(__file__).parents[1] / "lme4" / "fixtures" / "formula_cases.json"
CASES = json.loads(FIXTURE.read_text(encoding="utf-8"))


def _id(case: dict) -> str:
    return case["input"]


@pytest.mark.parametrize("case", CASES["deparse"], ids=_id)
def test_deparse_matches_r(case):
    assert deparse_formula(case["input"]) == case["deparse"]


@pytest.mark.parametrize("case", CASES["designs"], ids=lambda c: c["id"])
def test_deparse_of_model_formulas_matches_r(case):
    # lme4 prints its formula with ``||`` expanded (lFormula()$formula).
    assert lme4_deparse(case["formula"]) == case["deparse"]


@pytest.mark.parametrize("case", CASES["terms"], ids=_id)
def test_term_labels_match_r(case):
    terms = model_terms(*parse_formula_tree(case["input"]), case["input"])
    assert terms.labels() == case["labels"]
    assert terms.intercept == case["intercept"]


def test_numbers_format_as_r_as_character():
    numbers = CASES["numbers"]
    assert [format_number(float(v)) for v in numbers["input"]] == numbers["as_character"]


@pytest.mark.parametrize("kind", ["strings", "doubles", "integers"])
def test_factor_levels_sort_as_r(kind):
    case = CASES["sort"][kind]
    dtype = {"strings": object, "doubles": float, "integers": np.int64}[kind]
    assert as_factor(np.array(case["input"], dtype=dtype)).levels == case["levels"]


@pytest.mark.parametrize("case", CASES["designs"], ids=lambda c: c["id"])
def test_bar_terms_before_reordering_match_lme4_labels(case):
    # lme4 reorders terms by number of levels; as a set, the labels are findbars'.
    labels = sorted(bar.label for bar in parse_formula(case["formula"]).bars)
    assert labels == sorted(term["label"] for term in case["terms"])


def test_double_bar_expands_as_lme4():
    bars = parse_formula("y ~ (x * z || g)").bars
    assert [bar.label for bar in bars] == ["1 | g", "0 + x | g", "0 + z | g", "0 + x:z | g"]
    assert not any(bar.correlated for bar in bars)


def test_double_bar_without_intercept_has_no_intercept_term():
    assert [b.label for b in parse_formula("y ~ (0 + x || g)").bars] == ["0 + x | g"]


def test_slash_expands_inner_first_as_lme4():
    bars = parse_formula("y ~ (1 | a/b/c)").bars
    assert [bar.group_label for bar in bars] == ["c:(b:a)", "b:a", "a"]


def test_slash_and_double_bar_combine_as_lme4():
    bars = parse_formula("y ~ (x || g/h)").bars
    assert [bar.label for bar in bars] == ["1 | h:g", "1 | g", "0 + x | h:g", "0 + x | g"]


def test_fixed_part_drops_bars_and_keeps_intercept_choice():
    assert parse_formula("y ~ 0 + x + (1 | g)").fixed_terms.intercept is False
    only_bars = parse_formula("y ~ (1 | g)").fixed_terms
    assert only_bars.intercept and only_bars.labels() == []


def test_backquoted_names_parse():
    f = parse_formula("`my y` ~ `a b` + (1 | `g 1`)")
    assert f.response_label == "`my y`"
    assert f.fixed_terms.labels() == ["`a b`"]
    assert f.bars[0].group_label == "`g 1`"


def _caret_column(message: str) -> int:
    return message.splitlines()[-1].index("^") - 4


@pytest.mark.parametrize("formula, column, words", [
    ("y ~ (x | g", 4, "never closed"),
    ("y ~ x) + (1 | g)", 5, "no matching"),
    ("y ~ x + 1 | g", 10, "parentheses"),
    ("y ~ x * (1 | g)", 11, "added with '+'"),
    ("y ~ ( | g)", 6, "nothing on the left"),
    ("y ~ (x | )", 7, "nothing on the right"),
    ("y ~ x + (x |)", 11, "nothing on the right"),
    ("y ~ x +", 6, "nothing on the right"),
    ("y x + (1 | g)", 2, "unexpected"),
    ("x + (1 | g)", 0, "'~'"),
    ("~ x + (1 | g)", 0, "no response"),
    ("y ~ x ~ z", 2, "only one '~'"),
    ("y ~ x$a", 5, "not supported"),
    ("y ~ x + 2", 8, "only 0 and 1"),
    ("y ~ (a + b)^x", 12, "invalid power"),
    ("y ~ x + .", 8, "not supported"),
    ("y ~ (1 | a/(b/c))", 11, "grouping factor"),
    ("y ~ x + \"s\"", 8, "string"),
])
def test_bad_formulas_raise_with_caret(formula, column, words):
    with pytest.raises(FormulaError) as info:
        parse_formula(formula).fixed_terms
    message = str(info.value)
    assert words in message
    assert formula in message
    assert _caret_column(message) == column


def test_a_formula_text_is_parsed_once_and_its_terms_kept():
    # fits of one formula share its frozen tree, and the terms read off it (issue 21)
    text = "Reaction ~ Days + (Days | Subject)"
    parsed = parse_formula(text)
    assert parse_formula(text) is parsed
    assert parsed.fixed_terms is parsed.fixed_terms
    assert parsed.bar_terms(parsed.bars[0]) is parsed.bar_terms(parsed.bars[0])
    assert parsed.bar_terms(parsed.bars[0]) == model_terms(None, parsed.bars[0].lhs, text)
    with pytest.raises(FormulaError, match="must be a string"):
        parse_formula(["y ~ x + (1 | g)"])  # unhashable: still the error naming the type
