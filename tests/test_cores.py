"""``mixedfit.cores``: the second thread, used where a core is idle and still there in a forked child; which
factorizations run on several cores."""

from __future__ import annotations

import os
import sys

import pytest

from mixedfit import cores


@pytest.fixture
def idle_cores(monkeypatch):
    monkeypatch.setattr(cores, "busy", lambda: False)
    monkeypatch.setattr(cores, "_usable_cores", lambda: 2)


def test_a_call_beside_runs_in_the_second_thread(idle_cores):
    import threading

    job = cores.beside(lambda: threading.current_thread().name)
    assert job.result(timeout=10).startswith("mixedfit")


def test_nothing_runs_beside_on_busy_or_single_cores(monkeypatch):
    monkeypatch.setattr(cores, "_usable_cores", lambda: 2)
    monkeypatch.setattr(cores, "busy", lambda: True)
    assert cores.beside(sum, [1, 2]) is None
    monkeypatch.setattr(cores, "busy", lambda: False)
    monkeypatch.setattr(cores, "_usable_cores", lambda: 1)
    assert cores.beside(sum, [1, 2]) is None


def test_large_factorizations_are_threaded_on_idle_cores(idle_cores, monkeypatch):
    assert cores.threaded(cores._THREADED_COLUMNS) and not cores.threaded(cores._THREADED_COLUMNS - 1)
    monkeypatch.setattr(cores, "busy", lambda: True)
    assert not cores.threaded(10_000)
    monkeypatch.setattr(cores, "busy", lambda: False)
    monkeypatch.setattr(cores, "_usable_cores", lambda: 1)
    assert not cores.threaded(10_000)


def test_large_dense_products_are_threaded_on_idle_cores(idle_cores, monkeypatch):
    # as many multiply-adds as the smallest threaded factorization (n³/6), with a small rest
    as_many = cores._THREADED_COLUMNS ** 3 / 6
    assert cores.threaded(8, as_many) and not cores.threaded(8, as_many - 1)
    monkeypatch.setattr(cores, "busy", lambda: True)
    assert not cores.threaded(8, 100 * as_many)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_gets_a_second_thread_of_its_own(idle_cores):
    # The parent's executor, inherited with its worker marked idle but without the
    # thread itself, queued the child's product for no one: the child waited forever.
    assert cores.beside(sum, [1, 2]).result(timeout=10) == 3
    pid = os.fork()
    if pid == 0:  # the child: report by exit status only
        try:
            ok = cores.beside(sum, [3, 4]).result(timeout=10) == 7
        except BaseException:
            ok = False
        sys.stdout.flush()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
