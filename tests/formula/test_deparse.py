"""R's ``deparse`` (mixedfit.formula.deparse) against R: formulas and numbers as R writes them.

Expected values: ``tests/lme4/formula_cases.R`` (see ``_formula_cases``).
"""

from __future__ import annotations

import pytest

from mixedfit.formula import deparse_formula
from mixedfit.formula.deparse import format_number

from _formula_cases import CASES, case_input


@pytest.mark.parametrize("case", CASES["deparse"], ids=case_input)
def test_deparse_matches_r(case):
    assert deparse_formula(case["input"]) == case["deparse"]


def test_numbers_format_as_r_as_character():
    numbers = CASES["numbers"]
    assert [format_number(float(v)) for v in numbers["input"]] == numbers["as_character"]
