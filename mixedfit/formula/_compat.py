"""The one place that touches formulaic.

mixedfit builds model matrices itself, because R's rules for term order,
column order and contrasts differ from formulaic's (``y ~ a:b`` with an
intercept is rank deficient in R; formulaic reduces it).  formulaic is used
to *evaluate* the variables: its stateful evaluator runs each variable's
(translated) expression, and its transforms supply R-compatible functions
that R users write in formulas (``poly``, ``center``, mgcv's ``cr`` ...).

Examples
--------
>>> import numpy as np
>>> evaluate("_x * 2", {"_x": np.arange(3)}, {}).tolist()
[0, 2, 4]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from formulaic.materializers.types import FactorValues
from formulaic.transforms import TRANSFORMS
from formulaic.utils.stateful_transforms import stateful_eval, stateful_transform

__all__ = ["evaluate", "formulaic_function", "stateful", "unwrap"]

# formulaic transforms that behave as the R functions of the same name.
_R_COMPATIBLE = ("poly", "cr", "cs", "cc", "center", "lag")


def formulaic_function(name: str) -> Callable | None:
    """formulaic's implementation of the R function *name*, if it has one."""
    return TRANSFORMS[name] if name in _R_COMPATIBLE else None


def evaluate(expression: str, namespace: Mapping[str, Any],
             state: MutableMapping[str, Any]) -> Any:
    """Evaluate a Python *expression* over *namespace*.

    *state* collects the state of stateful transforms (e.g. the knots of
    ``bs``), as formulaic keeps it for later prediction.
    """
    return stateful_eval(expression, namespace, None, state, None)


def stateful(function: Callable) -> Callable:
    """*function* as a stateful transform: ``evaluate`` passes it ``_state``, its
    own dict in the shared state, where it keeps what it found on the data
    (``poly``'s coefficients, spline knots) for new rows."""
    return stateful_transform(function)


def unwrap(value: Any) -> Any:
    """The plain value inside formulaic's ``FactorValues`` wrapper."""
    return value.__wrapped__ if isinstance(value, FactorValues) else value
