"""lme4's bar terms (mixedfit.formula.bars) against lme4: ``||`` and ``/`` expanded, labels, deparse.

Expected values: ``tests/lme4/formula_cases.R`` (see ``_formula_cases``).
"""

from __future__ import annotations

import pytest

from mixedfit.formula import lme4_deparse, parse_formula

from _formula_cases import CASES


@pytest.mark.parametrize("case", CASES["designs"], ids=lambda c: c["id"])
def test_deparse_of_model_formulas_matches_r(case):
    # lme4 prints its formula with ``||`` expanded (lFormula()$formula).
    assert lme4_deparse(case["formula"]) == case["deparse"]


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
