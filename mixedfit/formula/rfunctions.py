"""R functions usable inside a formula, with R's semantics.

Values are numpy arrays (numeric or logical; NaN is R's NA) or
``RFactor``.  Functions follow R where it
matters for a model: ``scale`` ignores missing values when it computes the
mean and standard deviation (as R's does) and, as ``bs`` and ``ns``
(``splines``), keeps what it found for new rows; ``factor`` drops unused levels,
``log`` takes a ``base``.  Argument names are R's with ``.`` written ``_``
(``na.rm`` is ``na_rm``).

Examples
--------
>>> import numpy as np
>>> R_FUNCTIONS["scale"](np.array([1.0, 2.0, np.nan, 3.0])).tolist()
[-1.0, 0.0, nan, 1.0]
>>> R_FUNCTIONS["relevel"](R_FUNCTIONS["factor"](np.array(["a", "b"], dtype=object)), "b").levels
['b', 'a']
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from . import contrasts as _contrasts
from ._compat import stateful
from .contrasts import ContrastMatrix
from .rvalues import NOT_NUMERIC, RFactor, as_factor, level_label
from .splines import bs, ns

__all__ = ["R_FUNCTIONS", "R_CONSTANTS", "DATA_DEPENDENT"]

#: Functions whose value on a row depends on the other rows (R keeps their
#: parameters in the terms' ``predvars``); an ``Evaluator`` given their state
#: transforms new rows as the first data were.
DATA_DEPENDENT = frozenset({"scale", "poly", "ns", "bs", "cr", "cs", "cc", "center",
                            "standardize", "splines", "spline"})

R_CONSTANTS = {"TRUE": True, "T": True, "FALSE": False, "F": False, "NA": math.nan,
               "NaN": math.nan, "Inf": math.inf, "pi": math.pi}


def _numeric(x: Any) -> np.ndarray:
    if isinstance(x, RFactor):
        raise TypeError(NOT_NUMERIC)
    return np.asarray(x, dtype=float)


def _unary(function: Callable) -> Callable:
    return lambda x: function(_numeric(x))


def _log(x: Any, base: float = math.e) -> np.ndarray:
    values = np.log(_numeric(x))
    return values if base == math.e else values / math.log(base)


def _power(x: Any, y: Any) -> np.ndarray:
    # R's ^ is always on doubles (numpy refuses integer ** negative integer).
    return np.power(_numeric(x), _numeric(y))


def _round(x: Any, digits: int = 0) -> np.ndarray:
    return np.round(_numeric(x), int(digits))


@stateful
def _scale(x: Any, center: Any = True, scale: Any = True, _state: dict = {}) -> np.ndarray:  # noqa: B006
    """R's ``scale`` for one column: missing values are ignored, sd uses n - 1.

    The centre and scale found on the data fitted are kept in ``_state``
    and reused on new rows, as R's ``predvars`` (``scale(x, center = 4.5,
    scale = 2.88)``).
    """
    values = _numeric(x)
    if "center" not in _state:
        _state["center"] = float(np.nanmean(values)) if center is True else \
            None if center is False else float(center)
    if _state["center"] is not None:
        values = values - _state["center"]
    if "scale" not in _state:
        present = values[~np.isnan(values)]
        _state["scale"] = math.sqrt(np.sum(present**2) / (len(present) - 1)) if scale is True \
            else None if scale is False else float(scale)
    if _state["scale"] is not None:
        values = values / _state["scale"]
    return values


def _factor(x: Any, levels: Any = None, labels: Any = None, ordered: bool = False) -> RFactor:
    """R's ``factor``: unused levels dropped unless *levels* are given."""
    if isinstance(x, RFactor):
        factor = x if levels is not None else x.drop_unused()
        ordered = ordered or x.ordered
    else:
        factor = as_factor(x)
    if levels is not None:
        factor = factor.with_levels([level_label(v) for v in np.atleast_1d(levels).tolist()])
    names = factor.levels
    if labels is not None:
        names = [str(v) for v in np.atleast_1d(labels).tolist()]
        if len(names) != len(factor.levels):
            raise ValueError(f"{len(names)} labels for {len(factor.levels)} levels")
    return RFactor(factor.codes, names, ordered)


def _as_factor(x: Any) -> RFactor:
    return x if isinstance(x, RFactor) else as_factor(x)


def _ordered(x: Any, levels: Any = None) -> RFactor:
    return _factor(x, levels=levels, ordered=True)


def _relevel(x: Any, ref: Any) -> RFactor:
    """R's ``relevel``: move level *ref* (a label, or a 1-based position) first."""
    factor = _as_factor(x)
    label = factor.levels[int(ref) - 1] if isinstance(ref, (int, float)) else str(ref)
    if label not in factor.levels:
        raise ValueError(f"'ref' must be an existing level; {label!r} is not one of "
                         f"{factor.levels}")
    return factor.with_levels([label] + [v for v in factor.levels if v != label])


