"""mixedfit.summary against lme4's and lmerTest's printed text.

Each lme4 fixture (``tests/lme4/make_fixtures.R``) carries lme4's numbers and
the text R printed from them.  :class:`FixtureFit` rebuilds, from those
numbers alone, the attributes :mod:`mixedfit.summary` reads, so these tests
check the printing independently of mixedfit's fitting.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixedfit import summary as sm

FIXTURES = Path(__file__).parent / "lme4" / "fixtures"
CASES = sorted(
    p.stem for p in FIXTURES.glob("*.json") if "summary_text" in json.loads(p.read_text())
)
# lme4 keeps the design-matrix messages as attributes of X and prints them
# under "fit warnings:" (``.merMod.msgs``); the fixtures record them among
# the messages and warnings raised while fitting.
X_MESSAGE_PREFIXES = (
    "fixed-effect model matrix is rank deficient",
    "Some predictor variables are on very different scales",
)


def load(case: str) -> dict:
    return json.loads((FIXTURES / f"{case}.json").read_text(encoding="utf-8"))


def _vector(x) -> list:
    return x if isinstance(x, list) else [x]


class FixtureFit:
    """The attributes of a fit, taken from lme4's own numbers in a fixture."""

    def __init__(self, fx: dict):
        self._fx = fx
        self.reml = fx["reml"]
        self.formula = fx["deparsed_formula"]
        self.data_name = fx["dataset"]
        self.weights_name = fx["weights"]
        self.offset_name = fx["offset"]
        self.llf = fx["logLik"]
        self.aic = fx["AIC"]
        self.bic = fx["BIC"]
        self.deviance = -2 * fx["logLik"] if fx["deviance_ML"] is None else fx["deviance_ML"]
        self.df_resid = fx["df_resid"]
        self.reml_criterion = fx["REMLcrit"]
        self.scaled_resid = np.asarray(fx["scaled_resid"], dtype=float)
        self.vc_blocks = self._blocks(fx["varcorr"])
        self.sigma = fx["sigma"]
        self.nobs = fx["nobs"]
        self.ngroups = dict(fx["ngrps"])
        names = _vector(fx["beta_names"])
        self.fixef = pd.Series(_vector(fx["beta"]), index=names, dtype=float)
        self.bse = pd.Series(_vector(fx["se"]), index=names, dtype=float)
        self.tvalues = self.fixef / self.bse
        self.vcov = pd.DataFrame(np.atleast_2d(fx["vcov"]), index=names, columns=names)
        self.is_singular = fx["isSingular"]
        self.convergence_messages = _vector(fx["conv_messages"])
        self.optimizer_code = fx.get("optimizer_code", 0)
        self.optimizer_name = fx["optimizer"]
        self.optimizer_message = fx["optimizer_message"]
        raised = _vector(fx["fit_messages"]) + _vector(fx.get("fit_warnings") or [])
        self.fit_warnings = [m for m in raised if m.startswith(X_MESSAGE_PREFIXES)]

    @staticmethod
    def _blocks(rows: list[dict]) -> list[tuple[str, list[str], np.ndarray]]:
        """Covariance blocks from ``as.data.frame(VarCorr(fit))`` rows."""
        groups: dict[str, list[dict]] = {}
        for row in rows:
            if row["grp"] != "Residual":
                groups.setdefault(row["grp"], []).append(row)
        blocks = []
        for grp, grows in groups.items():
            names = [r["var1"] for r in grows if r["var2"] is None]
            cov = np.diag([r["vcov"] for r in grows if r["var2"] is None])
            for r in grows:
                if r["var2"] is not None:
                    i, j = names.index(r["var1"]), names.index(r["var2"])
                    cov[i, j] = cov[j, i] = r["vcov"]
            blocks.append((grp, names, cov))
        return blocks

    def coef_table(self, ddf: str = "satterthwaite") -> pd.DataFrame:
        """lmerTest's coefficient table, as recorded in the fixture."""
        assert ddf.lower() == "satterthwaite"
        table = dict(self._fx["inference"]["satterthwaite"])
        index = _vector(table.pop("rownames"))
        return pd.DataFrame({k: _vector(v) for k, v in table.items()}, index=index)


@pytest.mark.parametrize("case", CASES)
def test_summary_text(case):
    fx = load(case)
    assert sm.summary_text(FixtureFit(fx)) == fx["summary_text"]


@pytest.mark.parametrize("case", CASES)
def test_print_text(case):
    fx = load(case)
    assert sm.print_text(FixtureFit(fx)) == fx["print_text"]


def called_formula(fx: dict) -> str:
    """The formula as the user's call deparses it (lmerTest keeps that call;
    lme4 prints the formula with ``||`` expanded).  ``deparse()`` broke the
    recorded call into lines that were pasted with their indentation."""
    call = re.sub(" +", " ", fx["call"])
    return call[len("lmer(") : call.index(", data = ")]


@pytest.mark.parametrize("case", CASES)
def test_lmertest_summary_text(case):
    fx = load(case)
    expected = fx.get("inference", {}).get("summary_text_lmertest")
    if not isinstance(expected, str):
        pytest.skip("no lmerTest summary recorded for this case")
    got = sm.summary_text(FixtureFit(fx), ddf="satterthwaite", formula=called_formula(fx))
    assert got == expected


def test_correlation_note_matches_lme4():
    """The stderr note lme4 prints instead of a correlation matrix for p > 12."""
    note = json.loads((FIXTURES / "rformat_cases.json").read_text(encoding="utf-8"))["cor_note"]
    assert sm.correlation_note(note["p"], note["name"]) == note["out"]
