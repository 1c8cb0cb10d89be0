"""R's number formatting and console printing, re-implemented exactly.

lme4's ``print()`` and ``summary()`` output is built from a handful of R
primitives: ``format()`` of numeric vectors (C ``formatReal``), ``round()``,
``signif()``, ``zapsmall()``, ``format.pval()``, ``printCoefmat()``,
``abbreviate()``, ``strwrap()``, ``cat(fill = TRUE)`` and ``print.default``
of named vectors and character matrices.  This module ports each of them
from R 4.2's sources so that the text is identical character for character.

Conventions
-----------
* R's ``NA`` is Python ``None``; a float NaN is R's ``NaN``.
* Printing functions return exactly what R writes to the console, including
  the final newline (``cat``/``print`` always end with one).
* Only the defaults lme4 relies on are modelled: ``options(digits = 7,
  scipen = 0, width = 80, OutDec = ".")`` in a UTF-8 locale.

Examples
--------
>>> format_num([612.0954, 35.07, 654.94], digits=4)
['612.10', ' 35.07', '654.94']
>>> print_named_vector(format_num([1.5, -2.25]), ["a", "b"])
'    a     b \\n 1.50 -2.25 \\n'
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

__all__ = [
    "is_na", "r_pow_di", "format_real_info", "encode_real", "format_num", "format_str", "cat_num",
    "r_round", "signif", "zapsmall", "zapsmall_array", "quantile7", "format_c", "format_pval",
    "abbreviate", "strwrap", "cat_fill", "print_named_vector", "print_numeric_named",
    "print_char_matrix", "print_coefmat", "format_coefmat", "R_WIDTH", "R_DIGITS", "DOUBLE_EPS",
    "COR_MAX", "SIGNIF_LEGEND",
]

Number = float | int | None

#: ``getOption("width")``
R_WIDTH = 80
#: ``getOption("digits")``
R_DIGITS = 7
#: ``.Machine$double.eps``
DOUBLE_EPS = 2.220446049250313e-16
#: lme4's ``getOption("lme4.summary.cor.max")``
COR_MAX = 12

# Powers of ten exactly representable in an x87 80-bit long double; R's
# ``scientific()`` uses them for its scaling (``KP_MAX`` in format.c).
_KP_MAX = 27
_LDBL_MANT_BITS = 64
_DBL_DIG = 15
_NA_WIDTH = 2  # nchar("NA")

SIGNIF_LEGEND = "0 \u2018***\u2019 0.001 \u2018**\u2019 0.01 \u2018*\u2019 0.05 \u2018.\u2019 0.1 \u2018 \u2019 1"
"""``attr(symnum(...), "legend")`` for printCoefmat's stars, in a UTF-8 locale."""


# --------------------------------------------------------------------------
# helpers: NA tests and long-double arithmetic
# --------------------------------------------------------------------------
def is_na(x: Number) -> bool:
    """R's ``is.na()`` for one number: ``None`` (NA) or NaN."""
    return x is None or (isinstance(x, float) and math.isnan(x))


def _as_number(x: object) -> Number:
    """Normalise numpy scalars to Python floats; keep ``None`` (NA)."""
    if x is None:
        return None
    if isinstance(x, (bool, np.bool_)):
        return float(x)
    return float(x)  # type: ignore[arg-type]


def _round_ldouble(q: Fraction) -> Fraction:
    """Round an exact rational to the nearest x87 long double (64-bit
    significand, ties to even), as each long-double operation in R's C does."""
    if q == 0:
        return q
    sign = -1 if q < 0 else 1
    q = abs(q)
    # exponent e with 2**e <= q < 2**(e+1)
    e = q.numerator.bit_length() - q.denominator.bit_length()
    if Fraction(2) ** e > q:
        e -= 1
    scale = Fraction(2) ** (_LDBL_MANT_BITS - 1 - e)
    m, rem = divmod(q * scale, 1)
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and m % 2 == 1):
        m += 1
    return sign * Fraction(m) / scale


def _nearbyint(q: Fraction) -> int:
    """C ``nearbyint`` in the default rounding mode: ties to even."""
    return round(q)


def r_pow_di(x: float, n: int) -> float:
    """R's ``R_pow_di``: integer power by repeated squaring in doubles."""
    xn = 1.0
    if math.isnan(x):
        return x
    if n != 0:
        if not math.isfinite(x):
            return x**n
        neg = n < 0
        n = abs(n)
        while True:
            if n & 1:
                xn *= x
            n >>= 1
            if n:
                x *= x
            else:
                break
        if neg:
            xn = 1.0 / xn
    return xn


