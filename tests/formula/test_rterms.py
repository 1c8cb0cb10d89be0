"""R's ``terms()`` (mixedfit.formula.rterms) against R: term labels and the intercept.

Expected values come from ``tests/lme4/formula_cases.R`` (R 4.2, lme4 1.1-31),
stored in ``tests/lme4/fixtures/formula_cases.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixedfit.formula.parse import parse_formula_tree
from mixedfit.formula.rterms import model_terms

FIXTURE = Path(__file__).parents[1] / "lme4" / "fixtures" / "formula_cases.json"
CASES = json.loads(FIXTURE.read_text(encoding="utf-8"))


def _id(case: dict) -> str:
    return case["input"]


@pytest.mark.parametrize("case", CASES["terms"], ids=_id)
def test_term_labels_match_r(case):
    terms = model_terms(*parse_formula_tree(case["input"]), case["input"])
    assert terms.labels() == case["labels"]
    assert terms.intercept == case["intercept"]
