"""R's factors (mixedfit.formula.rvalues) against R: the order of levels; ``distinct`` against numpy's ``unique``.

Expected values: ``tests/lme4/formula_cases.R`` (see ``_formula_cases``).
"""

from __future__ import annotations

import numpy as np
import pytest

from mixedfit.formula.rvalues import as_factor, distinct

from _formula_cases import CASES


@pytest.mark.parametrize("kind", ["strings", "doubles", "integers"])
def test_factor_levels_sort_as_r(kind):
    case = CASES["sort"][kind]
    dtype = {"strings": object, "doubles": float, "integers": np.int64}[kind]
    assert as_factor(np.array(case["input"], dtype=dtype)).levels == case["levels"]


@pytest.mark.parametrize("count, size", [(0, 5), (1, 1), (50, 40), (1000, 100_000), (5000, 2000)])
def test_distinct_is_numpys_unique_with_its_inverse(count, size):
    # by the table where the range is not much larger than the data, by sorting where it is
    values = np.random.default_rng(count).integers(size, size=count)
    found, inverse = distinct(values, size)
    expected, expected_inverse = np.unique(values, return_inverse=True)
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_array_equal(inverse, expected_inverse)
