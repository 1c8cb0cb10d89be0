"""Helpers the test files share: fits made quietly, cached per argument.

The tests compare numbers with lme4's; the warnings a fit gives (singular
fits, rank deficiency, refits by ML) are tested where they are the subject,
and silenced here.  pytest puts this directory on ``sys.path``, so a test
file anywhere below it imports these with ``from conftest import ...``.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import mixedfit as mf

__all__ = ["fit_quietly", "dataset_fit"]


def fit_quietly(formula: str, data, **options):
    """``mixedfit.mixed(formula, data, **options)`` with its warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mf.mixed(formula, data, **options)


@lru_cache(maxsize=None)
def dataset_fit(formula: str, dataset: str, **options):
    """``fit_quietly`` on a bundled data set, made once per formula, data set and options."""
    return fit_quietly(formula, mf.load_dataset(dataset), **options)
