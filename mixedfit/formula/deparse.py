"""Writing syntax trees back as R's ``deparse`` does.

R's spacing rules: most binary operators get a space on each side, but
``/``, ``^``, ``:``, ``%%`` and ``%/%`` get none; prefix operators never do.
Numbers are written with up to 15 significant digits, in fixed or
scientific notation, whichever is narrower (R's ``formatReal``).

Examples
--------
>>> from mixedfit.formula.deparse import deparse_formula
>>> deparse_formula("Reaction~Days+(Days|Subject)")
'Reaction ~ Days + (Days | Subject)'
>>> deparse_formula("strength ~ 1 + (1|batch/cask)")
'strength ~ 1 + (1 | batch/cask)'
"""

from __future__ import annotations

import functools
import math
import re

from .nodes import Arg, BinOp, Call, Name, Node, Number, Paren, String, Unary
from .parse import parse_expression

__all__ = ["deparse", "deparse_formula", "format_number", "is_syntactic"]

_NO_SPACE_OPS = {"/", "^", ":", "%%", "%/%"}
_RESERVED = {
    "if", "else", "repeat", "while", "function", "for", "next", "break", "in",
    "TRUE", "FALSE", "NULL", "Inf", "NaN", "NA", "NA_integer_", "NA_real_",
    "NA_character_", "NA_complex_",
}
_CONSTANTS = {"TRUE", "FALSE", "NULL", "Inf", "NaN", "NA"}
_STRING_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def format_number(value: float, digits: int = 15) -> str:
    """Format a double as R prints it (``as.character``, ``deparse``).

    Examples
    --------
    >>> [format_number(v) for v in (100000.0, 123456.0, 0.001, 1e-4, 2.5, 1 / 3)]
    ['1e+05', '123456', '0.001', '1e-04', '2.5', '0.333333333333333']
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    significant = len(mantissa.replace("-", "").replace(".", "").rstrip("0"))
    power = int(exponent)
    negative = int(value < 0)
    # Width of each notation, as R's formatReal compares them.
    sci_width = negative + significant + (significant > 1) + (4 if abs(power) < 100 else 5)
    decimals = max(0, significant - power - 1)
    fixed_width = negative + max(power + 1, 1) + (decimals + 1 if decimals else 0)
    if fixed_width <= sci_width:
        return f"{value:.{decimals}f}"
    return f"{value:.{significant - 1}e}"


@functools.lru_cache(maxsize=4096)  # a design deparses its variables' names a few dozen times
def is_syntactic(name: str) -> bool:
    """Whether R can write *name* without backquotes.

    Examples
    --------
    >>> is_syntactic("Sepal.Length"), is_syntactic("my col"), is_syntactic(".2x")
    (True, False, False)
    """
    if name in _RESERVED:
        return False
    if name == ".":
        return True
    first_ok = name[:1].isalpha() or (name[:1] == "." and not name[1:2].isdigit())
    return first_ok and re.fullmatch(r"[\w.]*", name[1:]) is not None


def _name(name: str, quoted: bool = False) -> str:
    if name in _CONSTANTS and not quoted:
        return name
    return name if is_syntactic(name) else f"`{name}`"


def _string(value: str) -> str:
    return '"' + "".join(_STRING_ESCAPES.get(c, c) for c in value) + '"'


def _arg(arg: Arg) -> str:
    value = deparse(arg.value)
    return value if arg.name is None else f"{_name(arg.name)} = {value}"


def deparse(node: Node) -> str:
    """Write *node* as R's ``deparse`` writes the same expression.

    Examples
    --------
    >>> deparse(parse_expression("I(Days^2)+log(x,2)"))
    'I(Days^2) + log(x, 2)'
    """
    if isinstance(node, Name):
        return _name(node.name, node.quoted)
    if isinstance(node, Number):
        return f"{int(node.value)}L" if node.integer else format_number(node.value)
    if isinstance(node, String):
        return _string(node.value)
    if isinstance(node, Call):
        return f"{_name(node.func)}({', '.join(_arg(a) for a in node.args)})"
    if isinstance(node, Paren):
        return f"({deparse(node.inner)})"
    if isinstance(node, Unary):
        return f"{node.op}{deparse(node.operand)}"
    if isinstance(node, BinOp):
        sep = node.op if node.op in _NO_SPACE_OPS else f" {node.op} "
        return f"{deparse(node.left)}{sep}{deparse(node.right)}"
    raise TypeError(f"not a formula node: {node!r}")


@functools.lru_cache(maxsize=256)
def deparse_formula(text: str) -> str:
    """Return the formula *text* as R's ``deparse(formula)`` prints it.

    The result is one line (R's ``deparse(f, width.cutoff = 500)``).

    Parameters
    ----------
    text : str
        A formula in R syntax.

    Returns
    -------
    str

    Examples
    --------
    >>> deparse_formula("y~a*b+I(x^2)+(x||g)")
    'y ~ a * b + I(x^2) + (x || g)'
    >>> deparse_formula("log(Reaction) ~ 0+Days")
    'log(Reaction) ~ 0 + Days'
    """
    return deparse(parse_expression(text))
