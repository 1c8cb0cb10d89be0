"""R's ``terms()``: the variables and terms of a formula without bars.

A *variable* is anything that is not a formula operator (``Days``,
``log(x)``, ``I(Days^2)``); variables are numbered in order of first
appearance, the response first.  A *term* is a set of variables (a bit
mask); R expands ``a*b``, ``a/b``, ``a %in% b``, ``(a+b)^2`` and ``-``
into terms and sorts them by degree, keeping the written order within a
degree.  This is a port of ``EncodeVars`` in R's ``src/library/stats/src/model.c``.

Examples
--------
>>> from mixedfit.formula.parse import parse_formula_tree
>>> t = model_terms(*parse_formula_tree("y ~ a*b + c - 1"))
>>> t.labels(), t.intercept
(['a', 'b', 'c', 'a:b'], False)
"""

from __future__ import annotations

from dataclasses import dataclass

from mixedfit.errors import FormulaError, caret_message

from .deparse import deparse
from .nodes import BinOp, Call, Name, Node, Number, Paren, String, Unary

__all__ = ["ModelTerms", "model_terms", "term_variables", "FORMULA_OPERATORS"]

FORMULA_OPERATORS = {"+", "-", "*", "/", ":", "^", "%in%"}


@dataclass(frozen=True)
class ModelTerms:
    """The result of R's ``terms()`` on a formula.

    Attributes
    ----------
    variables : tuple of Node
        Variables in R's order (the response first when there is one).
    terms : tuple of int
        Bit masks over ``variables``, sorted as R sorts them.
    intercept : bool
    has_response : bool
    offsets : tuple of int
        Indices of the ``offset()`` variables.
    """

    variables: tuple[Node, ...]
    terms: tuple[int, ...]
    intercept: bool
    has_response: bool
    offsets: tuple[int, ...]

    def labels(self) -> list[str]:
        """R's ``attr(terms, "term.labels")``."""
        return [":".join(deparse(self.variables[i]) for i in term_variables(t))
                for t in self.terms]

    def drop_scope(self) -> list[str]:
        """R's ``drop.scope(terms)``: labels of the terms no other term contains.

        Examples
        --------
        >>> from mixedfit.formula.parse import parse_formula_tree
        >>> model_terms(*parse_formula_tree("y ~ a*b + c")).drop_scope()
        ['c', 'a:b']
        """
        return [label for label, t in zip(self.labels(), self.terms)
                if not any(u != t and u & t == t for u in self.terms)]


def term_variables(term: int) -> list[int]:
    """Indices of the variables in a term, in variable order."""
    return [i for i in range(term.bit_length()) if term >> i & 1]


class _Encoder:
    """EncodeVars: turns a formula's right-hand side into a list of terms."""

    def __init__(self, text: str, variables: list[Node]):
        self.text = text
        self.variables = variables
        self.intercept = True
        self.parity = True  # flipped while encoding the right of a '-'

    def fail(self, node: Node, message: str) -> FormulaError:
        return FormulaError(caret_message(self.text, max(node.start, 0), node.end, message))

    def bit(self, node: Node) -> int:
        return 1 << self.variables.index(node)

    def encode(self, node: Node) -> list[int]:
        if isinstance(node, Number):
            return self.encode_number(node)
        if isinstance(node, Paren):
            return self.encode(node.inner)
        if isinstance(node, Unary) and node.op in "+-":
            return self.encode(node.operand) if node.op == "+" else self.delete([], node.operand)
        if isinstance(node, BinOp) and node.op in FORMULA_OPERATORS:
            return self.encode_binary(node)
        return [self.bit(node)]

    def encode_number(self, node: Number) -> list[int]:
        if node.value not in (0.0, 1.0):
            raise self.fail(node, "invalid model formula: only 0 and 1 may appear as numbers "
                                  "(the intercept)")
        self.intercept = self.parity == (node.value == 1.0)
        return []

    def encode_binary(self, node: BinOp) -> list[int]:
        if node.op == "-":
            return self.delete(self.encode(node.left), node.right)
        if node.op == "^":
            return self.power(node)
        left, right = self.encode(node.left), self.encode(node.right)
        if node.op == "+":
            return _trim(left + right)
        if node.op == ":":
            return _trim([a | b for a in left for b in right])
        if node.op == "*":
            return _trim(left + right + [a | b for a in left for b in right])
        if node.op == "/":
            everything = _union(left)
            return _trim(left + [everything | b for b in right])
        everything = _union(right)  # %in%
        return _trim([a | everything for a in left])

    def delete(self, left: list[int], right: Node) -> list[int]:
        self.parity = not self.parity
        removed = self.encode(right)
        self.parity = not self.parity
        return [t for t in left if t not in removed]

    def power(self, node: BinOp) -> list[int]:
        exponent = node.right.inner if isinstance(node.right, Paren) else node.right
        if not (isinstance(exponent, Number) and exponent.value >= 1
                and exponent.value == int(exponent.value)):
            raise self.fail(node.right, "invalid power in formula: use a whole number >= 1 "
                                        "(write I(x^2) for a squared variable)")
        base = self.encode(node.left)
        result = base
        for _ in range(int(exponent.value) - 1):
            result = _trim([a | b for a in base for b in result])
        return result


