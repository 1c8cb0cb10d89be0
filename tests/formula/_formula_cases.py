"""lme4's formula reference cases, shared by the tests of formula/'s modules.

``tests/lme4/fixtures/formula_cases.json`` is written by
``tests/lme4/formula_cases.R`` (R 4.2, lme4 1.1-31): R's ``deparse``,
``terms()``, factor levels and ``model.matrix()``, and ``lme4::lFormula()``
on the bundled data sets.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["CASES", "case_input"]

FIXTURE = Path(__file__).parents[1] / "lme4" / "fixtures" / "formula_cases.json"
CASES = json.loads(FIXTURE.read_text(encoding="utf-8"))


def case_input(case: dict) -> str:
    """A case's test id: the formula (or term) text it gives R."""
    return case["input"]