def _contrast_function(contr: Any) -> Callable:
    if callable(contr):
        return contr
    if isinstance(contr, str):
        name = contr if contr.startswith("contr.") else f"contr.{contr}"
        if name not in _CONTRASTS:
            raise ValueError(f"unknown contrasts {contr!r}; use one of {sorted(_CONTRASTS)}")
        return _CONTRASTS[name]
    matrix = contr if isinstance(contr, ContrastMatrix) else ContrastMatrix(np.asarray(
        contr, dtype=float), None)
    return lambda levels: matrix


def _C(x: Any, contr: Any = None) -> RFactor:  # noqa: N802 (R's name)
    """R's ``C``: a factor carrying the contrasts to code it with."""
    factor = _as_factor(x)
    chosen = _contrasts.default_contrasts(factor.ordered) if contr is None \
        else _contrast_function(contr)
    return RFactor(factor.codes, factor.levels, factor.ordered, chosen)


def _as_numeric(x: Any) -> np.ndarray:
    if isinstance(x, RFactor):
        return np.where(x.missing(), np.nan, x.codes + 1.0)
    return np.asarray(x, dtype=float)


def _as_integer(x: Any) -> np.ndarray:
    return np.trunc(_as_numeric(x))


def _as_logical(x: Any) -> np.ndarray:
    return np.asarray(_numeric(x) != 0)


def _as_character(x: Any) -> RFactor:
    # A character column becomes a factor with sorted levels in R's model frame.
    return as_factor(x.labels() if isinstance(x, RFactor) else np.asarray(
        [level_label(v) for v in np.asarray(x).tolist()], dtype=object))


def _is_na(x: Any) -> np.ndarray:
    return x.missing() if isinstance(x, RFactor) else np.isnan(_numeric(x))


def _ifelse(test: Any, yes: Any, no: Any) -> np.ndarray:
    return np.where(np.asarray(test, dtype=bool), yes, no)


def _in(x: Any, table: Any) -> np.ndarray:
    values = x.labels() if isinstance(x, RFactor) else np.asarray(x)
    table = table.labels() if isinstance(table, RFactor) else np.atleast_1d(table)
    return np.isin(values, table)


def _combine(*values: Any) -> np.ndarray:
    return np.concatenate([np.atleast_1d(v) for v in values])


def _summary(function: Callable, nan_function: Callable) -> Callable:
    def summary(x: Any, na_rm: bool = False) -> float:
        return float((nan_function if na_rm else function)(_numeric(x)))
    return summary


def _sd(x: Any, na_rm: bool = False) -> float:
    return float((np.nanstd if na_rm else np.std)(_numeric(x), ddof=1))


def _offset(x: Any) -> np.ndarray:
    return _numeric(x)


def _cbind(*columns: Any) -> np.ndarray:
    """R's ``cbind``: numeric columns side by side (a binomial response's successes and failures)."""
    return np.column_stack([_numeric(c) for c in columns])


_CONTRASTS: dict[str, Callable] = {
    "contr.treatment": _contrasts.contr_treatment,
    "contr.sum": _contrasts.contr_sum,
    "contr.helmert": _contrasts.contr_helmert,
    "contr.poly": _contrasts.contr_poly,
    "contr.SAS": _contrasts.contr_SAS,
}

R_FUNCTIONS: dict[str, Callable] = {
    "I": lambda x: x,
    "offset": _offset,
    "cbind": _cbind,
    "log": _log,
    "log2": _unary(np.log2),
    "log10": _unary(np.log10),
    "log1p": _unary(np.log1p),
    "exp": _unary(np.exp),
    "expm1": _unary(np.expm1),
    "sqrt": _unary(np.sqrt),
    "abs": _unary(np.abs),
    "sign": _unary(np.sign),
    "floor": _unary(np.floor),
    "ceiling": _unary(np.ceil),
    "trunc": _unary(np.trunc),
    "round": _round,
    "sin": _unary(np.sin),
    "cos": _unary(np.cos),
    "tan": _unary(np.tan),
    "asin": _unary(np.arcsin),
    "acos": _unary(np.arccos),
    "atan": _unary(np.arctan),
    "scale": _scale,
    "bs": bs,
    "ns": ns,
    "factor": _factor,
    "as.factor": _as_factor,
    "ordered": _ordered,
    "as.ordered": _ordered,
    "relevel": _relevel,
    "C": _C,
    "as.numeric": _as_numeric,
    "as.double": _as_numeric,
    "as.integer": _as_integer,
    "as.logical": _as_logical,
    "as.character": _as_character,
    "is.na": _is_na,
    "ifelse": _ifelse,
    "pmin": lambda *x: np.minimum.reduce([_numeric(v) for v in x]),
    "pmax": lambda *x: np.maximum.reduce([_numeric(v) for v in x]),
    "c": _combine,
    "%in%": _in,
    "^": _power,
    "mean": _summary(np.mean, np.nanmean),
    "median": _summary(np.median, np.nanmedian),
    "min": _summary(np.min, np.nanmin),
    "max": _summary(np.max, np.nanmax),
    "sum": _summary(np.sum, np.nansum),
    "sd": _sd,
    **_CONTRASTS,
}
