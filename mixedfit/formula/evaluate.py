"""Evaluating a formula's variables (``Days``, ``log(x)``, ``I(Days^2)``) on data.

Each variable's R expression is translated to Python (``^`` becomes ``**``,
names become placeholders bound to the columns, R functions come from
``rfunctions`` or formulaic) and evaluated by
formulaic's evaluator.  The result is one of R's three kinds of model-frame
column: ``Numeric`` (one or more columns), ``Logical``, or an
``RFactor``.

Examples
--------
>>> import pandas as pd
>>> from mixedfit.formula.parse import parse_expression
>>> ev = Evaluator(pd.DataFrame({"Days": [0, 1, 2]}), "")
>>> ev.evaluate(parse_expression("I(Days^2)")).values.ravel().tolist()
[0.0, 1.0, 4.0]
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import pandas as pd

from mixedfit.errors import DataError, FormulaError, caret_message

from . import _compat
from .deparse import deparse
from .nodes import BinOp, Call, Name, Node, Number, Paren, String, Unary
from .rfunctions import R_CONSTANTS, R_FUNCTIONS
from .rvalues import RFactor, as_factor

__all__ = ["Numeric", "Logical", "Value", "Evaluator", "column_value"]

_PYTHON_OPS = {"%%": "%", "%/%": "//", "&": "&", "&&": "&", "|": "|", "||": "|",
               "+": "+", "-": "-", "*": "*", "/": "/", "==": "==", "!=": "!=", "<": "<",
               ">": ">", "<=": "<=", ">=": ">="}
_FUNCTION_OPS = {"^": "_r_pow", "%in%": "_r_in"}


@dataclass
class Numeric:
    """A numeric model-frame column, shape (n, k); a matrix (``poly(x, 2)``) has k > 1.

    R names a matrix's columns by number (``poly(x, 2)1``), as do R's
    ``poly`` and ``bs`` themselves.
    """

    values: np.ndarray

    def missing(self) -> np.ndarray:
        return np.isnan(self.values).any(axis=1)

    def take(self, rows: np.ndarray) -> Numeric:
        return Numeric(self.values[rows])


@dataclass
class Logical:
    """A logical model-frame column; ``na`` marks R's NA."""

    values: np.ndarray
    na: np.ndarray

    def missing(self) -> np.ndarray:
        return self.na

    def take(self, rows: np.ndarray) -> Logical:
        return Logical(self.values[rows], self.na[rows])


Value = Union[Numeric, Logical, RFactor]


def column_value(series: pd.Series, name: str) -> np.ndarray | RFactor:
    """Convert a data column to what R would hold: numbers, logicals or a factor.

    Integer columns stay integers (their factor levels print as ``1e+05``
    never); strings become factors with R's sorted levels.

    Examples
    --------
    >>> column_value(pd.Series(["b", "a", None]), "g").levels
    ['a', 'b']
    """
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "f":  # the common case, before pandas' dtype tests
        return series.to_numpy(dtype=float, na_value=np.nan)
    if isinstance(dtype, pd.CategoricalDtype):
        return as_factor(series)
    if pd.api.types.is_bool_dtype(dtype) and not series.isna().any():
        return series.to_numpy(dtype=bool)
    if pd.api.types.is_integer_dtype(dtype) and not series.isna().any():
        return _integers(series)
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return series.to_numpy(dtype=float, na_value=np.nan)
    kind = pd.api.types.infer_dtype(series, skipna=True)
    if kind in ("string", "empty"):
        return as_factor(series)
    if kind in ("integer", "floating", "mixed-integer-float", "decimal", "boolean"):
        return pd.to_numeric(series).to_numpy(dtype=float, na_value=np.nan)
    raise DataError(f"column '{name}' has values of type '{kind}' ({dtype}), which a model "
                    "cannot use: convert it to numbers, strings or a categorical")


def _integers(series: pd.Series) -> np.ndarray:
    """An integer column as int64, or as uint64 where its values do not fit int64
    (ids of 2**63 and more keep their exact values, as labels of a factor).

    Examples
    --------
    >>> _integers(pd.Series([2**63, 1], dtype="uint64")).tolist()
    [9223372036854775808, 1]
    """
    if pd.api.types.is_unsigned_integer_dtype(series.dtype) and len(series) \
            and series.max() > np.iinfo(np.int64).max:
        return series.to_numpy(dtype=np.uint64)
    return series.to_numpy(dtype=np.int64)


