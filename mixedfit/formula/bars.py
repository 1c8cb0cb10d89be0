"""lme4's random-effects syntax: finding, expanding and removing bar terms.

Ports of lme4's ``expandDoubleVerts`` (``(x || g)`` becomes
``(1 | g) + (0 + x | g)``), ``findbars`` with its slash expansion
(``(1 | a/b)`` becomes ``(1 | b:a) + (1 | a)``, inner factor first, as lme4
names it) and ``nobars`` (the fixed-effects part).

Examples
--------
>>> from mixedfit.formula.parse import parse_formula_tree
>>> fixed, bars = split_bars(parse_formula_tree("y ~ x + (x || g)")[1])
>>> [bar.label for bar in bars]
['1 | g', '0 + x | g']
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from mixedfit.errors import FormulaError, caret_message

from .deparse import deparse
from .nodes import BinOp, Node, Number, Paren, Unary
from .parse import parse_expression
from .rterms import model_terms, term_variables

__all__ = ["Bar", "split_bars"]

_BARS = ("|", "||")


@dataclass(frozen=True)
class Bar:
    """One random-effects term ``(lhs | group)`` after lme4's expansions.

    Attributes
    ----------
    lhs : Node
        The term's model (``1``, ``Days``, ``0 + Machine``).
    group : Node
        The grouping factor expression (``Subject``, ``b:a``).
    correlated : bool
        False for a piece of an expanded ``||`` term.
    """

    lhs: Node
    group: Node
    correlated: bool = True

    @property
    def label(self) -> str:
        """The term as lme4 deparses it (``names(getME(fit, "Ztlist"))``)."""
        return f"{deparse(self.lhs)} | {deparse(self.group)}"

    @property
    def group_label(self) -> str:
        """The grouping factor's name as lme4 prints it."""
        return deparse(self.group)


def _fail(text: str, node: Node, message: str, at_operator: bool = True) -> FormulaError:
    if at_operator and isinstance(node, BinOp):
        return FormulaError(caret_message(text, node.op_start, node.op_start + len(node.op),
                                          message))
    return FormulaError(caret_message(text, max(node.start, 0), node.end, message))


def _as_bar(node: Node) -> BinOp | None:
    """The bar inside ``( ... )``, if *node* is a parenthesised bar."""
    if isinstance(node, Paren):
        inner = node.inner
        while isinstance(inner, Paren):
            inner = inner.inner
        if isinstance(inner, BinOp) and inner.op in _BARS:
            return inner
    return None


def _check_no_bars(node: Node, text: str) -> None:
    """Reject bars anywhere but as parenthesised terms added with '+'."""
    if isinstance(node, BinOp):
        if node.op in _BARS:
            raise _fail(text, node, "random-effects terms must be in parentheses and added "
                                    "with '+', e.g. y ~ x + (1 | g)")
        _check_no_bars(node.left, text)
        _check_no_bars(node.right, text)
    elif isinstance(node, Unary):
        _check_no_bars(node.operand, text)
    elif isinstance(node, Paren):
        _check_no_bars(node.inner, text)


def _collect(node: Node, text: str, found: list[BinOp]) -> Node | None:
    """Move the bars of an additive chain into *found*; return what is left."""
    bar = _as_bar(node)
    if bar is not None:
        _check_no_bars(bar.left, text)
        _check_no_bars(bar.right, text)
        found.append(bar)
        return None
    if isinstance(node, BinOp) and node.op in _BARS:
        raise _fail(text, node, "a random-effects term must be in parentheses: "
                                f"({deparse(node.left)} {node.op} {deparse(node.right)})")
    if isinstance(node, BinOp) and node.op in "+-":
        left = _collect(node.left, text, found)
        if node.op == "-":
            _check_no_bars(node.right, text)
            right = node.right
        else:
            right = _collect(node.right, text, found)
        return _join(node, left, right)
    if isinstance(node, Paren) and isinstance(node.inner, BinOp) and node.inner.op == "+":
        inner = _collect(node.inner, text, found)
        return None if inner is None else Paren(inner, start=node.start, end=node.end)
    _check_no_bars(node, text)
    return node


def _join(node: BinOp, left: Node | None, right: Node | None) -> Node | None:
    if left is None and right is None:
        return None
    if left is None:
        return right if node.op == "+" else Unary("-", right, start=node.op_start, end=node.end)
    if right is None:
        return left
    return BinOp(node.op, left, right, start=node.start, end=node.end, op_start=node.op_start)