# --------------------------------------------------------------------------
# formatReal / encodeReal  (src/main/format.c, printutils.c)
# --------------------------------------------------------------------------
def _sci_via_sprintf(r: float, digits: int) -> tuple[int, int]:
    """``format_via_sprintf``: kpower and nsig from C's ``%#.*e`` when
    ``digits`` exceeds what the long-double path can resolve."""
    buff = "%#.*e" % (digits - 1, r)
    kpower = int(buff[digits + 1 :].lstrip("e"))
    i = digits
    while i >= 2 and buff[i] == "0":
        i -= 1
    return kpower, i


def _scientific(x: float, digits: int) -> tuple[int, int, int, bool]:
    """R's ``scientific()``: sign, decimal exponent, significant digits and
    whether rounding to ``digits`` widens the fixed representation.

    Returns
    -------
    tuple
        ``(neg, kpower, nsig, roundingwidens)`` where
        ``|x| ~= alpha * 10**kpower`` with ``1 <= alpha < 10`` after rounding
        to ``digits`` significant digits, and ``nsig`` counts those digits
        without trailing zeros.
    """
    if x == 0.0:
        return 0, 0, 1, False
    neg = 1 if x < 0 else 0
    r = -x if neg else x
    if digits >= _DBL_DIG + 1:
        kpower, nsig = _sci_via_sprintf(r, digits)
        return neg, kpower, nsig, False
    kp = math.floor(math.log10(r)) - digits + 1
    # The scaling runs in long double; emulate its 64-bit rounding exactly
    # because it decides ties such as 0.15 with digits = 1.
    r_prec = Fraction(r)
    if abs(kp) <= _KP_MAX:
        if kp > 0:
            r_prec = _round_ldouble(r_prec / 10**kp)
        elif kp < 0:
            r_prec = _round_ldouble(r_prec * 10**-kp)
    else:
        r_prec = _round_ldouble(r_prec / _round_ldouble(Fraction(10) ** kp))
    if r_prec < 10 ** (digits - 1):
        r_prec = _round_ldouble(r_prec * 10)
        kp -= 1
    alpha = float(_nearbyint(r_prec))
    nsig = digits
    for _ in range(digits):
        alpha /= 10.0
        if alpha == math.floor(alpha):
            nsig -= 1
        else:
            break
    if nsig == 0 and digits > 0:
        nsig = 1
        kp += 1
    kpower = kp + digits - 1
    # Scientific rounding may be coarser than fixed: 9996 with 3 digits is
    # 1e+04 but prints as 9996 in fixed notation.
    rgt = min(max(digits - kpower, 0), _KP_MAX)
    fuzz = 0.5 / float(10**rgt)
    widens = (
        0 < kpower <= _KP_MAX
        and Fraction(r) < _round_ldouble(Fraction(10**kpower) - Fraction(fuzz))
    )
    return neg, kpower, nsig, widens


def format_real_info(
    x: Sequence[Number], digits: int = R_DIGITS, nsmall: int = 0, scipen: int = 0
) -> tuple[int, int, int]:
    """R's ``formatReal``: the common width, decimals and exponent flag.

    Parameters
    ----------
    x : sequence of float or None
        Values; ``None`` is NA, NaN/Inf are R's non-finite values.
    digits : int
        Significant digits (``R_print.digits``).
    nsmall : int
        Minimum decimals in fixed notation (``format(nsmall=)``).
    scipen : int
        ``options(scipen)``: penalty against scientific notation.

    Returns
    -------
    tuple of int
        ``(w, d, e)``: field width, digits after the point (fixed) or in the
        mantissa (scientific), and 0 for fixed or the exponent digits - 1.
    """
    naflag = nanflag = posinf = neginf = False
    neg = 0
    rgt = mxl = mxsl = mxns = None
    mnl = None
    for v in x:
        if v is None:
            naflag = True
        elif math.isnan(v):
            nanflag = True
        elif math.isinf(v):
            posinf, neginf = (True, neginf) if v > 0 else (posinf, True)
        else:
            neg_i, kpower, nsig, widens = _scientific(float(v), digits)
            left = kpower + 1
            if widens:
                left -= 1
            sleft = neg_i + (1 if left <= 0 else left)
            right = nsig - left
            if neg_i:
                neg = 1
            rgt = right if rgt is None else max(rgt, right)
            mxl = left if mxl is None else max(mxl, left)
            mnl = left if mnl is None else min(mnl, left)
            mxsl = sleft if mxsl is None else max(mxsl, sleft)
            mxns = nsig if mxns is None else max(mxns, nsig)
    if mxns is None:  # all values non-finite
        w = d = e = 0
    else:
        if digits == 0:
            rgt = 0
        if mxl < 0:
            mxsl = 1 + neg
        rgt = max(rgt, 0)
        w_fixed = mxsl + rgt + (rgt != 0)
        e = 2 if (mxl > 100 or mnl <= -99) else 1
        d = mxns - 1
        w = neg + (d > 0) + d + 4 + e
        if w_fixed <= w + scipen:
            e = 0
            if nsmall > rgt:
                rgt = nsmall
                w_fixed = mxsl + rgt + (rgt != 0)
            d = rgt
            w = w_fixed
    if naflag:
        w = max(w, _NA_WIDTH)
    if nanflag or posinf:
        w = max(w, 3)
    if neginf:
        w = max(w, 4)
    return w, d, e


