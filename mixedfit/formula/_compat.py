"""The one place that touches formulaic.

mixedfit builds model matrices itself, because R's rules for term order,
column order and contrasts differ from formulaic's (``y ~ a:b`` with an
intercept is rank deficient in R; formulaic reduces it).  formulaic is used
to *evaluate* the variables: its stateful evaluator runs each variable's
(translated) expression, and its transforms supply R-compatible functions
that R users write in formulas (``poly``, ``center``, mgcv's ``cr`` ...).
It is imported on first use, not with mixedfit: a formula of plain column
names never needs it, and it took about 0.1 s of ``import mixedfit``.

Examples
--------
>>> import numpy as np
>>> evaluate("_x * 2", {"_x": np.arange(3)}, {}).tolist()
[0, 2, 4]
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

__all__ = ["evaluate", "formulaic_function", "stateful", "unwrap"]

# formulaic transforms that behave as the R functions of the same name.
_R_COMPATIBLE = ("poly", "cr", "cs", "cc", "center", "lag")


def formulaic_function(name: str) -> Callable | None:
    """formulaic's implementation of the R function *name*, if it has one."""
    if name not in _R_COMPATIBLE:
        return None
    from formulaic.transforms import TRANSFORMS

    return TRANSFORMS[name]


def evaluate(expression: str, namespace: Mapping[str, Any],
             state: MutableMapping[str, Any]) -> Any:
    """Evaluate a Python *expression* over *namespace*.

    *state* collects the state of stateful transforms (e.g. the knots of
    ``bs``), as formulaic keeps it for later prediction.  Where the namespace
    holds no stateful transform, formulaic would only parse, walk and compile
    the expression before evaluating it as it stands: its compiled code is
    kept instead (``I(age^2)``: 40–60 → 2 µs an evaluation).
    """
    if not any(getattr(value, "__is_stateful_transform__", False) for value in namespace.values()):
        return eval(_compiled(expression), {}, namespace)  # nosec: the formula's own translation
    from formulaic.utils.stateful_transforms import stateful_eval

    return stateful_eval(expression, namespace, None, state, None)


@functools.lru_cache(maxsize=256)
def _compiled(expression: str):
    """The code of a Python expression, compiled once per text."""
    return compile(expression, "<formula>", "eval")


class _Stateful:
    """A stateful transform whose formulaic wrapper is made at its first call, when ``evaluate`` calls it.

    formulaic's evaluator knows a stateful transform by the mark below.
    """

    __is_stateful_transform__ = True

    def __init__(self, function: Callable):
        functools.update_wrapper(self, function)
        self._function = function
        self._transform: Callable | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._transform is None:
            from formulaic.utils.stateful_transforms import stateful_transform

            self._transform = stateful_transform(self._function)
        return self._transform(*args, **kwargs)

    def __reduce__(self) -> str:
        return self.__qualname__  # by reference, as the module-level function it replaces


def stateful(function: Callable) -> Callable:
    """*function* as a stateful transform: ``evaluate`` passes it ``_state``, its
    own dict in the shared state, where it keeps what it found on the data
    (``poly``'s coefficients, spline knots) for new rows."""
    return _Stateful(function)


def unwrap(value: Any) -> Any:
    """The plain value inside formulaic's ``FactorValues`` wrapper (values ``evaluate`` returned)."""
    from formulaic.materializers.types import FactorValues

    return value.__wrapped__ if isinstance(value, FactorValues) else value
