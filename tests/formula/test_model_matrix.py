"""R's ``model.matrix`` (mixedfit.formula.model_matrix) against R, on a small made-up data frame.

Expected values: ``tests/lme4/formula_cases.R`` (see ``_formula_cases``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedfit.formula.deparse import deparse
from mixedfit.formula.evaluate import Evaluator
from mixedfit.formula.frame import model_frame
from mixedfit.formula.model_matrix import model_matrix
from mixedfit.formula.parse import parse_formula_tree
from mixedfit.formula.rterms import model_terms, term_variables

from _formula_cases import CASES


def _matrix(values) -> np.ndarray:
    return np.array(values, dtype=float).reshape(len(values), -1)


def _matrix_data() -> pd.DataFrame:
    columns = {}
    for name, spec in CASES["matrix_data"].items():
        if "levels" in spec:
            columns[name] = pd.Categorical(spec["values"], categories=spec["levels"],
                                           ordered=spec["ordered"])
        else:
            columns[name] = spec["values"]
    return pd.DataFrame(columns)


def _r_model_matrix(formula: str, data: pd.DataFrame):
    terms = model_terms(*parse_formula_tree(formula), formula)
    frame = model_frame(Evaluator(data, formula), list(terms.variables))
    return terms, model_matrix(terms, frame.values, frame.nrows)


@pytest.mark.parametrize("case", CASES["matrices"], ids=lambda c: c["input"])
def test_model_matrix_matches_r(case):
    _, (X, names, _, _) = _r_model_matrix(case["input"], _matrix_data())
    assert names == case["colnames"]
    np.testing.assert_allclose(X, _matrix(case["values"]), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", CASES["matrices"], ids=lambda c: c["input"])
def test_model_matrix_columns_know_their_terms(case):
    # each of R's column names is its term's variables, each followed by its suffix
    terms, matrix = _r_model_matrix(case["input"], _matrix_data())
    labels = [deparse(v) for v in terms.variables]
    for name, term, suffixes in zip(case["colnames"], matrix.assign, matrix.suffixes):
        variables = [] if term == 0 else [labels[i] for i in term_variables(terms.terms[term - 1])]
        assert ":".join(v + s for v, s in zip(variables, suffixes)) == \
            ("" if name == "(Intercept)" else name)