def encode_real(x: Number, w: int, d: int, e: int, na: str = "NA") -> str:
    """R's ``EncodeReal0``: one number in a field of width ``w``."""
    if x is None:
        return na.rjust(w)
    x = float(x)
    if math.isnan(x):
        return "NaN".rjust(w)
    if math.isinf(x):
        return ("Inf" if x > 0 else "-Inf").rjust(w)
    if x == 0.0:
        x = 0.0  # R drops the sign of negative zero
    if e:
        return ("%#*.*e" if d else "%*.*e") % (w, d, x)
    return "%*.*f" % (w, d, x)


def format_num(
    x: Sequence[Number] | np.ndarray,
    digits: int | None = None,
    nsmall: int = 0,
    width: int | None = None,
    trim: bool = False,
    scipen: int = 0,
) -> list[str]:
    """R's ``format()`` of a numeric vector: common formatting of all values.

    Parameters
    ----------
    x : sequence of float or None
        Values (``None`` is NA).
    digits : int, optional
        Significant digits; R's default ``getOption("digits")`` (7).
    nsmall : int
        Minimum number of decimals in fixed notation.
    width : int, optional
        Minimum field width.
    trim : bool
        Suppress the padding to a common width.
    scipen : int
        Penalty for scientific notation.

    Returns
    -------
    list of str

    Examples
    --------
    >>> format_num([1, 10, 100])
    ['  1', ' 10', '100']
    >>> format_num([123456789, 1e-10])
    ['1.234568e+08', '1.000000e-10']
    """
    vals = [_as_number(v) for v in np.asarray(x, dtype=object).ravel()]
    w, d, e = format_real_info(vals, R_DIGITS if digits is None else digits, nsmall, scipen)
    if trim:
        w = 0
    if width is not None:
        w = max(w, width)
    return [encode_real(v, w, d, e) for v in vals]


def format_str(x: Sequence[str], justify: str = "left", width: int | None = None) -> list[str]:
    """R's ``format()`` of a character vector: pad to the common width."""
    w = max([len(s) for s in x] + [width or 0])
    pad = {"left": str.ljust, "right": str.rjust, "centre": str.center}[justify]
    return [pad(s, w) for s in x]


def cat_num(x: Number) -> str:
    """How ``cat()`` writes one number: 7 significant digits, no padding."""
    return format_num([x], digits=R_DIGITS)[0]


# --------------------------------------------------------------------------
# round / signif / zapsmall / quantile
# --------------------------------------------------------------------------
def r_round(x: Number, digits: float = 0) -> Number:
    """R (>= 4.0.0) ``round(x, digits)`` (nmath ``fround``).

    R chooses between the two candidates with ``digits`` decimals the one
    nearer to ``x`` in double arithmetic, ties going to the even last digit;
    Python's ``round`` decides on the exact binary value instead.

    Examples
    --------
    >>> r_round(0.15, 1), r_round(2.5), r_round(-1.005, 2)
    (0.1, 2.0, -1.0)
    """
    if x is None:
        return None
    x = float(x)
    if math.isnan(x) or math.isnan(digits):
        return x + digits
    if not math.isfinite(x) or digits > 308 + 15 or x == 0.0:
        return x
    if digits < -308:
        return 0.0
    if digits == 0:
        return float(round(x))
    dig = math.floor(digits + 0.5)
    sgn = 1.0
    if x < 0:
        sgn, x = -1.0, -x
    logb = math.frexp(x)[1] - 1
    if dig + (logb + 0.5) * math.log10(2.0) > _DBL_DIG:
        return sgn * x
    if dig <= 308:
        pow10 = r_pow_di(10.0, dig)
        x10 = pow10 * x
        i10 = math.floor(x10)
        xd = i10 / pow10
        xu = math.ceil(x10) / pow10
    else:
        p10 = r_pow_di(10.0, dig - 308)
        pow10 = r_pow_di(10.0, 308)
        x10 = (pow10 * x) * p10
        i10 = math.floor(x10)
        xd = i10 / pow10 / p10
        xu = math.ceil(x10) / pow10 / p10
    du = xu - x
    dd = x - xd
    return sgn * (xu if (du < dd or (du == dd and math.fmod(i10, 2.0) == 1)) else xd)


