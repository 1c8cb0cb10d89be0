"""R's factors (mixedfit.formula.rvalues) against R: the order of levels.

Expected values come from ``tests/lme4/formula_cases.R`` (R 4.2, lme4 1.1-31),
stored in ``tests/lme4/fixtures/formula_cases.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mixedfit.formula.rvalues import as_factor

FIXTURE = Path(__file__).parents[1] / "lme4" / "fixtures" / "formula_cases.json"
CASES = json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("kind", ["strings", "doubles", "integers"])
def test_factor_levels_sort_as_r(kind):
    case = CASES["sort"][kind]
    dtype = {"strings": object, "doubles": float, "integers": np.int64}[kind]
    assert as_factor(np.array(case["input"], dtype=dtype)).levels == case["levels"]
