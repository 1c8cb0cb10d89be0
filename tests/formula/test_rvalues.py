"""R's factors (mixedfit.formula.rvalues) against R: the order of levels.

Expected values: ``tests/lme4/formula_cases.R`` (see ``_formula_cases``).
"""

from __future__ import annotations

import numpy as np
import pytest

from mixedfit.formula.rvalues import as_factor

from _formula_cases import CASES


@pytest.mark.parametrize("kind", ["strings", "doubles", "integers"])
def test_factor_levels_sort_as_r(kind):
    case = CASES["sort"][kind]
    dtype = {"strings": object, "doubles": float, "integers": np.int64}[kind]
    assert as_factor(np.array(case["input"], dtype=dtype)).levels == case["levels"]