def signif(x: Number, digits: float = 6) -> Number:
    """R's ``signif(x, digits)`` (nmath ``fprec``)."""
    if x is None:
        return None
    x = float(x)
    max_digits = 22
    max10e = int(1024 * math.log10(2.0))
    if math.isnan(x) or math.isnan(digits):
        return x + digits
    if not math.isfinite(x):
        return x
    if not math.isfinite(digits):
        return x if digits > 0 else 0.0
    if x == 0:
        return x
    dig = math.floor(digits + 0.5)
    if dig > max_digits:
        return x
    dig = max(dig, 1)
    sgn = 1.0
    if x < 0:
        sgn, x = -1.0, -x
    l10 = math.log10(x)
    e10 = int(dig - 1 - math.floor(l10))
    if abs(l10) < max10e - 2:
        p10 = 1.0
        if e10 > max10e:
            p10 = r_pow_di(10.0, e10 - max10e)
            e10 = max10e
        if e10 > 0:
            pow10 = r_pow_di(10.0, e10)
            return sgn * (round((x * pow10) * p10) / pow10) / p10
        pow10 = r_pow_di(10.0, -e10)
        return sgn * (round(x / pow10) * pow10)
    do_round = max10e - l10 >= r_pow_di(10.0, -dig)
    e2 = dig + (1 if e10 > 0 else -1) * max_digits
    p10 = r_pow_di(10.0, e2)
    x *= p10
    big_p10 = r_pow_di(10.0, e10 - e2)
    x *= big_p10
    if do_round:
        x += 0.5
    x = math.floor(x) / p10
    return sgn * x / big_p10


def zapsmall(x: Sequence[Number], digits: int = R_DIGITS) -> list[Number]:
    """R's ``zapsmall()``: round so that values tiny relative to the largest
    become zero."""
    vals = [_as_number(v) for v in x]
    finite = [abs(v) for v in vals if not is_na(v)]
    if not finite:
        return vals
    mx = max(finite)
    dig = max(0.0, digits - math.log10(mx)) if mx > 0 else digits
    return [r_round(v, dig) for v in vals]


def zapsmall_array(x: np.ndarray, digits: int = R_DIGITS) -> np.ndarray:
    """R's ``zapsmall`` of a matrix: ``zapsmall`` of its values, in its shape.

    Examples
    --------
    >>> zapsmall_array(np.array([[1.0, -1e-20], [2.0, 3.0]])).tolist()
    [[1.0, 0.0], [2.0, 3.0]]
    """
    zapped = np.array(zapsmall(x.ravel().tolist(), digits), dtype=float).reshape(x.shape)
    # + 0.0 makes the -0.0 left of a tiny negative residual plain 0, as R shows
    # both: the residual's sign depends on which BLAS kernels the CPU gets.
    return zapped + 0.0


def quantile7(x: Sequence[float], probs: Sequence[float] = (0, 0.25, 0.5, 0.75, 1)) -> list[float]:
    """R's ``quantile(x, probs)`` (type 7) with R's interpolation formula.

    Examples
    --------
    >>> quantile7([3.0, None, 1.0, 2.0, float("nan"), 4.0])  # R: quantile(c(3, NA, 1, 2, NaN, 4), na.rm = TRUE)
    [1.0, 1.75, 2.5, 3.25, 4.0]
    """
    values = np.asarray(x, dtype=float).ravel()  # None (NA) becomes NaN
    xs = np.sort(values[~np.isnan(values)]).tolist()
    n = len(xs)
    out = []
    for p in probs:
        index = 1 + max(n - 1, 0) * p
        lo, hi = math.floor(index), math.ceil(index)
        q = xs[lo - 1]
        if index > lo and xs[hi - 1] != q:
            h = index - lo
            q = (1 - h) * q + h * xs[hi - 1]
        out.append(q)
    return out


