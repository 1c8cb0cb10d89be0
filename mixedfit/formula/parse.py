"""Reading R formula text into a syntax tree.

The grammar is R's expression grammar restricted to what a model formula
uses: names (plain or backquoted), numbers, strings, calls with positional
or named arguments, parentheses, and R's operators with R's precedence
(see R's ``?Syntax``).  Every error is a ``FormulaError``
whose message has a caret under the offending spot.

Examples
--------
>>> from mixedfit.formula.parse import parse_expression
>>> parse_expression("a + b:c")
BinOp(op='+', left=Name(name='a'), right=BinOp(op=':', left=Name(name='b'), right=Name(name='c')))
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from mixedfit.errors import FormulaError, caret_message

from .nodes import Arg, BinOp, Call, Name, Node, Number, Paren, String, Unary

__all__ = ["parse_expression", "parse_formula_tree", "require_text"]

# Binding powers, from R's ?Syntax (higher binds tighter).
_BINARY_POWER = {
    "~": 10,
    "|": 20, "||": 20,
    "&": 30, "&&": 30,
    "==": 50, "!=": 50, "<": 50, ">": 50, "<=": 50, ">=": 50,
    "+": 60, "-": 60,
    "*": 70, "/": 70,
    "%": 80,  # any %op%
    ":": 90,
    "^": 110,
}
_NOT_POWER = 40      # `!x == 2` is `!(x == 2)`
_UNARY_POWER = 100   # `-a:b` is `(-a):b` but `-x^2` is `-(x^2)`
_RIGHT_ASSOC = {"^"}
# Parentheses, calls and signs nest no deeper than this (R's parser itself
# stops at 50 nested parentheses: "contextstack overflow"); deeper trees would
# overflow Python's stack in the recursive walks over the formula.
MAX_NESTING = 100

_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>0[xX][0-9a-fA-F]+L?|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?)
  | (?P<name>(?:[^\W\d]|\.(?!\d))[\w.]*)
  | (?P<backtick>`(?:[^`\\]|\\.)*`)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>\|\||&&|==|!=|<=|>=|\*\*|%[^%]*%|[~+\-*/^:|&!<>=(),])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'", "`": "`"}


@dataclass(frozen=True)
class _Token:
    kind: str  # "number", "name", "backtick", "string", "op" or "end"
    text: str
    start: int
    end: int


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise FormulaError(caret_message(text, pos, message=_bad_character(text, pos)))
        kind = match.lastgroup
        if kind != "space":
            tokens.append(_Token(kind, match.group(), pos, match.end()))
        pos = match.end()
    tokens.append(_Token("end", "", len(text), len(text)))
    _check_parentheses(text, tokens)
    return tokens


def _bad_character(text: str, pos: int) -> str:
    char = text[pos]
    if char in "`\"'":
        return f"unterminated {char}quoted{char} text"
    if char in "$@[]{};":
        return f"'{char}' is not supported in a model formula"
    return f"unexpected character {char!r} in formula"


def _check_parentheses(text: str, tokens: list[_Token]) -> None:
    """Report unbalanced parentheses before parsing, pointing at the culprit."""
    opened: list[_Token] = []
    for token in tokens:
        if token.kind != "op":
            continue
        if token.text == "(":
            opened.append(token)
        elif token.text == ")":
            if not opened:
                raise FormulaError(caret_message(
                    text, token.start,
                    message="unbalanced parentheses: this ')' has no matching '('"))
            opened.pop()
    if opened:
        raise FormulaError(caret_message(
            text, opened[-1].start, message="unbalanced parentheses: this '(' is never closed"))


class _Parser:
    """A Pratt parser over the tokens of one formula."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.depth = 0  # open parentheses, calls and signs around the current token

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def advance(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def fail(self, token: _Token, message: str) -> FormulaError:
        return FormulaError(caret_message(self.text, token.start, token.end,
                                          message + self.spaced_name_hint(token)))

    def spaced_name_hint(self, token: _Token) -> str:
        """A hint when *token* follows a name: most likely a column name with a space."""
        index = self.tokens.index(token)
        previous = self.tokens[index - 1] if index else None
        if previous is None or previous.kind not in ("name", "backtick") \
                or token.kind not in ("name", "backtick", "number"):
            return ""
        words = " ".join(_unescape(t.text[1:-1]) if t.kind == "backtick" else t.text
                         for t in (previous, token))
        return f"; write a name with spaces in backticks: `{words}`"

    def expect(self, text: str) -> _Token:
        token = self.advance()
        if token.text != text or token.kind != "op":
            raise self.fail(token, f"expected '{text}'")
        return token

    def parse_all(self) -> Node:
        node = self.expression(0)
        token = self.peek()
        if token.kind != "end":
            raise self.fail(token, f"unexpected {token.text!r}")
        return node

    def expression(self, right_power: int) -> Node:
        left = self.prefix(self.advance())
        while True:
            token = self.peek()
            power = _binary_power(token)
            if power <= right_power:
                return left
            self.advance()
            next_power = power - 1 if token.text in _RIGHT_ASSOC else power
            right = self.operand(token, next_power, "nothing on the right of")
            left = BinOp(_canonical(token.text), left, right,
                         start=left.start, end=right.end, op_start=token.start)

    def operand(self, operator: _Token, power: int, complaint: str) -> Node:
        """Parse what follows an operator, saying which operator lacks it."""
        token = self.peek()
        if token.kind == "end" or (token.kind == "op" and token.text in (")", ",", "|", "||")):
            raise self.fail(operator, f"{complaint} '{operator.text}'")
        return self.expression(power)

    def prefix(self, token: _Token) -> Node:
        nests = token.kind == "op" and token.text in ("(", "-", "+", "!", "~") or (
            token.kind in ("name", "backtick") and self.peek().text == "(")
        if not nests:
            return self.atom(token)
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(token, f"the formula nests parentheses, calls or signs more than "
                                   f"{MAX_NESTING} deep here")
        try:
            return self.atom(token)
        finally:
            self.depth -= 1

    def atom(self, token: _Token) -> Node:
        if token.kind == "number":
            return _number(token)
        if token.kind == "string":
            return String(_unescape(token.text[1:-1]), start=token.start, end=token.end)
        if token.kind in ("name", "backtick"):
            return self.name_or_call(token)
        if token.kind == "op" and token.text == "(":
            inner = self.expression(0)
            close = self.expect(")")
            return Paren(inner, start=token.start, end=close.end)
        if token.kind == "op" and token.text in ("-", "+", "!", "~"):
            power = {"!": _NOT_POWER, "~": _BINARY_POWER["~"]}.get(token.text, _UNARY_POWER)
            operand = self.operand(token, power, "nothing after")
            return Unary(token.text, operand, start=token.start, end=operand.end)
        if token.kind == "op" and token.text in ("|", "||"):
            raise self.fail(token, f"nothing on the left of '{token.text}' "
                                   "(a random-effects term needs a model, e.g. (1 | g))")
        if token.kind == "end":
            raise self.fail(token, "formula ends unexpectedly")
        raise self.fail(token, f"unexpected {token.text!r}")

    def name_or_call(self, token: _Token) -> Node:
        quoted = token.kind == "backtick"
        name = _unescape(token.text[1:-1]) if quoted else token.text
        if not (self.peek().kind == "op" and self.peek().text == "("):
            return Name(name, quoted=quoted, start=token.start, end=token.end)
        self.advance()
        args = []
        while not (self.peek().kind == "op" and self.peek().text == ")"):
            if args:
                self.expect(",")
            args.append(self.argument())
        close = self.advance()
        return Call(name, tuple(args), start=token.start, end=close.end)

    def argument(self) -> Arg:
        token, following = self.peek(), self.tokens[self.pos + 1]
        if token.kind in ("name", "backtick", "string") and following.text == "=" \
                and following.kind == "op":
            self.pos += 2
            name = token.text if token.kind == "name" else _unescape(token.text[1:-1])
            return Arg(name, self.expression(0))
        return Arg(None, self.expression(0))


def _binary_power(token: _Token) -> int:
    if token.kind != "op":
        return 0
    if token.text.startswith("%") and len(token.text) > 1:
        return _BINARY_POWER["%"]
    return _BINARY_POWER.get(_canonical(token.text), 0)


def _canonical(op: str) -> str:
    return "^" if op == "**" else op  # R reads `**` as `^`


def _number(token: _Token) -> Number:
    text = token.text
    integer = text.endswith("L")
    body = text[:-1] if integer else text
    value = float(int(body, 16)) if body[:2].lower() == "0x" else float(body)
    return Number(value, integer, start=token.start, end=token.end)


def parse_expression(text: str) -> Node:
    """Parse one R expression (a formula or a part of one).

    Parameters
    ----------
    text : str
        R source text.

    Returns
    -------
    Node
        The syntax tree.

    Raises
    ------
    FormulaError
        If the text is not a valid expression; the message shows where.

    Examples
    --------
    >>> parse_expression("I(Days^2)")
    Call(func='I', args=(Arg(name=None, value=BinOp(op='^', left=Name(name='Days'), right=Number(value=2.0, integer=False))),))
    """
    return _parsed(require_text(text))


def require_text(text: str) -> str:
    """``text``, where it is a string (the key of the caches of parsed formulas); else a ``FormulaError``."""
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be a string such as 'y ~ x + (1 | g)', not "
                           f"{type(text).__name__}")
    return text