def is_logical_with_na(series: pd.Series) -> bool:
    """A logical column with missing values: pandas' nullable ``boolean``, or
    ``True``/``False``/``None`` objects.

    ``column_value`` gives it as numbers (1, 0, NaN) so that NA propagates
    through expressions; the column itself is R's logical (``bTRUE``).

    Examples
    --------
    >>> is_logical_with_na(pd.Series([True, None])), is_logical_with_na(pd.Series([1.0, None]))
    (True, False)
    """
    # The dtype first: looking for missing values costs more, and only logical
    # or object columns can be logical.
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iufcmM":
        return False
    logical = pd.api.types.is_bool_dtype(series.dtype)
    if not (logical or series.dtype == object) or not series.isna().any():
        return False
    return logical or pd.api.types.infer_dtype(series, skipna=True) == "boolean"


class Evaluator:
    """Evaluates formula variables over a data frame (R's ``model.frame`` step).

    Parameters
    ----------
    data : pandas.DataFrame
        The data; never modified.
    text : str
        The formula text, for the carets of error messages.
    state : dict, optional
        The state of the data-dependent transforms (``poly``, ``scale``,
        ``bs``, ``ns``: R's ``predvars``), by expression.  Those evaluated here
        add theirs; those already in it reuse it, so that new rows are
        transformed as the data fitted were.
    """

    def __init__(self, data: pd.DataFrame, text: str, state: dict[str, Any] | None = None):
        self.data = data
        self.text = text
        columns = data.columns.tolist()  # once: iterating an Index of Arrow strings is slow
        self.names = {str(c): c for c in columns}
        self.duplicated = {name for name, k in Counter(map(str, columns)).items() if k > 1} \
            if len(self.names) < len(columns) else set()
        self.state: dict[str, Any] = {} if state is None else state
        self._columns: dict[str, np.ndarray | RFactor] = {}
        self.logical: set[str] = set()  # logical columns with NA, held as 1/0/NaN

    def column(self, name: str, node: Node | None = None) -> np.ndarray | RFactor:
        """The column *name*, converted by ``column_value``."""
        if name not in self._columns:
            if name not in self.names:
                raise self.unknown_column(name, node)
            if name in self.duplicated:
                raise self.located(f"the data have more than one column named '{name}'; "
                                   "rename them so that the formula names one", node)
            series = self.data[self.names[name]]
            if is_logical_with_na(series):
                self.logical.add(name)
            self._columns[name] = column_value(series, name)
        return self._columns[name]

    def unknown_column(self, name: str, node: Node | None) -> DataError:
        close = difflib.get_close_matches(name, list(self.names), n=1)
        hint = f"did you mean '{close[0]}'?" if close else \
            "the columns are: " + ", ".join(list(self.names)[:20])
        return self.located(f"column '{name}' not found in the data; {hint}", node)

    def located(self, message: str, node: Node | None) -> DataError:
        """A DataError whose message points at *node* in the formula, when it has a place."""
        if node is not None and node.start >= 0:
            message = caret_message(self.text, node.start, node.end, message)
        return DataError(message)

    def evaluate(self, node: Node) -> Value:
        """Evaluate one variable over all rows of the data."""
        if isinstance(node, Name) and node.name in self.names:
            values = self.column(node.name, node)
            if node.name in self.logical:  # R's logical, NA where missing
                return Logical(values == 1, np.isnan(values))
            # What evaluating the bare name would give, without compiling it (a
            # third of building a small model's design went there).
            return self.normalize(values, deparse(node), [node.name])
        namespace: dict[str, Any] = {}
        columns: list[str] = []
        expression = self.translate(node, namespace, columns)
        label = deparse(node)
        try:
            with np.errstate(all="ignore"):
                value = _compat.unwrap(_compat.evaluate(expression, namespace, self.state))
            return self.normalize(value, label, columns)
        except (TypeError, ValueError, ZeroDivisionError) as error:
            raise DataError(caret_message(self.text, max(node.start, 0), node.end,
                                          f"cannot evaluate '{label}': {error}")) from None

    def translate(self, node: Node, namespace: dict[str, Any], columns: list[str]) -> str:
        """Python source for *node*; fills *namespace* and the *columns* it reads."""
        if isinstance(node, Name):
            return self.translate_name(node, namespace, columns)
        if isinstance(node, Number):
            # Whole numbers as ints: Python functions take them as counts (poly(x, 2)).
            whole = node.value.is_integer()
            return repr(int(node.value)) if whole else repr(node.value)
        if isinstance(node, String):
            return repr(node.value)
        if isinstance(node, Paren):
            return f"({self.translate(node.inner, namespace, columns)})"
        if isinstance(node, Unary) and node.op in "+-!":
            operand = self.translate(node.operand, namespace, columns)
            return f"(~{operand})" if node.op == "!" else f"({node.op}{operand})"
        if isinstance(node, BinOp) and node.op in _PYTHON_OPS:
            left = self.translate(node.left, namespace, columns)
            right = self.translate(node.right, namespace, columns)
            return f"({left} {_PYTHON_OPS[node.op]} {right})"
        if isinstance(node, BinOp) and node.op in _FUNCTION_OPS:
            function = _FUNCTION_OPS[node.op]
            namespace[function] = R_FUNCTIONS[node.op]
            left = self.translate(node.left, namespace, columns)
            return f"{function}({left}, {self.translate(node.right, namespace, columns)})"
        if isinstance(node, Call):
            return self.translate_call(node, namespace, columns)
        where = node.op_start if isinstance(node, BinOp) else node.start
        raise FormulaError(caret_message(self.text, max(where, 0), message=(
            f"'{deparse(node)}' cannot be evaluated: this operator is not supported "
            "inside an expression")))

    def translate_name(self, node: Name, namespace: dict[str, Any], columns: list[str]) -> str:
        if node.name in self.names:
            # Named for the column, not its position: a transform's state is
            # keyed by the expression, which must read the same on new data.
            placeholder = "_c" + node.name.encode().hex()
            namespace[placeholder] = self.column(node.name, node)
            columns.append(node.name)
            return placeholder
        if node.name in R_CONSTANTS and not node.quoted:
            namespace[f"_k_{node.name}"] = R_CONSTANTS[node.name]
            return f"_k_{node.name}"
        if node.name in R_FUNCTIONS:  # a function passed as a value: C(f, contr.sum)
            return self.function_placeholder(node.name, node, namespace)
        raise self.unknown_column(node.name, node)

    def translate_call(self, node: Call, namespace: dict[str, Any], columns: list[str]) -> str:
        function = self.function_placeholder(node.func, node, namespace)
        args = []
        for arg in node.args:
            value = self.translate(arg.value, namespace, columns)
            args.append(value if arg.name is None else f"{arg.name.replace('.', '_')}={value}")
        return f"{function}({', '.join(args)})"

    def function_placeholder(self, name: str, node: Node, namespace: dict[str, Any]) -> str:
        function = R_FUNCTIONS.get(name) or _compat.formulaic_function(name)
        if function is None:
            raise FormulaError(caret_message(self.text, max(node.start, 0),
                                             node.start + len(name), f"unknown function '{name}'"))
        placeholder = "_f_" + "".join(c if c.isalnum() else "_" for c in name)
        namespace[placeholder] = function
        return placeholder

    def normalize(self, value: Any, label: str, columns: list[str]) -> Value:
        """Turn an evaluation result into a model-frame column of n rows."""
        n = len(self.data)
        if isinstance(value, dict):  # formulaic's spline bases: one entry per column
            return self.normalize(np.column_stack(list(value.values())), label, columns) \
                if value else Numeric(np.empty((n, 0)))
        if isinstance(value, pd.Series | pd.Index | pd.Categorical):
            value = column_value(pd.Series(value), label)
        if isinstance(value, RFactor):
            _check_length(len(value), n, label)
            return value
        array = np.asarray(value)
        _check_length(array.shape[0] if array.ndim else 1, n, label)
        if array.dtype == bool:
            # R's NA propagates through comparisons; numpy's NaN does not.
            na = np.zeros(n, dtype=bool)
            for name in columns:
                na |= _missing(self.column(name))
            return Logical(array.ravel(), na)
        if array.dtype == object:
            return as_factor(array)
        values = array.astype(float).reshape(n, -1)
        return Numeric(values)


def _missing(value: np.ndarray | RFactor) -> np.ndarray:
    if isinstance(value, RFactor):
        return value.missing()
    return np.isnan(value) if value.dtype.kind == "f" else np.zeros(len(value), dtype=bool)


def _check_length(length: int, n: int, label: str) -> None:
    if length != n:
        raise ValueError(f"it has {length} value(s) but the data have {n} rows "
                         "(R: variable lengths differ)")
