"""Reading formula text (mixedfit.formula.parse): backquoted names, and errors with a caret.

Error cases check the exception type and where the caret points.
"""

from __future__ import annotations

import pytest

from mixedfit.errors import FormulaError
from mixedfit.formula import parse_formula
from mixedfit.formula.rterms import model_terms


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
