"""The reference distributions against scipy.stats, which they replace: equal to the bit, edges included."""

import numpy as np
import pytest
from scipy import stats

from mixedfit import distributions as d

X = np.array([-np.inf, -50.0, -3.0, -1e-300, -0.0, 0.0, 1e-300, 0.5, 1.96, 3.0, 50.0, 1e300, np.inf, np.nan])
P = np.array([-0.1, 0.0, 1e-300, 1e-10, 0.025, 0.5, 0.975, 1.0 - 1e-16, 1.0, 1.1, np.nan])
DF = [-1.0, 0.0, 1e-3, 0.5, 1.0, 3.3, 17.0, 1e6, 1e20, np.inf, np.nan]


def same(ours, theirs):
    """Equal to the bit, NaN where NaN, and a scalar where scipy.stats gives one."""
    assert np.shape(ours) == np.shape(theirs)
    np.testing.assert_array_equal(ours, theirs, strict=False)
    assert np.array_equal(np.signbit(ours), np.signbit(theirs))


def test_normal():
    same(d.norm_sf(X), stats.norm.sf(X))
    same(d.norm_ppf(P), stats.norm.ppf(P))
    same(d.norm_ppf(0.975), stats.norm.ppf(0.975))


@pytest.mark.parametrize("df", DF)
def test_t(df):
    same(d.t_sf(X, df), stats.t.sf(X, df))
    same(d.t_ppf(P, df), stats.t.ppf(P, df))


@pytest.mark.parametrize("df", DF)
def test_chi2(df):
    same(d.chi2_sf(X, df), stats.chi2.sf(X, df))
    same(d.chi2_ppf(P, df), stats.chi2.ppf(P, df))


@pytest.mark.parametrize("dfn", DF)
def test_f(dfn):
    for dfd in DF:
        same(d.f_sf(X, dfn, dfd), stats.f.sf(X, dfn, dfd))


def test_arrays_of_parameters_broadcast_as_scipy_stats_does():
    df = np.array([1.0, 4.0, 0.0, 60.0])
    x = np.array([[2.0], [-1.0], [0.0]])
    same(d.t_sf(x, df), stats.t.sf(x, df))
    same(d.chi2_sf(x, df), stats.chi2.sf(x, df))
    same(d.f_sf(x, df, df[::-1]), stats.f.sf(x, df, df[::-1]))
    same(d.t_ppf(np.array([[0.9], [0.0]]), df), stats.t.ppf(np.array([[0.9], [0.0]]), df))


def test_scalars_come_back_as_scipy_stats_gives_them():
    for ours, theirs in [(d.t_sf(2.0, 5.0), stats.t.sf(2.0, 5.0)), (d.chi2_ppf(0.95, 3), stats.chi2.ppf(0.95, 3)),
                         (d.f_sf(3.0, 2, 9), stats.f.sf(3.0, 2, 9)), (d.norm_sf(1.0), stats.norm.sf(1.0))]:
        assert type(ours) is type(theirs) and ours == theirs