def _expand_double(bar: BinOp, text: str) -> list[Bar]:
    """lme4's expandDoubleVert: one uncorrelated term per term of the model."""
    terms = model_terms(None, bar.left, text)
    pieces = [Bar(Number(1.0, start=bar.left.start, end=bar.left.end), bar.right, False)] \
        if terms.intercept else []
    for term in terms.terms:
        variables = [terms.variables[i] for i in term_variables(term)]
        product = variables[0]
        for variable in variables[1:]:
            product = BinOp(":", product, variable, start=product.start, end=variable.end)
        lhs = BinOp("+", Number(0.0), product, start=product.start, end=product.end)
        pieces.append(Bar(lhs, bar.right, False))
    return pieces


def _slash_leaves(group: Node, text: str) -> list[Node]:
    """Leaves of a left-nested ``a/b/c`` grouping (one leaf if no slash)."""
    if isinstance(group, BinOp) and group.op == "/":
        right = _slash_leaves(group.right, text)
        if len(right) > 1:
            raise _fail(text, group.right, "unparseable grouping factor: write a/b/c")
        return _slash_leaves(group.left, text) + right
    if "/" in deparse(group):
        raise _fail(text, group, "unparseable grouping factor: '/' must be at the top, "
                                 "as in (1 | a/b)", at_operator=False)
    return [group]


def _expand_slash(bar: Bar, text: str) -> list[Bar]:
    """lme4's expandSlash: ``a/b/c`` gives ``c:(b:a)``, ``b:a`` and ``a``."""
    leaves = _slash_leaves(bar.group, text)
    groups = [leaves[0]]
    for leaf in leaves[1:]:
        outer = groups[0]
        outer = Paren(outer, start=outer.start, end=outer.end) if isinstance(outer, BinOp) \
            else outer
        groups.insert(0, BinOp(":", leaf, outer, start=leaf.start, end=leaf.end))
    return [Bar(bar.lhs, group, bar.correlated) for group in groups]


def split_bars(rhs: Node, text: str = "") -> tuple[Node, list[Bar]]:
    """Split a right-hand side into its fixed part and its bar terms.

    Parameters
    ----------
    rhs : Node
        The formula's right-hand side.
    text : str
        The formula text, for the carets of error messages.

    Returns
    -------
    fixed : Node
        The right-hand side without bars (``1`` if nothing is left), as
        lme4's ``nobars``.
    bars : list of Bar
        The bar terms in lme4's ``findbars`` order, ``||`` and ``/`` expanded.

    Examples
    --------
    >>> from mixedfit.formula.parse import parse_formula_tree
    >>> fixed, bars = split_bars(parse_formula_tree("y ~ 0 + (1 | a/b)")[1])
    >>> deparse(fixed), [bar.label for bar in bars]
    ('0', ['1 | b:a', '1 | a'])
    """
    found: list[BinOp] = []
    fixed = _collect(rhs, text, found)
    bars: list[Bar] = []
    for node in found:
        pieces = _expand_double(node, text) if node.op == "||" else [Bar(node.left, node.right)]
        for piece in pieces:
            bars.extend(_expand_slash(piece, text))
    if fixed is None:
        fixed = Number(1.0)
    return fixed, bars



def expand_double_verts(node: Node, text: str = "") -> Node:
    """lme4's ``expandDoubleVerts`` on a whole formula, for printing it as lme4 does.

    Each ``(x || g)`` becomes ``((1 | g) + (0 + x | g))``, which is what
    ``formula(fit)`` and so lme4's ``Formula:`` line show.

    Examples
    --------
    >>> from mixedfit.formula.parse import parse_expression
    >>> deparse(expand_double_verts(parse_expression("y ~ x + (x || g)")))
    'y ~ x + ((1 | g) + (0 + x | g))'
    """
    if isinstance(node, Paren):
        bar = _as_bar(node)
        if bar is not None and bar.op == "||":
            pieces: list[Node] = [Paren(BinOp("|", b.lhs, b.group)) for b in _expand_double(bar, text)]
            total = pieces[0]
            for piece in pieces[1:]:
                total = BinOp("+", total, piece)
            return Paren(total)
        return Paren(expand_double_verts(node.inner, text))
    if isinstance(node, BinOp):
        return BinOp(node.op, expand_double_verts(node.left, text), expand_double_verts(node.right, text))
    if isinstance(node, Unary):
        return Unary(node.op, expand_double_verts(node.operand, text))
    return node


@functools.lru_cache(maxsize=256)
def lme4_deparse(text: str) -> str:
    """The formula as lme4's ``Formula:`` line prints it: deparsed, ``||`` expanded.

    Examples
    --------
    >>> lme4_deparse("Reaction~Days+(Days||Subject)")
    'Reaction ~ Days + ((1 | Subject) + (0 + Days | Subject))'
    """
    return deparse(expand_double_verts(parse_expression(text), text))
