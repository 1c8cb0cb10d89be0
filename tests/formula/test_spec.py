"""A parsed lme4 formula (mixedfit.formula.spec): its fixed part without the bars."""

from __future__ import annotations

from mixedfit.formula import parse_formula


def test_fixed_part_drops_bars_and_keeps_intercept_choice():
    assert parse_formula("y ~ 0 + x + (1 | g)").fixed_terms.intercept is False
    only_bars = parse_formula("y ~ (1 | g)").fixed_terms
    assert only_bars.intercept and only_bars.labels() == []
