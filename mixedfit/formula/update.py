"""R's ``update.formula``: a formula edited with ``.`` standing for the old one.

``update.formula(old, new)`` puts the old response for each ``.`` left of
``~`` in *new* and the old right-hand side for each ``.`` right of it (a
one-sided *new* keeps the old response), then rewrites the right-hand side
from its terms, as ``terms.formula(simplify = TRUE)`` does: term labels in
R's order joined by ``+`` (a bar term, one variable to R, in parentheses),
``offset()`` terms last and ``- 1`` when there is no intercept.

Examples
--------
>>> update_formula("Reaction ~ Days + (Days | Subject)", ". ~ . - Days")
'Reaction ~ (Days | Subject)'
>>> update_formula("Reaction ~ Days + (Days | Subject)", "log(.) ~ . - (Days | Subject) + (1 | Subject)")
'log(Reaction) ~ Days + (1 | Subject)'
"""

from __future__ import annotations

from mixedfit.errors import FormulaError, caret_message

from .deparse import deparse, deparse_formula
from .nodes import Arg, BinOp, Call, Name, Node, Paren, Unary
from .parse import parse_formula_tree
from .rterms import model_terms

__all__ = ["update_formula"]


def _is_dot(node: Node) -> bool:
    return isinstance(node, Name) and node.name == "." and not node.quoted


def _expand_dots(node: Node, value: Node, operand: bool = False) -> Node:
    """R's ExpandDots: *node* with every ``.`` replaced by *value*.

    An operator expression put where an operator's operand was is
    parenthesised, so ``(.)^2`` of ``a + b`` stays ``(a + b)^2``.
    """
    if _is_dot(node):
        return Paren(value) if operand and isinstance(value, (BinOp, Unary)) else value
    if isinstance(node, BinOp):
        return BinOp(node.op, _expand_dots(node.left, value, True), _expand_dots(node.right, value, True))
    if isinstance(node, Unary):
        return Unary(node.op, _expand_dots(node.operand, value, True))
    if isinstance(node, Paren):
        return Paren(_expand_dots(node.inner, value))
    if isinstance(node, Call):
        return Call(node.func, tuple(Arg(a.name, _expand_dots(a.value, value)) for a in node.args))
    return node


def _simplified_rhs(response: Node | None, rhs: Node, text: str) -> str:
    """``terms.formula(simplify = TRUE)``'s right-hand side (R's fixFormulaObject)."""
    terms = model_terms(response, rhs, text, bars_as_variables=True)
    labels = [f"({label})" if "|" in label else label for label in terms.labels()]
    labels += [deparse(terms.variables[i]) for i in terms.offsets]
    text = " + ".join(labels) if labels else "1"
    return text if terms.intercept else f"{text} - 1"


def update_formula(old: str, new: str) -> str:
    """R's ``update.formula(old, new)``, deparsed as R prints the result.

    Parameters
    ----------
    old : str
        The formula to edit, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    new : str
        The edit: ``". ~ . - Days"``, ``"~ . + z"`` (one-sided: the response
        is kept), ``"log(.) ~ ."``, ``". ~ . - (Days | Subject) + (1 | Subject)"``.

    Returns
    -------
    str
        The new formula, as R's ``deparse(update.formula(old, new))``.

    Raises
    ------
    FormulaError
        For a malformed formula, or a ``.`` left of ``~`` when *old* has no
        response.

    Examples
    --------
    >>> update_formula("y ~ a * b + (1 | g)", ". ~ . - a:b")
    'y ~ a + b + (1 | g)'
    >>> update_formula("y ~ a + (1 | g)", "~ . - 1")
    'y ~ a + (1 | g) - 1'
    """
    old_response, old_rhs = parse_formula_tree(old)
    new_response, new_rhs = parse_formula_tree(new)
    if new_response is None:
        response = old_response
    elif old_response is None and _has_dot(new_response):
        raise FormulaError(caret_message(new, max(new_response.start, 0), new_response.end,
                                         f"'.' stands for the old response, but {old!r} has none"))
    else:
        response = None if new_response is None else _expand_dots(new_response, old_response)
    rhs = _expand_dots(new_rhs, Paren(old_rhs))
    rhs_text = _simplified_rhs(response, rhs, new)
    lhs_text = "" if response is None else deparse(response) + " "
    return deparse_formula(f"{lhs_text}~ {rhs_text}")


def _has_dot(node: Node) -> bool:
    if _is_dot(node):
        return True
    if isinstance(node, BinOp):
        return _has_dot(node.left) or _has_dot(node.right)
    if isinstance(node, Unary):
        return _has_dot(node.operand)
    if isinstance(node, Paren):
        return _has_dot(node.inner)
    if isinstance(node, Call):
        return any(_has_dot(a.value) for a in node.args)
    return False