# --------------------------------------------------------------------------
# formatC / format.pval
# --------------------------------------------------------------------------
def format_c(
    x: Sequence[Number],
    width: int | None = None,
    digits: int | None = None,
    format: str | None = None,
    flag: str = "",
    mode: str = "double",
) -> list[str]:
    """R's ``formatC()`` for numbers (formats ``d``, ``f``, ``e``, ``E``,
    ``g``, ``G``): each value through C's ``sprintf`` independently.

    Examples
    --------
    >>> format_c([3.14159, 42], digits=3, format="f", width=8)
    ['   3.142', '  42.000']
    """
    vals = [_as_number(v) for v in x]
    if format is None:
        format = "d" if mode == "integer" else "g"
    if format == "d":
        mode = "integer"
    elif mode == "integer":
        mode = "double"
    if width is None and digits is None:
        width = 1
    if digits is None:
        digits = 2 if mode == "integer" else 4
    elif digits < 0:
        digits = 6
    if width is None:
        width = digits + 1
    elif width == 0:
        width = digits
    # non-finite values are format()ed together as strings, to a common width
    specials = {
        i: "NA" if v is None else ("NaN" if math.isnan(v) else ("Inf" if v > 0 else "-Inf"))
        for i, v in enumerate(vals)
        if is_na(v) or math.isinf(v)
    }
    if specials:
        justify = "left" if flag == "-" or width < 0 else "right"
        specials = dict(zip(specials, format_str(list(specials.values()), justify, abs(width))))
    out = []
    for i, v in enumerate(vals):
        if i in specials:
            out.append(specials[i])
        elif mode == "integer":
            out.append(("%" + flag + "*d") % (width, int(v)))
        else:
            out.append(("%" + flag + "*.*" + format) % (width, abs(digits), v))
    return out


def format_pval(pv: Sequence[Number], digits: int = R_DIGITS - 2, eps: float = DOUBLE_EPS, na_form: str = "NA") -> list[str]:
    """R's ``format.pval()``: p-values, with ``< eps`` for tiny ones.

    Examples
    --------
    >>> format_pval([0.0123, 1e-20, 0.5], digits=3)
    ['0.0123', '<2e-16', '0.5000']
    """
    vals = [_as_number(v) for v in pv]
    ok = [i for i, v in enumerate(vals) if not is_na(v)]
    res = [na_form] * len(vals)
    is0 = [i for i in ok if vals[i] < eps]
    rest = [i for i in ok if vals[i] >= eps]
    rr: dict[int, str] = {}
    if rest:
        expo = {i: math.floor(math.log10(vals[i] if vals[i] > 0 else 1e-50)) for i in rest}
        fixp = [i for i in rest if expo[i] >= -3 or (expo[i] == -4 and digits > 1)]
        sci = [i for i in rest if i not in fixp]
        for group in (fixp, sci):
            if group:
                rr.update(zip(group, format_num([vals[i] for i in group], digits=digits)))
    if is0:
        dig0 = max(1, digits - 2)
        if rest:
            nc = max(len(s) for s in rr.values())
            if dig0 > 1 and dig0 + 6 > nc:
                dig0 = max(1, nc - 7)
            sep = "" if dig0 == 1 and nc <= 6 else " "
        else:
            sep = "" if dig0 == 1 else " "
        tiny = "<" + sep + format_num([eps], digits=dig0)[0]
        rr.update((i, tiny) for i in is0)
    for i, s in rr.items():
        res[i] = s
    return res


# --------------------------------------------------------------------------
# strings: abbreviate, strwrap, cat(fill = TRUE)
# --------------------------------------------------------------------------
def _strip_chars(s: str, minlen: int) -> str:
    """The C routine behind ``abbreviate()`` (``stripchars`` in
    character.c, ``use.classes = TRUE``), index for index."""
    b = list(s)
    nspace = 0

    def first_char(i: int) -> bool:
        return b[i - 1].isspace()

    def last_char(i: int) -> bool:
        return not b[i - 1].isspace() and (i + 1 >= len(b) or b[i + 1].isspace())

    def done() -> bool:
        return len(b) - nspace <= minlen

    def finish() -> str:
        if len(b) > minlen:
            for i in range(len(b) - 1, 0, -1):
                if b[i].isspace():
                    del b[i]
        return "".join(b)

    if len(b) < minlen:
        return finish()
    trailing = True
    for i in range(len(b) - 1, 0, -1):
        if b[i].isspace():
            if trailing:
                del b[i:]
            else:
                nspace += 1
        else:
            trailing = False
        if done():
            return finish()
    passes = (
        lambda i: b[i] in "aeiou" and last_char(i),
        lambda i: b[i] in "aeiou" and not first_char(i),
        lambda i: b[i].islower() and last_char(i),
        lambda i: b[i].islower() and not first_char(i),
        lambda i: not first_char(i) and not b[i].isspace(),
    )
    for drop in passes:
        for i in range(len(b) - 1, 0, -1):
            if i < len(b) and drop(i):
                del b[i]
            if done():
                return finish()
    return finish()


