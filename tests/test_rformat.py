"""mixedfit.rformat against R itself.

The expected values come from ``tests/lme4/rformat_cases.R`` (R 4.2), which
stores numbers as C99 hex floats and printed output byte for byte.  Each test
runs every case of one R function and reports all mismatches at once.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mixedfit import rformat as rf

FIXTURE = Path(__file__).parent / "lme4" / "fixtures" / "rformat_cases.json"
_SPECIAL = {"NA": None, "NaN": math.nan, "Inf": math.inf, "-Inf": -math.inf}


@pytest.fixture(scope="module")
def cases() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def vec(x) -> list:
    """A JSON vector (auto-unboxed by jsonlite when of length 1) as a list."""
    return x if isinstance(x, list) else [x]


def num(s: str) -> float | None:
    return _SPECIAL[s] if s in _SPECIAL else float.fromhex(s)


def nums(x) -> list:
    return [num(s) for s in vec(x)]


def same_float(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b


def check(failures: list) -> None:
    assert not failures, f"{len(failures)} mismatches, e.g.:\n" + "\n".join(map(repr, failures[:10]))


def test_format(cases):
    bad = []
    for c in cases["format"]:
        x = nums(c["x"])
        for r in c["results"]:
            got = rf.format_num(x, digits=r["digits"], nsmall=r["nsmall"])
            if got != vec(r["out"]):
                bad.append((c["x"], r["digits"], r["nsmall"], got, r["out"]))
    check(bad)


@pytest.mark.parametrize("what", ["round", "signif"])
def test_round_signif(cases, what):
    fun = rf.r_round if what == "round" else rf.signif
    bad = []
    x = nums(cases[what]["x"])
    for r in cases[what]["results"]:
        for xi, want in zip(x, nums(r["out"])):
            got = fun(xi, r["digits"])
            if not same_float(got, want):
                bad.append((xi.hex(), r["digits"], got, want))
    check(bad)


def test_zapsmall(cases):
    bad = []
    for c in cases["zapsmall"]:
        got = rf.zapsmall(nums(c["x"]), c["digits"])
        if not all(map(same_float, got, nums(c["out"]))):
            bad.append((c["x"], got, c["out"]))
    check(bad)


def test_quantile(cases):
    bad = []
    for c in cases["quantile"]:
        got = rf.quantile7(nums(c["x"]))
        if not all(map(same_float, got, nums(c["out"]))):
            bad.append((len(vec(c["x"])), got, nums(c["out"])))
    check(bad)


def test_format_c(cases):
    bad = []
    for c in cases["formatC"]:
        got = rf.format_c(
            nums(c["x"]), width=c["width"], digits=c["digits"], format=c["format"], flag=c["flag"]
        )
        if got != vec(c["out"]):
            bad.append((c, got))
    check(bad)


def test_format_pval(cases):
    bad = []
    for c in cases["format_pval"]:
        got = rf.format_pval(nums(c["x"]), digits=c["digits"])
        if got != vec(c["out"]):
            bad.append((c["x"], c["digits"], got, c["out"]))
    check(bad)


def test_print_named_numeric(cases):
    bad = []
    for c in cases["print_named"]:
        got = rf.print_numeric_named(nums(c["x"]), vec(c["names"]), c["digits"])
        if got != c["out"]:
            bad.append((c["x"], c["digits"], got, c["out"]))
    check(bad)


def test_print_coefmat(cases):
    bad = []
    for c in cases["printCoefmat"]:
        rows = [nums(r) for r in c["x"]]
        got = rf.print_coefmat(rows, vec(c["rownames"]), vec(c["colnames"]), digits=c["digits"])
        if got != c["out"]:
            bad.append((got, c["out"]))
    check(bad)


def test_abbreviate(cases):
    bad = []
    for c in cases["abbreviate"]:
        got = rf.abbreviate(vec(c["names"]), c["minlength"])
        if got != vec(c["out"]):
            bad.append((c["names"], c["minlength"], got, c["out"]))
    check(bad)


def test_print_char_matrix(cases):
    bad = []
    for c in cases["char_matrix"]:
        rows = [vec(r) for r in c["x"]]
        rn = None if c["rownames"] is None else vec(c["rownames"])
        cn = None if c["colnames"] is None else vec(c["colnames"])
        got = rf.print_char_matrix(rows, rn, cn, right=c["right"])
        if got != c["out"]:
            bad.append((got, c["out"]))
    check(bad)


def test_strwrap(cases):
    bad = []
    for c in cases["strwrap"]:
        got = rf.strwrap(c["x"], c["width"], indent=c["indent"], exdent=c["exdent"])
        if got != vec(c["out"]):
            bad.append((c["x"], c["width"], got, c["out"]))
    check(bad)


def test_cat_fill(cases):
    bad = []
    for c in cases["cat_fill"]:
        got = rf.cat_fill([vec(o) for o in c["objects"]], sep=c["sep"])
        if got != c["out"]:
            bad.append((got, c["out"]))
    check(bad)