@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> Node:
    """The tree of ``text``, parsed once per process: nodes are frozen, so every caller can share it
    (a fit parses its formula three times: the model, lme4's ``Formula:`` line, the formula as written)."""
    if not text.strip():
        raise FormulaError(caret_message(text, 0, message="empty formula"))
    return _Parser(text).parse_all()


def parse_formula_tree(text: str) -> tuple[Node | None, Node]:
    """Parse a formula and return its response (None if one-sided) and right-hand side.

    Examples
    --------
    >>> response, rhs = parse_formula_tree("y ~ x")
    >>> response, rhs
    (Name(name='y'), Name(name='x'))
    """
    tree = parse_expression(text)
    if isinstance(tree, Unary) and tree.op == "~":
        response, rhs = None, tree.operand
    elif isinstance(tree, BinOp) and tree.op == "~":
        response, rhs = tree.left, tree.right
    else:
        raise FormulaError(caret_message(
            text, 0, len(text), "a formula needs a '~' (e.g. 'y ~ x + (1 | g)')"))
    for part in (response, rhs):
        extra = _find_tilde(part)
        if extra is not None:
            raise FormulaError(caret_message(text, extra, message="a formula has only one '~'"))
    return response, rhs


def _find_tilde(node: Node | None) -> int | None:
    """Position of a nested '~' (not inside a call), or None."""
    if isinstance(node, BinOp):
        if node.op == "~":
            return node.op_start
        left = _find_tilde(node.left)
        return left if left is not None else _find_tilde(node.right)
    if isinstance(node, Unary):
        return node.start if node.op == "~" else _find_tilde(node.operand)
    if isinstance(node, Paren):
        return _find_tilde(node.inner)
    return None
