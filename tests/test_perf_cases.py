"""The models of issue 21 ("Performance"), fitted on their fast paths, against lme4.

``tests/lme4/perf_cases.R`` records lme4's fit of MixedModels.jl's published
InstEval model, ``y ~ 1 + service + (1|d) + (1|s) + (1|dept) + (0 + service|dept)``
by ML.  Its ``(1|dept)`` and ``(0 + service|dept)`` overlap, so the optimum lies
on a ridge where the Hessian is not positive definite: the polish there (a
Newton step with the Hessian's curvatures floored, not a BOBYQA restart) must
still end no higher than lme4's deviance (1e-9 relative, as in
tests/test_lme4_fixtures.py), with lme4's convergence messages.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import mixedfit as mf

FIXTURE = json.loads((Path(__file__).parent / "lme4" / "fixtures" / "perf_cases.json").read_text())
OBJ_REL = 1e-9  # as tests/test_lme4_fixtures.py


@pytest.mark.parametrize("case", FIXTURE["fits"], ids=lambda case: case["id"])
def test_fit_reaches_lme4s_optimum_with_its_messages(case):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = mf.mixed(case["formula"], mf.load_dataset(case["dataset"]), reml=case["reml"])
    assert fit.optsummary.fmin - case["objective"] <= OBJ_REL * abs(case["objective"])
    assert [str(w.message) for w in caught] == case["conv_messages"]
