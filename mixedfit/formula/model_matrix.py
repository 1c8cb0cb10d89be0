"""R's ``model.matrix``: the columns of a set of terms, with R's names.

A port of ``modelmatrix`` and ``TermCode`` in R's
``src/library/stats/src/model.c``.  In each term a factor is coded by
contrasts when the term without it is already in the model (as an earlier
term, or the intercept), and by one indicator per level otherwise.  Without
an intercept, the first factor of the first term holding one gets
indicators.  Within an interaction the first variable varies fastest and
column names are joined with ``:`` (``recipeB:temp``).

Examples
--------
>>> import numpy as np
>>> from mixedfit.formula.parse import parse_formula_tree
>>> from mixedfit.formula.rterms import model_terms
>>> from mixedfit.formula.rvalues import RFactor
>>> from mixedfit.formula.evaluate import Numeric
>>> terms = model_terms(*parse_formula_tree("y ~ x:f"))
>>> frame = {v: val for v, val in zip(terms.variables[1:], [
...     Numeric(np.array([[1.0], [2.0], [3.0]])), RFactor(np.array([0, 1, 2]), ["a", "b", "c"])])}
>>> mm = model_matrix(terms, frame, 3)
>>> mm.names, mm.assign
(['(Intercept)', 'x:fa', 'x:fb', 'x:fc'], [0, 1, 1, 1])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from mixedfit.errors import DataError, MixedFitWarning, warn

from .contrasts import default_contrasts
from .deparse import deparse
from .evaluate import Logical, Numeric, Value
from .nodes import Node
from .rterms import ModelTerms, term_variables
from .rvalues import RFactor

__all__ = ["ModelMatrix", "model_matrix", "INTERCEPT"]

INTERCEPT = "(Intercept)"  # the name of X's column of ones

_CONTRASTS, _INDICATORS = 1, 2


def _term_code(terms: tuple[int, ...], j: int, i: int) -> int:
    """R's TermCode: contrasts if term j without variable i is in an earlier term."""
    rest = terms[j] & ~(1 << i)
    if rest == 0 or any(rest & ~earlier == 0 for earlier in terms[:j]):
        return _CONTRASTS
    return _INDICATORS


def _as_factor(value: Value) -> RFactor | None:
    if isinstance(value, RFactor):
        return value
    if isinstance(value, Logical):  # R codes a logical as a factor FALSE/TRUE
        return RFactor(value.values.astype(np.intp), ["FALSE", "TRUE"])
    return None


def _coding(terms: ModelTerms, frame: Mapping[Node, Value]) -> dict[tuple[int, int], int]:
    coding = {(j, i): _term_code(terms.terms, j, i)
              for j, term in enumerate(terms.terms) for i in term_variables(term)}
    if not terms.intercept:
        first = next(((j, i) for j, term in enumerate(terms.terms)
                      for i in term_variables(term)
                      if _as_factor(frame[terms.variables[i]]) is not None), None)
        if first is not None:
            coding[first] = _INDICATORS
    return coding


def _variable_columns(value: Value, label: str, code: int) -> tuple[np.ndarray, list[str]]:
    """A variable's columns and the suffix each adds to *label* in R's column names."""
    factor = _as_factor(value)
    if factor is None:
        assert isinstance(value, Numeric)
        k = value.values.shape[1]
        if k == 1:
            return value.values, [""]
        return value.values, [str(c + 1) for c in range(k)]
    if len(factor.levels) < 2:
        raise DataError(f"'{label}' has only {len(factor.levels)} level "
                        f"({', '.join(factor.levels) or 'none'}) in the rows used; contrasts "
                        "can be applied only to factors with 2 or more levels")
    if code == _INDICATORS:
        return np.eye(len(factor.levels))[factor.codes], list(factor.levels)
    contrasts = (factor.contrasts or default_contrasts(factor.ordered))(factor.levels)
    k = contrasts.values.shape[1]
    return contrasts.values[factor.codes], contrasts.colnames or [str(c + 1) for c in range(k)]


class ModelMatrix(NamedTuple):
    """R's model matrix: the columns, their names, and the term of each (R's ``assign``).

    Attributes
    ----------
    X : ndarray, shape (n, p)
    names : list of str
        R's column names.
    assign : list of int
        For each column, 0 for the intercept, else 1 + the index of its term
        in ``terms.terms`` (R's ``attr(X, "assign")``).
    suffixes : list of tuple of str
        For each column, what each variable of its term adds to the
        variable's name in the column's name: a factor's level or contrast
        (``B``, ``.L``), a matrix's column number (``poly(x, 2)2``), nothing
        for a number (``recipeB:temp``: ``("B", "")``).
    """

    X: np.ndarray
    names: list[str]
    assign: list[int]
    suffixes: list[tuple[str, ...]]


def model_matrix(terms: ModelTerms, frame: Mapping[Node, Value], n: int) -> ModelMatrix:
    """Build R's model matrix of *terms* from evaluated variables.

    Parameters
    ----------
    terms : ModelTerms
        R's terms of the formula.
    frame : mapping of Node to value
        The model frame: each variable's value on the rows used.
    n : int
        Number of rows.

    Returns
    -------
    ModelMatrix
    """
    coding = _coding(terms, frame)
    response = 1 if terms.has_response else 0
    if any(term & response for term in terms.terms):
        warn("the response appeared on the right-hand side and was dropped", MixedFitWarning)
    columns = [np.ones(n)] if terms.intercept else []
    names = [INTERCEPT] if terms.intercept else []
    assign = [0] if terms.intercept else []
    suffixes: list[tuple[str, ...]] = [()] if terms.intercept else []
    for j, term in enumerate(terms.terms):
        block, block_suffixes = [np.ones(n)], [()]
        labels = []
        for i in term_variables(term & ~response):
            variable = terms.variables[i]
            labels.append(deparse(variable))
            values, added = _variable_columns(frame[variable], labels[-1], coding[j, i])
            # The earlier variables vary fastest.
            block = [old * values[:, c] for c in range(values.shape[1]) for old in block]
            block_suffixes = [old + (new,) for new in added for old in block_suffixes]
        if term & ~response:
            columns.extend(block)
            names.extend(":".join(v + s for v, s in zip(labels, parts)) for parts in block_suffixes)
            assign.extend([j + 1] * len(block))
            suffixes.extend(block_suffixes)
    X = np.column_stack(columns) if columns else np.empty((n, 0))
    return ModelMatrix(X, names, assign, suffixes)
