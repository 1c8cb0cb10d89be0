"""R's factors (mixedfit.formula.rvalues) against R: the order of levels; ``distinct`` against numpy's ``unique``.

Expected values: ``tests/lme4/formula_cases.R`` (see ``_formula_cases``).
"""

from __future__ import annotations

import random
import string

import numpy as np
import pandas as pd
import pytest

from mixedfit.formula import rvalues
from mixedfit.formula.rvalues import as_factor, collation_key, distinct

from _formula_cases import CASES


@pytest.mark.parametrize("kind", ["strings", "doubles", "integers"])
def test_factor_levels_sort_as_r(kind):
    case = CASES["sort"][kind]
    dtype = {"strings": object, "doubles": float, "integers": np.int64}[kind]
    assert as_factor(np.array(case["input"], dtype=dtype)).levels == case["levels"]


@pytest.mark.parametrize("count, size", [(0, 5), (1, 1), (50, 40), (1000, 100_000), (5000, 2000)])
def test_distinct_is_numpys_unique_with_its_inverse(count, size):
    # by the table where the range is not much larger than the data, by sorting where it is
    values = np.random.default_rng(count).integers(size, size=count)
    found, inverse = distinct(values, size)
    expected, expected_inverse = np.unique(values, return_inverse=True)
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_array_equal(inverse, expected_inverse)


def _rank_tuples(text):
    # collation_key's order as its docstring states it: the case-folded characters' ranks in
    # _ASCII_ORDER (any other character after them, by code point), then upper case after lower
    ranks = tuple(rvalues._ASCII_ORDER.find(c) if c in rvalues._ASCII_ORDER else 1000 + ord(c) for c in text.lower())
    return ranks, tuple(c.isupper() for c in text)


def _texts(seed, alphabet, count=400, longest=6):
    rng = random.Random(seed)
    return list(dict.fromkeys("".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest)))
                              for _ in range(count)))


_NON_ASCII = "".join(map(chr, (0x80, 0xB5, 0xBE, 0xC0, 0xC9, 0xE9, 0x130, 0x3B1, 0x4E2D, 0x1F600, 0x10FFFF)))


@pytest.mark.parametrize("alphabet", [string.ascii_letters + string.digits + " ._-", "".join(map(chr, range(128))),
                                      "aAzZ0._" + _NON_ASCII])
def test_collation_keys_order_text_by_ranks_then_case(alphabet):
    texts = _texts(len(alphabet), alphabet)
    assert sorted(texts, key=collation_key) == sorted(texts, key=_rank_tuples)


@pytest.mark.parametrize("seed", range(4))
def test_numpys_order_of_ascii_levels_is_the_collation_keys(seed):
    # embedded NUL and control characters, empty and prefix texts; a text ending in NUL,
    # one not ASCII, or one longer than the keys' width goes back to the keys one by one
    texts = _texts(seed, "aAbB_ .0\x01" + ("\x00" if seed else ""), count=300, longest=5)
    texts = [text for text in texts if not text.endswith("\x00")] + ["a\x00b"] * bool(seed)
    order = rvalues._ascii_order(texts)
    assert order.tolist() == sorted(range(len(texts)), key=lambda i: collation_key(texts[i]))
    for odd in ("a\x00", "\u00e9", "x" * (rvalues._ASCII_ORDER_WIDTH + 1)):
        assert rvalues._ascii_order(texts + [odd]) is None


def _columns():
    rng = np.random.default_rng(3)
    words = np.array(["b", "B", "a1", "a", "", "A", "a b", "\u00e9"], dtype=object)
    text = words[rng.integers(len(words), size=700)]
    text[::7] = None
    text[3::11] = np.nan
    many = np.array([f"L{i}" for i in rng.integers(0, 400, size=900)], dtype=object)
    floats = rng.choice([0.5, -0.0, 0.0, 0.1 + 0.2, 0.3, np.nan, 1e5, -2.0], size=600)
    whole = rng.choice([-0.0, 0.0, 7.0, -12.0, 1e5, -2e5, 1.2e6, 123456.0, 3e15, np.nan], size=700)
    return {
        "text": text, "many levels": many, "python strings": pd.Series(many, dtype="string[python]"),
        "arrow strings": pd.Series(text, dtype="string[pyarrow]"), "integers": rng.integers(-3, 300, size=800),
        "integers far apart": rng.integers(-2**40, 2**40, size=600) // 1000 * 1000,
        "floats": floats, "whole numbers as doubles": whole, "mixed objects": np.array([1, 1.0, True, 2, 0.5, None] * 100, dtype=object),
        "nullable integers": pd.array(list(rng.integers(0, 30, size=599)) + [None], dtype="Int64"),
    }


@pytest.mark.parametrize("name", list(_columns()))
def test_many_values_are_factored_as_a_few_are(name, monkeypatch):
    # pandas' hash table, numpy's sort and numpy's order of text give what the dict does,
    # whose levels test_factor_levels_sort_as_r checks against R's
    values = _columns()[name]
    monkeypatch.setattr(rvalues, "_HASHED_ROWS", 0)
    hashed = as_factor(values)
    monkeypatch.setattr(rvalues, "_HASHED_ROWS", 10**9)
    few = as_factor(values.to_numpy(dtype=object) if isinstance(values, pd.Series) else values)
    assert hashed.levels == few.levels and hashed.codes.tolist() == few.codes.tolist()
    assert len(hashed.levels) >= (100 if "levels" in name or "python" in name else 3)


def test_whole_numbers_as_doubles_are_labelled_as_r_labels_each_number():
    # level_label (R's as.character, fixed or scientific as it is shorter) against the shortcut
    rng = np.random.default_rng(7)
    values = np.unique(np.concatenate([rng.integers(-10**15, 10**15, size=3000), rng.integers(-10**6, 10**6, size=3000),
                                       [m * 10**k for m in (1, 2, 12, 99) for k in range(17)], [0, 2**53 - 1]]))
    values = np.concatenate([values, -values]).astype(float)
    values = np.unique(values[np.abs(values) < 2.0**53])
    assert rvalues._whole_number_labels(values) == [rvalues.level_label(float(v)) for v in values]


def test_whole_numbers_are_labelled_by_their_digits():
    # a categorical of integer ids: level_labels_of's shortcut against level_label, booleans apart
    values = [3, -7, 0, 10**20, -(10**30), 100000, 2**63]
    assert rvalues.level_labels_of(values) == [rvalues.level_label(v) for v in values]
    assert rvalues.level_labels_of([True, 1]) == ["TRUE", "1"]
    categorical = pd.Categorical(np.random.default_rng(2).integers(0, 900, size=2000))
    assert as_factor(categorical).levels == [rvalues.level_label(v) for v in categorical.categories.tolist()]