def _trim(terms: list[int]) -> list[int]:
    """R's TrimRepeats: drop empty terms and repeats, keeping first occurrences."""
    return [t for t in dict.fromkeys(terms) if t]


def _union(terms: list[int]) -> int:
    result = 0
    for t in terms:
        result |= t
    return result


def _collect_variables(node: Node, text: str, found: list[Node], bars: bool = False) -> None:
    """R's ExtractVars: every non-operator expression, in order of appearance.

    With ``bars``, a bar term is one variable, as in R's own ``terms()``.
    """
    if isinstance(node, Number):
        return
    if isinstance(node, Paren):
        _collect_variables(node.inner, text, found, bars)
    elif isinstance(node, Unary) and node.op in "+-":
        _collect_variables(node.operand, text, found, bars)
    elif isinstance(node, BinOp) and node.op in FORMULA_OPERATORS:
        _collect_variables(node.left, text, found, bars)
        if node.op != "^":
            _collect_variables(node.right, text, found, bars)
    elif isinstance(node, Name) and node.name == "." and not node.quoted:
        raise FormulaError(caret_message(text, node.start, node.end,
                                         "'.' (all other columns) is not supported: "
                                         "name the columns"))
    elif isinstance(node, String):
        raise FormulaError(caret_message(text, node.start, node.end,
                                         "a string is not a model term"))
    elif isinstance(node, BinOp) and node.op in ("|", "||") and not bars:
        raise FormulaError(caret_message(text, node.op_start, node.op_start + len(node.op),
                                         "a random-effects term must be in parentheses "
                                         "and added with '+', e.g. y ~ x + (1 | g)"))
    elif node not in found:
        found.append(node)


def _is_offset(node: Node) -> bool:
    return isinstance(node, Call) and node.func == "offset"


def model_terms(response: Node | None, rhs: Node, text: str = "", *,
                bars_as_variables: bool = False) -> ModelTerms:
    """Apply R's ``terms()`` to ``response ~ rhs`` (a formula without bars).

    Parameters
    ----------
    response : Node or None
        The left-hand side (None for a one-sided formula).
    rhs : Node
        The right-hand side.
    text : str
        The formula text, for the carets of error messages.
    bars_as_variables : bool
        Treat each ``(x | g)`` as one variable, as R's ``terms()`` does (for
        ``update.formula``), instead of refusing it.

    Returns
    -------
    ModelTerms

    Examples
    --------
    >>> from mixedfit.formula.parse import parse_formula_tree
    >>> model_terms(*parse_formula_tree("y ~ meanses*cses + sector*cses")).labels()
    ['meanses', 'cses', 'sector', 'meanses:cses', 'cses:sector']
    """
    # The whole left-hand side is one variable (R allows no operators there
    # in a mixed model).
    variables: list[Node] = [] if response is None else [response]
    _collect_variables(rhs, text, variables, bars_as_variables)
    encoder = _Encoder(text, variables)
    terms = encoder.encode(rhs)
    offsets = tuple(i for i, v in enumerate(variables) if _is_offset(v))
    with_offset = _union([1 << i for i in offsets])
    terms = [t for t in terms if not t & with_offset]
    # R sorts terms by degree; the sort is stable.
    terms.sort(key=lambda t: bin(t).count("1"))
    return ModelTerms(tuple(variables), tuple(terms), encoder.intercept,
                      response is not None, offsets)
