"""Exceptions and warnings raised by mixedfit.

Every error names what is wrong with the user's input (the column, the level,
the position in the formula), so that it can be fixed without reading a
traceback.

Examples
--------
>>> import mixedfit as mf
>>> issubclass(mf.errors.FormulaError, mf.errors.MixedFitError)
True
"""

from __future__ import annotations

import inspect
import os
import warnings

import numpy as np

__all__ = [
    "MixedFitError",
    "FormulaError",
    "DataError",
    "ModelSpecError",
    "MixedFitWarning",
    "SingularFitWarning",
    "ConvergenceWarning",
    "RankDeficiencyWarning",
    "ScaleWarning",
    "require_bool",
    "warn",
]


class MixedFitError(ValueError):
    """Base class of every error mixedfit raises about its input."""


class FormulaError(MixedFitError):
    """The formula cannot be read; the message points at the position."""


class DataError(MixedFitError):
    """The data cannot be used: a missing column, a bad value, a bad level."""


class ModelSpecError(MixedFitError):
    """The model cannot be fitted as asked: too many random effects for the data,
    or an option with an unusable value (``na_action``, ``start``, ``maxeval``)."""


class MixedFitWarning(UserWarning):
    """Base class of mixedfit's warnings."""


class SingularFitWarning(MixedFitWarning):
    """The fit is on the boundary: a variance is zero or a correlation is ±1."""


class ConvergenceWarning(MixedFitWarning):
    """The optimizer stopped early or the gradient at the optimum is large."""


class RankDeficiencyWarning(MixedFitWarning):
    """The fixed-effects matrix is rank deficient; columns were dropped."""


class ScaleWarning(MixedFitWarning):
    """Predictors are on very different scales; consider rescaling."""


def require_bool(value: object, name: str) -> bool:
    """*value* as a bool, refusing anything but True or False (``bool("no")`` is True).

    Examples
    --------
    >>> require_bool(False, "reml")
    False
    >>> require_bool("no", "allow_new_levels")
    Traceback (most recent call last):
    ...
    mixedfit.errors.ModelSpecError: allow_new_levels must be True or False, not 'no'
    """
    if not isinstance(value, (bool, np.bool_)):  # as R, which refuses "no" for a logical
        raise ModelSpecError(f"{name} must be True or False, not {value!r}")
    return bool(value)


def caret_message(text: str, start: int, end: int | None = None, message: str = "") -> str:
    """Return *message* followed by *text* with a caret line under ``text[start:end]``.

    Examples
    --------
    >>> print(caret_message("y ~ (x | g", 4, message="unbalanced parenthesis"))
    unbalanced parenthesis
        y ~ (x | g
            ^
    """
    end = start + 1 if end is None else max(end, start + 1)
    return f"{message}\n    {text}\n    {' ' * start}{'^' * (end - start)}"


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _user_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside mixedfit, seen from ``warn``'s caller."""
    frame = inspect.currentframe()
    level = 0
    try:
        while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
            frame = frame.f_back
            level += 1
    finally:
        del frame  # a frame kept alive keeps every local of the stack alive
    return max(level, 1)


def warn(message: str, category: type[Warning] = MixedFitWarning) -> None:
    """Issue a warning attributed to the user's line, not to mixedfit's.

    Python's ``stacklevel`` counts frames from the call; a fixed count points
    into the library whenever the call is reached by another path, so the
    level is found by walking out of the package.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn("consider rescaling", ScaleWarning)
    >>> caught[0].filename.startswith(_PACKAGE_DIR)
    False
    """
    warnings.warn(message, category, stacklevel=_user_stacklevel())
