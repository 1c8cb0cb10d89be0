"""The exact quantiles of a Dask column (mixedfit.quantiles) against numpy's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")

from mixedfit.quantiles import exact_quantiles  # noqa: E402


@pytest.mark.parametrize("values", [
    [3.0, -1.0, 2.5, 10.0, 0.0],
    [1.0] * 7 + [2.0] * 3,
    list(np.random.default_rng(0).standard_normal(5001)),
])
def test_exact_quantiles_are_numpys(values):
    probs = [0, 0.1, 0.25, 0.5, 0.75, 0.99, 1]
    x = dd.from_pandas(pd.Series(values + [np.nan]), npartitions=3)
    np.testing.assert_array_equal(exact_quantiles(x, probs), np.quantile(values, probs))
