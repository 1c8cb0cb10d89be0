"""Progress bars for the slow loops (profiling, bootstrapping), when wanted and possible.

tqdm is optional (``pip install tqdm``).  By default a bar is shown only
when stderr is a terminal or the code runs in a Jupyter kernel, so logs,
pipes, CI and doctests stay clean; ``progress=True`` asks for one anywhere,
and ``progress=False`` silences it.

A shown bar holds back the warnings issued while it runs and issues them
once it is gone, so that they do not break its line.

Examples
--------
>>> with progress_bar(3, "demo", progress=False) as bar:
...     bar.update(1)
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Protocol

from .errors import MixedFitWarning, warn

__all__ = ["progress_bar", "ProgressBar"]


class ProgressBar(Protocol):
    """What the loops use of a bar: a context whose ``update(n)`` counts steps."""

    def update(self, n: int = 1) -> object: ...

    def __enter__(self) -> "ProgressBar": ...

    def __exit__(self, *exc: object) -> None: ...


class _Silent:
    """A bar that shows nothing, so loops need no ``if bar is not None``."""

    def update(self, n: int = 1) -> None:
        pass

    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Shown:
    """A tqdm bar that holds the warnings issued while it shows and issues them when it is gone.

    A warning printed to stderr mid-bar breaks the bar's line in a terminal;
    held, each is issued once after the bar closes, still pointing at the
    line it was issued for.
    """

    def __init__(self, bar: Any):
        self._bar = bar
        self._catcher = warnings.catch_warnings(record=True)
        self._held: list[warnings.WarningMessage] = []

    def update(self, n: int = 1) -> None:
        self._bar.update(n)

    def __enter__(self) -> "_Shown":
        self._held = self._catcher.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()
        self._catcher.__exit__(*exc)
        seen = dict.fromkeys((str(w.message), w.category, w.filename, w.lineno) for w in self._held)
        for message, category, filename, lineno in seen:
            warnings.warn_explicit(message, category, filename, lineno)


def _stderr_is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", None) and sys.stderr.isatty())


def _in_jupyter_kernel() -> bool:
    """Whether this runs in a Jupyter kernel, whose notebook shows tqdm.auto's widget bar."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def progress_bar(total: int, desc: str, progress: bool | None = None) -> ProgressBar:
    """A tqdm bar over ``total`` steps, or a silent stand-in.

    Parameters
    ----------
    total : int
        Number of steps the loop will report with ``update(1)``.
    desc : str
        Label shown before the bar.
    progress : bool, optional
        ``False``: silent.  ``None`` (default): a bar if tqdm is installed and
        stderr is a terminal or this is a Jupyter kernel.  ``True``: a bar,
        or a warning that tqdm is missing.

    Returns
    -------
    ProgressBar
        A context: call ``update(n)`` after each step inside it.

    Examples
    --------
    >>> bar = progress_bar(10, "bootstrap")  # silent: doctest's stderr is no terminal
    >>> type(bar).__name__
    '_Silent'
    """
    if progress is False or (progress is None and not (_stderr_is_terminal() or _in_jupyter_kernel())):
        return _Silent()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress:
            warn("progress=True shows a bar only with tqdm installed: pip install tqdm", MixedFitWarning)
        return _Silent()
    # leave=False: the bar disappears when done, as the results follow it
    return _Shown(tqdm(total=total, desc=desc, leave=False))