def abbreviate(names: Sequence[str], minlength: int = 4) -> list[str]:
    """R's ``abbreviate(names, minlength)`` (method ``"left.kept"``):
    lengthens abbreviations until they are unique.

    Examples
    --------
    >>> abbreviate(["(Intercept)", "Days"], 6)
    ['(Intr)', 'Days']
    """
    if minlength <= 0:
        return ["" for _ in names]
    arg = [str(n).strip(" ") for n in names]
    uniq = list(dict.fromkeys(arg))
    x = list(uniq)
    dup2 = [True] * len(uniq)
    these = list(uniq)
    while True:
        ans = iter([_strip_chars(s, minlength) if len(s) > minlength else s for s in these])
        x = [next(ans) if d else v for v, d in zip(x, dup2)]
        dup2 = [v in x[:i] for i, v in enumerate(x)]
        if not any(dup2):
            break
        minlength += 1
        dupvals = {v for v, d in zip(x, dup2) if d}
        dup2 = [d or v in dupvals for v, d in zip(x, dup2)]
        these = [n for n, d in zip(uniq, dup2) if d]
    table = dict(zip(uniq, x))
    return [table[a] for a in arg]


def strwrap(x: str, width: int, indent: int = 0, exdent: int = 0) -> list[str]:
    """R's ``strwrap()`` for one paragraph of text (no prefix)."""
    words = re.split("[ \t\n]", x)
    if words[-1] == "":  # R's strsplit drops one trailing empty piece
        words.pop()
    # empty words survive only right after a sentence end, giving two spaces
    keep = [i for i, w in enumerate(words) if w or (i > 0 and _ends_sentence(words[i - 1]))]
    words = [words[i] for i in keep]
    if not words:
        return [""]
    nc = [len(w) for w in words]
    lines: list[str] = []
    start, max_len = 0, width - indent
    while start < len(words):
        total, k = 0, 0
        for j in range(start, len(words)):
            total += nc[j] + 1
            if total <= max_len:
                k += 1
            else:
                break
        k = max(k, 1)
        end = start + k
        upper = end - 1 if nc[end - 1] == 0 else end
        lines.append(" " * (indent if not lines else exdent) + " ".join(words[start:upper]))
        if end < len(words) and nc[end] == 0:
            end += 1
        start, max_len = end, width - exdent
    return lines


def _ends_sentence(word: str) -> bool:
    """strwrap's sentence-end pattern ``[.?!][)\\"']{0,1}$``."""
    w = word[:-1] if word[-1:] in ")\"'" else word
    return w[-1:] in (".", "?", "!")


def cat_fill(objects: Sequence[str | Sequence[str]], sep: str = " ", fill: int = R_WIDTH) -> str:
    """R's ``cat(..., sep = sep, fill = fill)`` for character arguments.

    Each argument is a string or a vector of strings.  Widths are counted in
    bytes, as R's C code does.  A line break is inserted before an element
    that would overrun ``fill``; the separator before it stays at the end of
    the previous line.  Output always ends with a newline.
    """
    out: list[str] = []
    width = 0
    sepw = len(sep.encode())
    for iobj, obj in enumerate(objects):
        items = [obj] if isinstance(obj, str) else list(obj)
        if iobj > 0:
            out.append(sep)
        if not items:
            continue
        w = len(items[0].encode())
        if iobj > 0 and width + w + sepw > fill:
            out.append("\n")
            width = 0
        for i, p in enumerate(items):
            out.append(p)
            width += len(p.encode()) + sepw
            if i < len(items) - 1:
                out.append(sep)
                if width + len(items[i + 1].encode()) + sepw > fill:
                    out.append("\n")
                    width = 0
    out.append("\n")
    return "".join(out)


