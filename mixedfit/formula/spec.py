"""A parsed lme4 formula: response, fixed part and random-effects terms.

Examples
--------
>>> f = parse_formula("Reaction ~ Days + (Days || Subject)")
>>> f.response_label, f.fixed_terms.labels(), [b.label for b in f.bars]
('Reaction', ['Days'], ['1 | Subject', '0 + Days | Subject'])
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from mixedfit.errors import FormulaError, caret_message

from .bars import Bar, split_bars
from .deparse import deparse
from .nodes import Node
from .parse import parse_formula_tree, require_text
from .rterms import ModelTerms, model_terms

__all__ = ["ParsedFormula", "parse_formula"]


@dataclass(frozen=True)
class ParsedFormula:
    """An lme4 formula split as ``lFormula`` splits it.

    Attributes
    ----------
    text : str
        The formula as given.
    response : Node
        The left-hand side.
    fixed : Node
        The right-hand side without bar terms (lme4's ``nobars``).
    bars : tuple of Bar
        The random-effects terms, ``||`` and ``/`` expanded (lme4's
        ``findbars``), before lme4 reorders them by number of levels.
    """

    text: str
    response: Node
    fixed: Node
    bars: tuple[Bar, ...]

    @functools.cached_property
    def response_label(self) -> str:
        return deparse(self.response)

    @functools.cached_property
    def fixed_terms(self) -> ModelTerms:
        """R's ``terms()`` of the fixed-effects formula (worked out once: building a design reads it a dozen times)."""
        return model_terms(self.response, self.fixed, self.text)

    def bar_terms(self, bar: Bar) -> ModelTerms:
        """R's ``terms()`` of ``~ lhs`` for one bar term (those of ``bars`` worked out once)."""
        for known, terms in zip(self.bars, self._bars_terms):
            if known is bar:
                return terms
        return model_terms(None, bar.lhs, self.text)

    @functools.cached_property
    def _bars_terms(self) -> tuple[ModelTerms, ...]:
        """``bar_terms`` of each of ``bars``: a design reads each three times."""
        return tuple(model_terms(None, bar.lhs, self.text) for bar in self.bars)


def parse_formula(text: str) -> ParsedFormula:
    """Parse an lme4 formula.

    Parameters
    ----------
    text : str
        A two-sided formula in R syntax, e.g. ``"Reaction ~ Days + (Days | Subject)"``.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    FormulaError
        For a malformed formula, with a caret under the problem.

    Examples
    --------
    >>> f = parse_formula("strength ~ (1 | batch/cask)")
    >>> [b.group_label for b in f.bars]
    ['cask:batch', 'batch']
    >>> parse_formula("y ~ x + 1|g")
    Traceback (most recent call last):
    ...
    mixedfit.errors.FormulaError: a random-effects term must be in parentheses: (x + 1 | g)
        y ~ x + 1|g
                 ^
    """
    return _parsed_formula(require_text(text))


@functools.lru_cache(maxsize=256)
def _parsed_formula(text: str) -> ParsedFormula:
    """``parse_formula`` once per formula text and process: the result is frozen, and keeps its ``fixed_terms``."""
    response, rhs = parse_formula_tree(text)
    if response is None:
        raise FormulaError(caret_message(text, 0, message="the formula has no response: "
                                                          "write it left of '~'"))
    fixed, bars = split_bars(rhs, text)
    return ParsedFormula(text, response, fixed, tuple(bars))
