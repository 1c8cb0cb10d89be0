"""mixedfit.progress: tqdm bars on profiles and bootstraps only when wanted and possible."""

from __future__ import annotations

import sys
import warnings

import pytest

import mixedfit as mf
from mixedfit.progress import progress_bar

tqdm = pytest.importorskip("tqdm")


@pytest.fixture(scope="module")
def dyestuff():
    return mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff"))


def test_silent_when_asked_or_not_a_terminal(monkeypatch):
    assert type(progress_bar(5, "x", progress=False)).__name__ == "_Silent"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert type(progress_bar(5, "x")).__name__ == "_Silent"


def test_tqdm_on_a_terminal_or_when_asked(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    for progress in (None, True):
        with progress_bar(5, "x", progress=progress) as bar:
            assert isinstance(bar._bar, tqdm.tqdm)


def test_silent_without_tqdm_and_says_so_when_asked(monkeypatch, recwarn):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert type(progress_bar(5, "x")).__name__ == "_Silent"
    assert not recwarn.list  # nobody asked: no bar, no word
    with pytest.warns(mf.errors.MixedFitWarning, match="pip install tqdm"):
        assert type(progress_bar(5, "x", progress=True)).__name__ == "_Silent"


def test_a_bar_in_a_jupyter_kernel(monkeypatch):
    class ZMQInteractiveShell:  # the shell class of ipykernel, by name
        pass

    ipython = pytest.importorskip("IPython")
    monkeypatch.setattr(ipython, "get_ipython", lambda: ZMQInteractiveShell())
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    with progress_bar(5, "x") as bar:
        assert isinstance(bar._bar, tqdm.tqdm)


def test_warnings_wait_until_the_bar_is_gone(monkeypatch):
    """A warning printed mid-bar breaks its line: each is issued once, after the bar closes."""
    events = []
    monkeypatch.setattr(tqdm.tqdm, "close", lambda self: events.append("bar closed"))
    fit = mf.mixed("Yield ~ 1 + (1|Batch)", mf.load_dataset("Dyestuff2"))  # singular: the profile warns
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        monkeypatch.setattr(warnings, "showwarning",
                            lambda message, *args, **kw: events.append(str(message)))
        fit.profile(progress=True)
    assert events[0] == "bar closed" and len(events) > 1
    assert len(events[1:]) == len(set(events[1:]))  # once each
    assert not caught  # shown through showwarning, none kept back


@pytest.mark.parametrize("run, label", [
    (lambda fit, progress: fit.profile(progress=progress), "profile"),
    (lambda fit, progress: fit.bootstrap(5, seed=1, progress=progress), "bootstrap"),
])
def test_profile_and_bootstrap_report_progress(dyestuff, capsys, run, label):
    run(dyestuff, False)
    assert capsys.readouterr().err == ""
    run(dyestuff, True)
    assert label in capsys.readouterr().err