# --------------------------------------------------------------------------
# print.default: named vectors and character matrices
# --------------------------------------------------------------------------
def print_named_vector(
    values: Sequence[str], names: Sequence[str], gap: int = 1, width: int = R_WIDTH
) -> str:
    """``print()`` of a named vector whose elements are already formatted
    (R's ``printNamedVector``): names over values, both right-justified in a
    common field, each followed by ``gap`` spaces, wrapped at ``width``.

    Examples
    --------
    >>> print_named_vector(["1", "22"], ["Min", "Max"])
    'Min Max \\n  1  22 \\n'
    """
    w = max([len(v) for v in values] + [len(n) for n in names] + [0])
    per_line = max(width // (w + gap), 1)
    out = []
    for start in range(0, len(values), per_line):
        chunk = range(start, min(start + per_line, len(values)))
        if start:
            out.append("\n")
        out.append("".join(names[k].rjust(w) + " " * gap for k in chunk) + "\n")
        out.append("".join(values[k].rjust(w) + " " * gap for k in chunk))
    return "".join(out) + "\n"


def print_numeric_named(x: Sequence[Number], names: Sequence[str], digits: int = R_DIGITS) -> str:
    """``print(c(name = value, ...), digits = digits)`` of a named numeric
    vector, e.g. lme4's scaled-residual quantiles."""
    w, d, e = format_real_info([_as_number(v) for v in x], digits)
    return print_named_vector([encode_real(_as_number(v), w, d, e) for v in x], names)


def print_char_matrix(
    x: Sequence[Sequence[str]],
    row_names: Sequence[str] | None,
    col_names: Sequence[str] | None,
    right: bool = False,
    gap: int = 1,
    width: int = R_WIDTH,
) -> str:
    """``print(m, quote = FALSE, right = right)`` of a character matrix
    (R's ``printStringMatrix``).

    Columns are as wide as their widest entry or label; row labels are
    left-justified; entries and column labels are left-justified unless
    ``right``; columns that do not fit in ``width`` go to further blocks.

    Parameters
    ----------
    x : list of rows (list of str)
    row_names, col_names : list of str or None
        Dimnames; ``None`` prints R's ``[i,]`` / ``[,j]`` labels.
    """
    nr = len(x)
    nc = len(x[0]) if nr else len(col_names or [])
    if row_names is None:
        row_labels = [f"[{i + 1},]" for i in range(nr)]
        rlabw = len(str(nr + 1)) + 3 if nr else 0
    else:
        row_labels = list(row_names)
        rlabw = max([len(s) for s in row_labels] + [0])
    col_labels = list(col_names) if col_names is not None else [f"[,{j + 1}]" for j in range(nc)]
    widths = [max([len(x[i][j]) for i in range(nr)] + [len(col_labels[j])]) for j in range(nc)]
    out: list[str] = []
    if nc == 0:
        out.append(" " * rlabw)
        for lab in row_labels:
            out.append("\n" + lab.ljust(rlabw))
        return "".join(out) + "\n"
    jmin = 0
    while jmin < nc:
        jmax, used = jmin, rlabw
        while True:
            used += widths[jmax] + gap
            jmax += 1
            if not (jmax < nc and used + widths[jmax] + gap < width):
                break
        out.append(" " * rlabw)
        for j in range(jmin, jmax):
            lab = col_labels[j]
            out.append(" " * gap + (lab.rjust(widths[j]) if right else lab.ljust(widths[j])))
        for i in range(nr):
            out.append("\n" + row_labels[i].ljust(rlabw))
            for j in range(jmin, jmax):
                cell = x[i][j]
                out.append(" " * gap + (cell.rjust(widths[j]) if right else cell.ljust(widths[j])))
        out.append("\n")
        jmin = jmax
    return "".join(out)


# --------------------------------------------------------------------------
# printCoefmat
# --------------------------------------------------------------------------
def _signif_stars(p: Number) -> str:
    """``symnum()`` with printCoefmat's cut points (intervals closed on the
    right, the first also on the left)."""
    if is_na(p):
        return ""
    for cut, sym in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, "."), (1.0, " ")):
        if p <= cut:
            return sym
    return ""


def _parse_num(s: str) -> float | None:
    """``as.numeric()`` of a formatted number; NA for text such as "NA"."""
    try:
        return float(s)
    except ValueError:
        return None


