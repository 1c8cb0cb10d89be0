"""Refitting a model with some of its arguments changed: R's ``update(fit, ...)``.

``mixedfit.mixed`` records itself and its arguments on the fit (``fit.call``,
a ``Call``, R's ``getCall(fit)``); ``update`` calls that function again with
the formula edited by R's ``update.formula`` and any keyword replaced.  As in
R, the data are the object the fit was made from, as it is now.  The function
comes with the fit, so this module (and ``drop1`` and ``ranova``, which refit
through it) sits below the face and ``mixed`` that call it.

Examples
--------
>>> import mixedfit as mf
>>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
>>> smaller = update(fit, ". ~ . - Days", reml=False)
>>> smaller.formula, smaller.reml
('Reaction ~ (Days | Subject)', False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ModelSpecError
from .formula.update import update_formula

__all__ = ["Call", "update", "call_of"]

_ARGUMENTS = ("data", "reml", "weights", "offset", "na_action", "data_name")


@dataclass(frozen=True)
class Call:
    """What made a fit, as R's ``getCall(fit)``: the function and its arguments."""

    function: Callable[..., Any]
    arguments: dict[str, Any]


def call_of(fit) -> dict[str, Any]:
    """The arguments ``mixedfit.mixed`` made *fit* with.

    Raises
    ------
    ModelSpecError
        For a fit not made by ``mixedfit.mixed`` (a refit to a new
        response, a bootstrap replicate), which has no data to refit from.
    """
    call = getattr(fit, "call", None)
    if call is None:
        raise ModelSpecError("this fit has no record of the data it was made from (only fits "
                             "made by mixedfit.mixed have one): fit it with mixedfit.mixed")
    return call.arguments


def update(fit, formula: str | None = None, **changes: Any):
    """Refit with an edited formula or other arguments, as R's ``update(fit, formula., ...)``.

    Parameters
    ----------
    fit : MixedResults
        A fit made by ``mixedfit.mixed``.
    formula : str, optional
        An edit in R's ``update.formula`` syntax of the fit's formula as lme4
        keeps it (``MixedResults.formula``, ``(x || g)`` expanded), ``.``
        standing for its parts: ``". ~ . - x"``, ``"~ . + z"``, ``"log(.) ~ ."``,
        ``". ~ . - (Days | Subject) + (1 | Subject)"``.
    **changes
        Arguments of ``mixedfit.mixed`` to replace: ``data``, ``reml``,
        ``weights``, ``offset``, ``na_action``, ``data_name``, ``start``,
        ``maxeval``.

    Returns
    -------
    MixedResults

    Raises
    ------
    ModelSpecError
        For an unknown keyword, or a fit that has no record of its data.

    Examples
    --------
    >>> import mixedfit as mf
    >>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
    >>> update(fit, "log(.) ~ .").formula
    'log(Reaction) ~ Days + (Days | Subject)'
    """
    unknown = sorted(set(changes) - set(_ARGUMENTS) - {"start", "maxeval"})
    if unknown:
        raise ModelSpecError(f"update() got unknown argument(s) {', '.join(unknown)}; it takes "
                             f"a formula and {', '.join(_ARGUMENTS + ('start', 'maxeval'))}")
    call = dict(call_of(fit))
    if "data" in changes and "data_name" not in changes:
        call["data_name"] = None  # the old name would describe other data
    call.update(changes)
    if formula is not None:
        # R edits formula(fit): lme4's, with (x || g) expanded
        call["formula"] = update_formula(fit.formula, formula)
    return fit.call.function(**call)
