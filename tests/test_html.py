"""mixedfit.html: the summary as HTML carries every number of lme4's text, in well-formed HTML.

The text is R's own (the fixtures' ``summary_text``, lme4 and lmerTest) and
the HTML is rendered from the fixtures' numbers by
:class:`test_summary.FixtureFit`, so these tests check the HTML against lme4
independently of the fitting; a few real fits check the notebook hooks.
"""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser

import pytest

import mixedfit as mf
from mixedfit.html import summary_html
from test_summary import CASES, FixtureFit, called_formula, load

NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:e[-+]?\d+)?")
VOID = {"br", "hr", "img", "meta", "input", "col", "wbr"}


class _Checked(HTMLParser):
    """Collects the text and fails on unbalanced or misnested tags."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.tags: Counter = Counter()

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> _Checked:
    parser = _Checked()
    parser.feed(page)
    parser.close()
    assert parser.stack == [], f"unclosed tags {parser.stack}"
    return parser


def missing_numbers(text: str, page: str) -> Counter:
    """Numbers of the text (with multiplicity) that the HTML's visible text lacks."""
    shown = " ".join(parse(page).text)
    return Counter(NUMBER.findall(text)) - Counter(NUMBER.findall(shown))


@pytest.mark.parametrize("case", CASES)
def test_lme4_summary_numbers_all_in_html(case):
    fx = load(case)
    page = summary_html(FixtureFit(fx))
    assert not missing_numbers(fx["summary_text"], page)


@pytest.mark.parametrize("case", CASES)
def test_lmertest_summary_numbers_all_in_html(case):
    fx = load(case)
    expected = fx.get("inference", {}).get("summary_text_lmertest")
    if not isinstance(expected, str):
        pytest.skip("no lmerTest summary recorded for this case")
    page = summary_html(FixtureFit(fx), ddf="satterthwaite", formula=called_formula(fx))
    assert not missing_numbers(expected, page)
    assert "Pr(&gt;|t|)" in page and "Satterthwaite" in page


@pytest.fixture(scope="module")
def sleep_fit():
    return mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"), data_name="sleepstudy")


def test_blocks_are_tables_with_captions(sleep_fit):
    parsed = parse(sleep_fit._repr_html_())
    shown = " ".join(parsed.text)
    for block in ("Formula:", "Data:", "REML criterion at convergence", "Scaled residuals", "Random effects",
                  "Number of obs", "Fixed effects", "Correlation of Fixed Effects"):
        assert block in shown
    assert parsed.tags["table"] == 5 and parsed.tags["caption"] == 4
    assert parsed.tags["script"] == 0 and parsed.tags["style"] == 0


def test_fit_html_is_its_summary_html(sleep_fit):
    assert sleep_fit._repr_html_() == sleep_fit.summary()._repr_html_()
    lmertest = sleep_fit.summary(ddf="satterthwaite")
    assert not missing_numbers(str(lmertest), lmertest._repr_html_())


def test_ml_fit_criteria_table(sleep_fit):
    ml = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"), reml=False)
    parsed = parse(ml._repr_html_())
    assert {"AIC", "BIC", "logLik", "deviance", "df.resid"} <= set(parsed.text)
    assert not missing_numbers(str(ml.summary()), ml._repr_html_())


def test_warnings_are_shown():
    with pytest.warns(mf.errors.SingularFitWarning):
        fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff2"))
    page = fit._repr_html_()
    assert "boundary (singular) fit: see help(&#x27;isSingular&#x27;)" in page
    assert not missing_numbers(str(fit.summary()), page)


def test_text_is_escaped():
    fit = mf.mixed("Reaction ~ Days + (1|Subject)", mf.load_dataset("sleepstudy"),
                   data_name="<script>alert('&')</script>")
    page = fit._repr_html_()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;&amp;&#x27;)&lt;/script&gt;" in page
    assert "<script>alert('&')</script>" in " ".join(parse(page).text)