def print_coefmat(
    x: Sequence[Sequence[Number]],
    row_names: Sequence[str],
    col_names: Sequence[str],
    digits: int = max(3, R_DIGITS - 2),
    signif_stars: bool = True,
    signif_legend: bool | None = None,
    na_print: str = "NA",
) -> str:
    """R's ``printCoefmat()`` with its default column roles.

    The cells are ``format_coefmat``'s.

    Returns
    -------
    str
        The printed table (and the stars legend when stars are shown).
    """
    cf, labels, show_stars = format_coefmat(x, col_names, digits, signif_stars, na_print)
    out = print_char_matrix(cf, row_names, labels, right=True)
    if show_stars and (signif_stars if signif_legend is None else signif_legend):
        out += "---\nSignif. codes:  " + SIGNIF_LEGEND + "\n"
    return out


def format_coefmat(
    x: Sequence[Sequence[Number]],
    col_names: Sequence[str],
    digits: int = max(3, R_DIGITS - 2),
    signif_stars: bool = True,
    na_print: str = "NA",
) -> tuple[list[list[str]], list[str], bool]:
    """The formatted cells of R's ``printCoefmat()``, before they are printed.

    The last column holds p-values when its name starts with ``Pr(`` or
    ``p-v`` (and there are at least 4 columns); the column before it (or the
    last one) holds test statistics; all columns before that are estimates
    formatted together (``cs.ind``), so lmerTest's ``df`` column shares the
    format of ``Estimate`` and ``Std. Error``.

    Returns
    -------
    cells, col_labels, stars
        Rows of formatted cells (with a stars column when ``stars``), their
        column labels, and whether significance stars are shown.

    Examples
    --------
    >>> format_coefmat([[1.5, 0.25, 6.0, 1e-9]], ["Estimate", "SE", "t", "Pr(>|t|)"])
    ([['1.50', '0.25', '6', '1e-09', '***']], ['Estimate', 'SE', 't', 'Pr(>|t|)', ''], True)
    """
    xm = [[_as_number(v) for v in row] for row in x]
    nr, nc = len(xm), len(col_names)
    has_p = nc >= 4 and col_names[-1][:3] in ("Pr(", "p-v")
    k = nc - has_p - 1
    cs_ind = list(range(k))
    tst_ind = [k]
    dig_tst = max(1, min(5, digits - 1))
    cf = [["" for _ in range(nc)] for _ in range(nr)]
    ok = [[not is_na(v) for v in row] for row in xm]

    def col(j: int) -> list[Number]:
        return [xm[i][j] for i in range(nr)]

    # estimates and standard errors: one common format for the whole block
    acs = [abs(xm[i][j]) for j in cs_ind for i in range(nr) if not is_na(xm[i][j])]
    acs = [a for a in acs if math.isfinite(a)]
    if cs_ind and acs:
        nz = [a for a in acs if a != 0]
        digmin = [1 + math.floor(math.log10(v)) for v in (min(nz), max(nz))] if nz else [1]
        rd = max([1] + [digits - dm for dm in digmin])
        block = [r_round(xm[i][j], rd) for j in cs_ind for i in range(nr)]
        fmt = iter(format_num(block, digits=digits))
        for j in cs_ind:
            for i in range(nr):
                cf[i][j] = next(fmt)
    for j in tst_ind:
        for i, s in enumerate(format_num([r_round(v, dig_tst) for v in col(j)], digits=digits)):
            cf[i][j] = s
    for i in range(nr):
        for j in tst_ind:
            ok[i][j] = False
    # values that are not 0 but print as 0 get reformatted with fewer digits
    check = [(i, j) for j in range(nc - has_p) for i in range(nr) if ok[i][j]]
    fix = [
        (i, j)
        for i, j in check
        if _parse_num(cf[i][j]) is not None and (xm[i][j] == 0) != (_parse_num(cf[i][j]) == 0)
    ]
    if fix:
        for (i, j), s in zip(fix, format_num([xm[i][j] for i, j in fix], digits=max(1, digits - 1))):
            cf[i][j] = s
    for i in range(nr):
        for j in range(nc):
            v = xm[i][j]
            if v is None:
                cf[i][j] = na_print
            elif is_na(v):
                cf[i][j] = "NaN"
    show_stars = False
    labels = list(col_names)
    if has_p:
        okp = [i for i in range(nr) if not is_na(xm[i][-1])]
        if okp:
            pv = col(nc - 1)
            for i, s in zip(okp, format_pval([pv[i] for i in okp], digits=dig_tst)):
                cf[i][-1] = s
            show_stars = signif_stars and any(pv[i] < 0.1 for i in okp)
            if show_stars:
                stars = format_str([_signif_stars(p) for p in pv])
                for i in range(nr):
                    cf[i].append(stars[i])
                labels.append("")
    return cf, labels, show_stars
