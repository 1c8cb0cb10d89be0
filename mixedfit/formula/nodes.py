"""Syntax-tree nodes of an R formula.

Nodes compare and hash by structure only (their source positions are left
out), the way R matches two variables of a formula: ``log(x)`` written twice
is one variable.

Examples
--------
>>> from mixedfit.formula.parse import parse_expression
>>> parse_expression("log(x)") == parse_expression("log( x )")
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["Node", "Name", "Number", "String", "Arg", "Call", "BinOp", "Unary", "Paren",
           "called_functions"]


@dataclass(frozen=True)
class Node:
    """Base of all nodes; ``start``/``end`` locate the node in the formula text."""

    start: int = field(default=-1, compare=False, repr=False, kw_only=True)
    end: int = field(default=-1, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Name(Node):
    """A symbol: a column or a constant (``Days``, ``TRUE``, a backquoted name).

    ``quoted`` records backquotes, which make a reserved word (```TRUE```) a
    plain symbol.
    """

    name: str
    quoted: bool = field(default=False, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Number(Node):
    """A numeric literal; ``integer`` for R's ``2L``."""

    value: float
    integer: bool = False


@dataclass(frozen=True)
class String(Node):
    """A string literal."""

    value: str


@dataclass(frozen=True)
class Arg:
    """One argument of a call, named (``center = FALSE``) or not."""

    name: str | None
    value: Node


@dataclass(frozen=True)
class Call(Node):
    """A function call ``func(args)``."""

    func: str
    args: tuple[Arg, ...]


@dataclass(frozen=True)
class BinOp(Node):
    """A binary operator; ``op_start`` is where the operator sits in the text."""

    op: str
    left: Node
    right: Node
    op_start: int = field(default=-1, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Unary(Node):
    """A prefix operator: ``-x``, ``+x``, ``!x`` or a one-sided ``~x``."""

    op: str
    operand: Node


@dataclass(frozen=True)
class Paren(Node):
    """Explicit parentheses, kept because R keeps (and deparses) them."""

    inner: Node


def called_functions(node: Node) -> set[str]:
    """Names of the functions called anywhere in a syntax tree.

    Examples
    --------
    >>> from mixedfit.formula.parse import parse_expression
    >>> sorted(called_functions(parse_expression("log(poly(x, 2) + 1)")))
    ['log', 'poly']
    """
    found: set[str] = set()
    stack: list = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Arg):
            stack.append(item.value)
            continue
        if not isinstance(item, Node):
            continue
        if isinstance(item, Call):
            found.add(item.func)
        for f in dataclasses.fields(item):
            value = getattr(item, f.name)
            stack.extend(value if isinstance(value, tuple) else [value])
    return found
