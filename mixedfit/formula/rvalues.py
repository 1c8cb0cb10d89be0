"""R's factors: level order, level labels and the factor type itself.

R's ``factor(x)`` sorts the distinct values: numbers numerically, strings by
the locale's collation.  R on Linux and macOS collates with ICU's root
locale, which ``collation_key`` reproduces for ASCII text: letters
compare case-insensitively first (lower case first on a tie), digits come
before letters, punctuation before digits.  Level labels of numbers are
``as.character`` of them (``1e+05``, ``0.5``).

Examples
--------
>>> import numpy as np
>>> f = as_factor(np.array(["b", "B", "a", "b"], dtype=object))
>>> f.levels, f.codes.tolist()
(['a', 'b', 'B'], [1, 2, 0, 1])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from .deparse import format_number

__all__ = ["NOT_NUMERIC", "RFactor", "as_factor", "collation_key", "distinct", "level_label", "level_labels_of",
           "sort_levels"]

# ICU root collation order of the printable ASCII characters (primary
# strength, case folded), as R's sort() returns them.
_ASCII_ORDER = " _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789abcdefghijklmnopqrstuvwxyz"
_PRIMARY = {char: rank for rank, char in enumerate(_ASCII_ORDER)}


# collation_key's ranks, one more than _PRIMARY's, as bytes that compare as the
# ranks do: below 255 one byte (every ASCII character's), from 255 on the byte 255
# and three more, big-endian (the largest, past Unicode's last code point, is
# below 2**24).  For ASCII text, bytes.translate tables: upper case letters take
# their lower case's rank, and the case table gives 1 where a letter is upper case.
_ESCAPE = 255


def _rank(char: str) -> int:
    return 1 + _PRIMARY.get(char, len(_PRIMARY) + ord(char))


_ASCII_RANKS = bytes(_rank(chr(code).lower()) if code < 128 else 0 for code in range(256))
_ASCII_CASE = bytes(chr(code).isupper() if code < 128 else 0 for code in range(256))


def collation_key(text: str) -> bytes:
    """Sort key reproducing R's (ICU root) string order for ASCII text.

    Letters compare case-insensitively first, by their ranks in ``_ASCII_ORDER``
    (other characters after them, by code point), and then lower case first.
    The key is the ranks' bytes, a zero byte (below every rank, so that a
    prefix sorts first) and the case bytes: one byte string, which ``sorted``
    compares without a Python step per character (50,000 levels sorted:
    134–164 → 19–25 ms).

    Examples
    --------
    >>> sorted(["b", "B", "a1", "A1", "a10", "a2", "a_b", "a.b"], key=collation_key)
    ['a_b', 'a.b', 'a1', 'A1', 'a10', 'a2', 'b', 'B']
    """
    if text.isascii():
        raw = text.encode("ascii")
        return raw.translate(_ASCII_RANKS) + b"\0" + raw.translate(_ASCII_CASE)
    ranks = (_rank(c) for c in text.lower())
    primary = b"".join(bytes((r,)) if r < _ESCAPE else bytes((_ESCAPE,)) + r.to_bytes(3, "big") for r in ranks)
    return primary + b"\0" + bytes(c.isupper() for c in text)


def level_label(value: object) -> str:
    """The label R gives a value when it becomes a factor level.

    Examples
    --------
    >>> level_label(3), level_label(2.5), level_label(1e5), level_label(True)
    ('3', '2.5', '1e+05', 'TRUE')
    """
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return format_number(float(value))
    return str(value)


def level_labels_of(values: Sequence) -> list[str]:
    """``level_label`` of every value; a list of strings is returned as it is.

    Examples
    --------
    >>> level_labels_of(["b", "a"]), level_labels_of([1, 2.5])
    (['b', 'a'], ['1', '2.5'])
    """
    values = list(values)
    if all(type(v) is str for v in values):  # factors of text: thousands of levels, no formatting
        return values
    if all(type(v) is int for v in values):  # of whole numbers (a categorical of ids): their digits
        return list(map(str, values))
    return [level_label(v) for v in values]


def sort_levels(values: Sequence) -> list:
    """Distinct values in the order R's ``factor()`` puts them.

    Examples
    --------
    >>> sort_levels([10, 2, 2, 1])
    [1, 2, 10]
    """
    distinct = list(dict.fromkeys(values))
    return [distinct[i] for i in _level_order(distinct)]


def _level_order(distinct: list, text: bool | None = None) -> list[int]:
    """The positions of distinct values in R's level order: text by ``collation_key``, other values as they compare.

    ``text``: whether every value is a string, where the caller knows (None: they are looked at).
    """
    if not (all(isinstance(v, str) for v in distinct) if text is None else text):
        keys = distinct
    else:
        order = _ascii_order(distinct) if len(distinct) >= _ASCII_ORDER_LEVELS else None
        if order is not None:
            return order.tolist()
        keys = [collation_key(v) for v in distinct]
    return sorted(range(len(keys)), key=keys.__getitem__)


_ASCII_ORDER_WIDTH = 64  # longest text _ascii_order takes: its keys are as wide as the longest, for every text
# Fewest texts it orders: below, numpy's fixed costs exceed the keys' (120 texts: 45 µs each way).
_ASCII_ORDER_LEVELS = 128


def _ascii_order(texts: list[str]) -> np.ndarray | None:
    """``collation_key``'s order of ASCII texts, by numpy: their keys as rows of bytes, sorted as integers.

    Each text's ranks, zeros to the longest text's length (below every rank,
    so a prefix sorts first), then its case bytes: 8 bytes at a time, as
    big-endian integers, the rows are sorted by ``np.lexsort`` (50,000 levels:
    41–43 → 14–17 ms against ``collation_key`` one by one).  None where a text
    is not ASCII, ends in NUL characters (which numpy's byte strings drop) or is
    longer than ``_ASCII_ORDER_WIDTH``, and where there are none.

    Examples
    --------
    >>> _ascii_order(["b", "B", "a1", "a"]).tolist(), _ascii_order(["é"]) is None
    ([3, 2, 0, 1], True)
    """
    lengths = np.fromiter(map(len, texts), dtype=np.intp, count=len(texts))
    if not texts or lengths.max() > _ASCII_ORDER_WIDTH:
        return None
    width = max(1, int(lengths.max()))
    try:
        raw = np.array(texts, dtype=f"S{width}")
    except UnicodeEncodeError:
        return None
    if not np.array_equal(np.char.str_len(raw), lengths):
        return None
    chars = raw.view(np.uint8).reshape(len(texts), width)
    inside = np.arange(width) < lengths[:, None]  # NUL characters inside a text have a rank; padding none
    keys = np.zeros((len(texts), -(-2 * width // 8) * 8), dtype=np.uint8)
    keys[:, :width] = np.where(inside, np.frombuffer(_ASCII_RANKS, np.uint8)[chars], 0)
    keys[:, width: 2 * width] = np.frombuffer(_ASCII_CASE, np.uint8)[chars]
    words = keys.view(">u8")
    return np.lexsort(words.T[::-1])


#: Why a factor cannot be used as numbers, for the errors that say so.
NOT_NUMERIC = "a factor is not numeric; use as.numeric() for its codes"


def _refused(op: str | None = None) -> Callable:
    """An operator R refuses on a factor (``'+' not meaningful for factors``)."""
    message = NOT_NUMERIC if op is None else \
        f"'{op}' is not meaningful for a factor; use as.numeric() for its codes"

    def refuse(*_: object) -> None:
        raise TypeError(message)
    return refuse


class RFactor:
    """An R factor: integer codes into a list of level labels.

    Parameters
    ----------
    codes : array of int
        Index into *levels* of each element; -1 marks a missing value.
    levels : list of str
        Level labels, in order.
    ordered : bool
        An ordered factor (R codes it with polynomial contrasts).
    contrasts : callable, optional
        Contrasts set with ``C()``; ``None`` means R's default.

    Examples
    --------
    >>> f = RFactor(np.array([0, 1, -1]), ["a", "b"])
    >>> (f == "b").tolist(), f.missing().tolist()
    ([False, True, False], [False, False, True])
    """

    __hash__ = None  # comparisons are elementwise, as R's
    # Arithmetic and order are R errors on a factor; their messages name no Python type.
    __add__ = __radd__ = __pos__ = _refused("+")
    __sub__ = __rsub__ = __neg__ = _refused("-")
    __mul__ = __rmul__ = _refused("*")
    __truediv__ = __rtruediv__ = _refused("/")
    __floordiv__ = __rfloordiv__ = _refused("%/%")
    __mod__ = __rmod__ = _refused("%%")
    __pow__ = __rpow__ = _refused("^")
    __lt__, __le__, __gt__, __ge__ = (_refused(op) for op in ("<", "<=", ">", ">="))
    __float__ = _refused()

    def __init__(self, codes: np.ndarray, levels: list[str], ordered: bool = False,
                 contrasts: Callable | None = None):
        self.codes = np.asarray(codes, dtype=np.intp)
        self.levels = list(levels)
        self.ordered = ordered
        self.contrasts = contrasts

    def __len__(self) -> int:
        return len(self.codes)

    def __repr__(self) -> str:
        return f"RFactor({self.labels().tolist()!r}, levels={self.levels!r})"

    def labels(self) -> np.ndarray:
        """Each element's level label (None where missing)."""
        table = np.array(self.levels + [None], dtype=object)
        return table[self.codes]

    def missing(self) -> np.ndarray:
        return self.codes < 0

    def __eq__(self, other: object) -> np.ndarray:  # type: ignore[override]
        return _compare(self, other, np.equal)

    def __ne__(self, other: object) -> np.ndarray:  # type: ignore[override]
        return _compare(self, other, np.not_equal)

    def take(self, rows: np.ndarray) -> RFactor:
        """The elements at *rows* (levels unchanged)."""
        return RFactor(self.codes[rows], self.levels, self.ordered, self.contrasts)

    def with_levels(self, levels: list[str]) -> RFactor:
        """Recode onto *levels* (labels not among them become missing)."""
        position = {label: i for i, label in enumerate(levels)}
        table = np.array([position.get(label, -1) for label in self.levels] + [-1])
        return RFactor(table[self.codes], levels, self.ordered, self.contrasts)

    def drop_unused(self) -> RFactor:
        """Drop levels that no element uses (R's ``droplevels``)."""
        used = np.zeros(len(self.levels) + 1, dtype=bool)
        used[self.codes] = True  # a missing value's code, -1, marks the extra last entry
        if used[:-1].all():
            return self
        return self.with_levels([label for label, u in zip(self.levels, used) if u])


def distinct(values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` for integers in [0, size).

    Where the range is not much larger than the data, marking a table of that
    size replaces the sort (the Schur pattern of InstEval: 65 → 7 ms; the
    8,000 levels of a three-level nested grouping factor on 80,000 rows: 3 → 0.2 ms).

    Examples
    --------
    >>> distinct(np.array([5, 2, 5, 7]), 8)
    (array([2, 5, 7]), array([1, 0, 1, 2], dtype=int32))
    """
    if size > 8 * values.size + 1024:
        return np.unique(values, return_inverse=True)
    seen = np.zeros(size, bool)
    seen[values] = True
    found = np.flatnonzero(seen)
    # Ranks written where a value is, not over the whole table as a cumulative
    # sum would (the 9M-entry table of the benchmark's 3,003-column rest: 75 → 57 ms).
    ranks = np.empty(size, np.int32 if size < 2**31 else np.int64)
    ranks[found] = np.arange(found.size, dtype=ranks.dtype)
    return found, ranks[values]


def _compare(factor: RFactor, other: object, op: Callable) -> np.ndarray:
    other_labels = other.labels() if isinstance(other, RFactor) else other
    result = op(factor.labels(), other_labels)
    return np.asarray(result, dtype=bool) & ~factor.missing()


def as_factor(values: object) -> RFactor:
    """Make an R factor of *values*, as R's ``factor()`` would.

    Categoricals keep their categories' order; other values get R's sorted
    levels.  Values with the same label are one level, as in R (see
    ``_by_label``).  Missing values (None, NaN) get code -1.

    Examples
    --------
    >>> as_factor(np.array([2.0, 10.0, np.nan, 2.0])).levels
    ['2', '10']
    >>> as_factor(np.array([0.3, 0.1 + 0.2])).codes.tolist()
    [0, 0]
    """
    if isinstance(values, RFactor):
        return values
    if isinstance(values, pd.Categorical | pd.Series) and isinstance(
            getattr(values, "dtype", None), pd.CategoricalDtype):
        categorical = values.array if isinstance(values, pd.Series) else values  # no new Categorical
        return _by_label(categorical.codes, categorical.categories.tolist(),
                         bool(categorical.ordered))
    text_column = isinstance(values, pd.Series) and values.dtype.kind not in "biuf"  # stays as pandas holds it
    if not text_column:
        values = np.asarray(values)
    if values.size < _HASHED_ROWS:  # to_numpy: a quarter of np.asarray's time on pandas' strings
        return _few_values_factor(values.to_numpy(dtype=object) if text_column else values)
    if values.dtype.kind in "iu":  # whole numbers: their decimal digits are their labels, one a number
        found, codes = _distinct_integers(values)
        return RFactor(codes.astype(np.intp, copy=False), level_labels_of(found.tolist()))
    if values.dtype.kind in "bf":  # other numbers by numpy's sort
        missing = pd.isna(values)
        found, inverse = np.unique(values[~missing], return_inverse=True)
        codes = np.full(len(values), -1, dtype=np.intp)
        codes[~missing] = inverse.reshape(-1)
        if values.dtype.kind == "f" and np.all(np.abs(found) < 2.0**53) and np.all(found == np.trunc(found)):
            return RFactor(codes, _whole_number_labels(found))  # ids read as doubles (a column with NA)
        return _by_label(codes, found.tolist())
    # Other values distinct by pandas' hash table (missing ones coded -1), so that
    # only the distinct ones pass through Python: 200,000 rows of 50,000 text
    # levels, 403–441 → 58–69 ms.
    first_seen, uniques = pd.factorize(values)
    text = isinstance(values.dtype, pd.StringDtype)  # pandas' strings: each distinct value a str, its own label
    uniques = uniques.tolist()
    order = _level_order(uniques, text or None)
    rank = np.full(len(order) + 1, -1, dtype=np.intp)  # the last entry, -1, is where code -1 reads
    rank[order] = np.arange(len(order))
    codes, levels = rank[first_seen], [uniques[i] for i in order]
    return RFactor(codes, levels) if text else _by_label(codes, levels)


# Fewest values as_factor makes distinct by numpy or pandas: below, a dict is quicker (300: 122 against 157 µs).
_HASHED_ROWS = 512


def _distinct_integers(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` of whole numbers, through ``distinct`` on their offsets
    from the least, which takes its table where their range is compact (ids 0 … 99,999 on 1,000,000
    rows: 91 → 4 ms; their factor 618 → 31 ms)."""
    low = int(values.min())
    span = int(values.max()) - low + 1
    if span >= 2**62:  # offsets that would not fit a signed index
        found, inverse = np.unique(values, return_inverse=True)
        return found, inverse.reshape(-1)
    found, inverse = distinct((values - low).astype(np.intp, copy=False), span)
    return found + low, inverse


def _whole_number_labels(values: np.ndarray) -> list[str]:
    """``level_label`` of distinct whole numbers below 2⁵³ held as doubles, each its own label.

    R prints such a number in full unless scientific notation is shorter,
    which takes five trailing zeros at least (``1e+05``; ``1200000`` stays):
    only those go through ``format_number`` (50,000 levels: 209 → 8 ms).

    Examples
    --------
    >>> _whole_number_labels(np.array([-3.0, 0.0, 100000.0, 1200000.0, 123456.0]))
    ['-3', '0', '1e+05', '1200000', '123456']
    """
    whole = values.astype(np.int64)
    labels = level_labels_of(whole.tolist())
    for i in np.flatnonzero((whole % 100_000 == 0) & (whole != 0)).tolist():
        labels[i] = format_number(float(values[i]))
    return labels


def _few_values_factor(values: np.ndarray) -> RFactor:
    """``as_factor`` of a few values (not a categorical), through a Python dict."""
    missing = pd.isna(values)
    present = values[~missing].tolist()
    distinct = sort_levels(present)
    position = {value: i for i, value in enumerate(distinct)}
    codes = np.full(len(values), -1, dtype=np.intp)
    codes[~missing] = [position[value] for value in present]
    return _by_label(codes, distinct)


def _by_label(codes: np.ndarray, values: list, ordered: bool = False) -> RFactor:
    """A factor of *codes* into *values* whose levels are the values' labels.

    R's ``factor()`` matches ``as.character`` of the data against the
    distinct labels, so values that print alike at 15 significant digits
    (``0.3`` and ``0.1 + 0.2``) are one level, placed where the first of
    them sorts.

    Examples
    --------
    >>> _by_label(np.array([0, 1, 2, -1]), [0.1 + 0.2, 0.3, 0.5]).codes.tolist()
    [0, 0, 1, -1]
    """
    labels = level_labels_of(values)
    levels = list(dict.fromkeys(labels))
    if len(levels) == len(labels):
        return RFactor(codes, labels, ordered)
    position = {label: i for i, label in enumerate(levels)}
    table = np.array([position[label] for label in labels] + [-1], dtype=np.intp)
    return RFactor(table[np.asarray(codes, dtype=np.intp)], levels, ordered)
