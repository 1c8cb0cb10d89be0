"""R's contrast functions: ``contr.treatment``, ``contr.sum``, ``contr.helmert``,
``contr.poly`` and ``contr.SAS``.

Each takes the number of levels or the list of level labels (as R's do) and
returns a ``ContrastMatrix``: one row per level, one column per
contrast, with R's column names (``None`` where R has none; the model
matrix then numbers the columns ``1, 2, ...``).

Examples
--------
>>> contr_treatment(["A", "B", "C"]).colnames
['B', 'C']
>>> contr_poly(3).colnames
['.L', '.Q']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ContrastMatrix", "contr_treatment", "contr_sum", "contr_helmert", "contr_poly",
           "contr_SAS", "default_contrasts"]


@dataclass(frozen=True)
class ContrastMatrix:
    """A contrast matrix with R's column names (None: unnamed)."""

    values: np.ndarray
    colnames: list[str] | None


def _levels(n: int | Sequence[str]) -> list[str]:
    if isinstance(n, int | np.integer | float):
        return [str(i + 1) for i in range(int(n))]
    return [str(level) for level in n]


def contr_treatment(n: int | Sequence[str], base: int = 1) -> ContrastMatrix:
    """Treatment contrasts: each level against level *base* (1-based).

    Examples
    --------
    >>> contr_treatment(3).values.tolist()
    [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    """
    levels = _levels(n)
    keep = [i for i in range(len(levels)) if i != base - 1]
    return ContrastMatrix(np.eye(len(levels))[:, keep], [levels[i] for i in keep])


def contr_SAS(n: int | Sequence[str]) -> ContrastMatrix:  # noqa: N802 (R's name)
    """Treatment contrasts against the last level."""
    return contr_treatment(n, base=len(_levels(n)))


def contr_sum(n: int | Sequence[str]) -> ContrastMatrix:
    """Sum-to-zero contrasts.

    Examples
    --------
    >>> contr_sum(3).values.tolist()
    [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]
    """
    k = len(_levels(n))
    return ContrastMatrix(np.vstack([np.eye(k - 1), -np.ones(k - 1)]), None)


def contr_helmert(n: int | Sequence[str]) -> ContrastMatrix:
    """Helmert contrasts: each level against the mean of the earlier ones.

    Examples
    --------
    >>> contr_helmert(3).values.tolist()
    [[-1.0, -1.0], [1.0, -1.0], [0.0, 2.0]]
    """
    k = len(_levels(n))
    values = np.zeros((k, k - 1))
    for j in range(k - 1):
        values[: j + 1, j] = -1.0
        values[j + 1, j] = j + 1.0
    return ContrastMatrix(values, None)


def contr_poly(n: int | Sequence[str]) -> ContrastMatrix:
    """Orthogonal polynomial contrasts (R's default for ordered factors).

    Column j is the part of ``scores**j`` orthogonal to the lower powers,
    scaled to unit length, exactly as R's ``make.poly``.

    Examples
    --------
    >>> np.round(contr_poly(3).values, 4).tolist()
    [[-0.7071, 0.4082], [-0.0, -0.8165], [0.7071, 0.4082]]
    """
    k = len(_levels(n))
    scores = np.arange(1.0, k + 1)
    powers = np.vander(scores - scores.mean(), k, increasing=True)
    q, r = np.linalg.qr(powers)
    # Q's columns times R's diagonal do not depend on the QR's sign choices.
    raw = q * np.diag(r)
    raw /= np.sqrt((raw**2).sum(axis=0))
    names = [".L", ".Q", ".C"] + [f"^{d}" for d in range(4, k)]
    return ContrastMatrix(raw[:, 1:], names[: k - 1])


def default_contrasts(ordered: bool):
    """R's ``options("contrasts")``: treatment, or polynomial if ordered."""
    return contr_poly if ordered else contr_treatment
