"""R's ``terms()`` (mixedfit.formula.rterms) against R: term labels and the intercept.

Expected values: ``tests/lme4/formula_cases.R`` (see ``_formula_cases``).
"""

from __future__ import annotations

import pytest

from mixedfit.formula.parse import parse_formula_tree
from mixedfit.formula.rterms import model_terms

from _formula_cases import CASES, case_input


@pytest.mark.parametrize("case", CASES["terms"], ids=case_input)
def test_term_labels_match_r(case):
    terms = model_terms(*parse_formula_tree(case["input"]), case["input"])
    assert terms.labels() == case["labels"]
    assert terms.intercept == case["intercept"]
