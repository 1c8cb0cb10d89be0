"""mixedfit.family against R's family objects (tests/lme4/glmer_cases.R, glmer_families.json)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import mixedfit as mf
from mixedfit.errors import DataError, MixedFitWarning, ModelSpecError
from mixedfit.family import FAMILY_LINKS, family

FIXTURE = Path(__file__).parent / "lme4" / "fixtures" / "glmer_families.json"
CASES = json.loads(FIXTURE.read_text())["cases"]
RTOL = 1e-13  # the same formulas in double precision: rounding only


@pytest.mark.parametrize("case", CASES, ids=[f"{c['family']}-{c['link']}" for c in CASES])
def test_family_matches_r(case):
    f = family(case["family"], link=case["link"])
    mu, y, wt, n = (np.array(case[k], float) for k in ("mu", "y", "wt", "n"))
    eta = f.linkfun(mu)
    np.testing.assert_allclose(eta, case["eta"], rtol=RTOL)
    np.testing.assert_allclose(f.linkinv(eta), case["linkinv"], rtol=RTOL)
    np.testing.assert_allclose(f.mu_eta(eta), case["mu_eta"], rtol=RTOL)
    np.testing.assert_allclose(f.variance(mu), case["variance"], rtol=RTOL)
    dev = f.dev_resids(y, mu, wt)
    np.testing.assert_allclose(dev, case["dev_resids"], rtol=RTOL, atol=1e-15)
    assert f.aic(y, n, mu, wt, float(np.sum(dev))) == pytest.approx(case["aic"], rel=1e-12)
    # the closures PIRLS uses (a constant plus the deviance for whole trials and counts)
    np.testing.assert_allclose(f.dev_resids_at(y, wt)(mu), case["dev_resids"], rtol=RTOL, atol=1e-15)
    assert f.aic_at(y, n, wt)(mu, float(np.sum(dev))) == pytest.approx(case["aic"], rel=1e-12)


def _closure_cases():
    rng = np.random.default_rng(1)
    ones, prior = np.ones(40), rng.uniform(0.5, 2, 40).round(1)
    five = np.full(40, 5.0)
    return [  # (family, y, n, wt): whole data take the constant path, fractional ones the general one
        ("binomial", rng.integers(0, 2, 40).astype(float), ones, ones),
        ("binomial", rng.integers(0, 2, 40).astype(float), ones, prior),
        ("binomial", rng.integers(0, 6, 40) / 5.0, five, five * prior.round()),
        ("binomial", rng.uniform(0, 1, 40), ones, prior),
        ("poisson", rng.integers(0, 9, 40).astype(float), ones, prior),
        ("poisson", rng.uniform(0, 9, 40), ones, prior),
    ]


@pytest.mark.parametrize("name, y, n, wt", _closure_cases())
def test_likelihood_closures_give_the_general_formulas(name, y, n, wt):
    # the general formulas are R's (test_family_matches_r); the closures PIRLS uses must agree
    f = family(name)
    mu = np.random.default_rng(2).uniform(0.05, 0.95, 40) * (1 if name == "binomial" else 6)
    dev = f.dev_resids(y, mu, wt)
    np.testing.assert_allclose(f.dev_resids_at(y, wt)(mu), dev, rtol=1e-13)
    ref = f.aic(y, n, mu, wt, float(np.sum(dev)))
    with np.errstate(all="ignore"):
        assert f.aic_at(y, n, wt)(mu, float(np.sum(dev))) == pytest.approx(ref, rel=1e-12)


def test_every_link_of_r_is_covered():
    covered = {(c["family"], c["link"]) for c in CASES}
    assert covered == {(fam, link) for fam, links in FAMILY_LINKS.items() if fam != "gaussian"
                       for link in links}


def test_unknown_family_lists_the_valid_ones():
    with pytest.raises(ModelSpecError, match="unknown family 'binomal'.*'binomial', 'poisson', 'Gamma'"):
        family("binomal")
    with pytest.raises(ModelSpecError, match="R spells it 'Gamma'"):
        family("gamma")


def test_unknown_link_lists_the_family_links():
    with pytest.raises(ModelSpecError, match="link \"probit\" not available for poisson family.*'log', "
                                             "'identity', 'sqrt'"):
        family("poisson", link="probit")


def test_family_pickles_and_prints_as_r():
    f = mf.family("binomial", link="cloglog")
    assert repr(f) == 'binomial(link = "cloglog")'
    assert pickle.loads(pickle.dumps(f)) == f


def test_initialize_binomial_matrix_and_checks():
    f = family("binomial")
    counts = np.array([[2.0, 3.0], [0.0, 0.0]])
    y, n, w = f.initialize(counts, np.array([2.0, 1.0]))
    assert y.tolist() == [0.4, 0.0] and n.tolist() == [5.0, 0.0] and w.tolist() == [10.0, 0.0]
    assert counts.tolist() == [[2.0, 3.0], [0.0, 0.0]]  # not modified
    with pytest.raises(DataError, match="negative counts"):
        f.initialize(np.array([[1.0, -1.0], [2.0, 2.0]]), None)
    with pytest.raises(DataError, match=r"outside \[0, 1\].*e\.g\. 2"):
        f.initialize(np.array([0.0, 2.0, 1.0]), None)
    with pytest.warns(MixedFitWarning, match="non-integer #successes"):
        f.initialize(np.array([0.5, 1.0]), None)
    with pytest.warns(MixedFitWarning, match="non-integer counts"):
        f.initialize(np.array([[0.5, 1.0], [1.0, 1.0]]), None)


def test_initialize_checks_counts_and_positive_responses():
    with pytest.raises(DataError, match="negative values not allowed for the 'Poisson' family"):
        family("poisson").initialize(np.array([1.0, -2.0]), None)
    with pytest.warns(MixedFitWarning, match="non-integer x = 1.500000"):
        family("poisson").initialize(np.array([1.0, 1.5]), None)
    with pytest.raises(DataError, match="non-positive values not allowed for the 'Gamma' family"):
        family("Gamma").initialize(np.array([1.0, 0.0]), None)
    with pytest.raises(DataError, match="positive values only"):
        family("inverse.gaussian").initialize(np.array([1.0, -1.0]), None)
    with pytest.raises(DataError, match="only the binomial family takes a two-column"):
        family("poisson").initialize(np.ones((3, 2)), None)
