"""R's ``deparse`` (mixedfit.formula.deparse) against R: formulas and numbers as R writes them.

Expected values come from ``tests/lme4/formula_cases.R`` (R 4.2, lme4 1.1-31),
stored in ``tests/lme4/fixtures/formula_cases.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixedfit.formula import deparse_formula
from mixedfit.formula.deparse import format_number

FIXTURE = Path(__file__).parents[1] / "lme4" / "fixtures" / "formula_cases.json"
CASES = json.loads(FIXTURE.read_text(encoding="utf-8"))


def _id(case: dict) -> str:
    return case["input"]


@pytest.mark.parametrize("case", CASES["deparse"], ids=_id)
def test_deparse_matches_r(case):
    assert deparse_formula(case["input"]) == case["deparse"]


def test_numbers_format_as_r_as_character():
    numbers = CASES["numbers"]
    assert [format_number(float(v)) for v in numbers["input"]] == numbers["as_character"]
