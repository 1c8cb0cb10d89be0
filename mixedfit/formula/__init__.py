"""lme4's formula language: parsing, R-style printing and R's term rules.

Examples
--------
>>> from mixedfit.formula import deparse_formula, parse_formula
>>> deparse_formula("Reaction~Days+(Days||Subject)")
'Reaction ~ Days + (Days || Subject)'
>>> [bar.label for bar in parse_formula("y ~ x + (x || g)").bars]
['1 | g', '0 + x | g']
"""

from .bars import Bar, lme4_deparse
from .deparse import deparse, deparse_formula
from .spec import ParsedFormula, parse_formula

__all__ = ["Bar", "ParsedFormula", "deparse", "deparse_formula", "lme4_deparse", "parse_formula"]
