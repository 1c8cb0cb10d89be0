"""R's update.formula against R: each edited formula deparses as R's.

Expected values come from ``tests/lme4/postfit_cases.R``
(``tests/lme4/fixtures/postfit_cases.json``, ``update_formulas``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixedfit.errors import FormulaError
from mixedfit.formula.update import update_formula

FIXTURE = Path(__file__).parents[1] / "lme4" / "fixtures" / "postfit_cases.json"
PAIRS = json.loads(FIXTURE.read_text(encoding="utf-8"))["update_formulas"]


@pytest.mark.parametrize("case", PAIRS, ids=lambda c: f"{c['old']} | {c['new']}")
def test_update_formula_matches_r(case):
    assert update_formula(case["old"], case["new"]) == case["result"]


def test_dot_response_of_a_one_sided_formula_is_refused():
    with pytest.raises(FormulaError, match="old response"):
        update_formula("~ a", "log(.) ~ .")
