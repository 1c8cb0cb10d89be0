"""Type III tests and emmeans on models with transformed numeric terms, against lmerTest and emmeans.

Reference numbers: ``tests/lme4/fixtures/type3_transform_cases.json``, written
by ``tests/lme4/type3_transform_cases.R``: lmerTest 3.1-3's ``anova(fit, type =
"III")`` with Satterthwaite's and Kenward–Roger's df, its hypothesis matrices,
and emmeans 1.8.4's means and pairwise contrasts of ``recipe`` on cake, with
``recipe`` crossed with ``poly(temp, 2)``, a raw ``poly``, ``ns``, ``bs``,
``scale`` and ``factor(temp)`` (also without an intercept), and a number
crossed with ``poly`` on Hsb82 (Satterthwaite only: 7185 rows).  A matrix term's columns are numbers: each is
tested as a covariate, not read as the level of a factor.

Every number of every table is compared, on our own fit:

* the hypothesis matrices: 1e-12 absolute (they are computed, not fitted);
* the ANOVA tables: 1e-5 relative (the raw polynomial's Satterthwaite df,
  ill-conditioned in θ and σ, agree to 4e-6; the rest to 2e-7);
* emmeans: as ``test_emmeans.py`` (estimates, SEs, limits 1e-6 relative, df
  1e-5, p-values 1e-5 relative or 1e-8 absolute).
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

import mixedfit as mf
from mixedfit.inference import type3
from mixedfit.results import MixedResults

FIXTURE = Path(__file__).parents[1] / "lme4" / "fixtures" / "type3_transform_cases.json"
CASES = json.loads(FIXTURE.read_text())["cases"]
NAMES = list(CASES)
CALLS = [(name, k) for name in NAMES for k in range(len(CASES[name]["emmeans"]))]

L_ABS = 1e-12
ANOVA_REL = 1e-5
EST_REL = 1e-6
DF_REL = 1e-5
P_REL, P_ABS = 1e-5, 1e-8
ANOVAS = {"satterthwaite": "anova_satterthwaite", "kenward-roger": "anova_kenward_roger"}
TABLES = [(name, ddf) for name in NAMES for ddf in ANOVAS if CASES[name][ANOVAS[ddf]] is not None]


@lru_cache(maxsize=None)
def fitted(name: str) -> MixedResults:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mf.mixed(CASES[name]["formula"], mf.load_dataset(CASES[name]["dataset"]))


@pytest.mark.parametrize("name", NAMES)
def test_hypothesis_matrices(name):
    ours = type3.type3_contrasts(fitted(name))
    ref = CASES[name]["hypotheses"]
    assert list(ours) == list(ref)
    for term, L in ref.items():
        np.testing.assert_allclose(ours[term], np.asarray(L, float), rtol=0, atol=L_ABS, err_msg=term)


@pytest.mark.parametrize("name,ddf", TABLES)
def test_anova_type3(name, ddf):
    table = fitted(name).anova(ddf=ddf)
    ref = CASES[name][ANOVAS[ddf]]
    assert list(table.index) == ref["rownames"]
    assert list(table.columns) == ref["columns"]
    for col in ref["columns"]:
        np.testing.assert_allclose(table[col], np.asarray(ref[col], float), rtol=ANOVA_REL,
                                   err_msg=col)


@pytest.mark.parametrize("name,k", CALLS)
def test_emmeans(name, k):
    call = CASES[name]["emmeans"][k]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        em = fitted(name).emmeans(call["specs"], ddf=call["lmer_df"])
        if call["kind"] == "pairs":
            em = em.pairs(adjust=call["adjust"])
    ref = call["table"]
    assert list(em.columns) == ref["columns"]
    for col in ref["columns"]:
        R = ref[col]
        if col in ("recipe", "sector", "contrast"):
            assert [str(v) for v in em[col]] == R
        elif col == "df":
            np.testing.assert_allclose(em[col], np.asarray(R, float), rtol=DF_REL)
        elif col == "p.value":
            np.testing.assert_allclose(em[col], np.asarray(R, float), rtol=P_REL, atol=P_ABS)
        else:
            np.testing.assert_allclose(em[col], np.asarray(R, float), rtol=EST_REL, err_msg=col)
    # the interaction note (the df-limit notes, worded apart, are test_emmeans.py's)
    notes = [str(w.message) for w in caught if str(w.message).startswith("NOTE")]
    assert notes == [m for m in call["messages"] if m.startswith("NOTE")]
