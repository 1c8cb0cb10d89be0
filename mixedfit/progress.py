"""Progress bars for the slow loops (profiling, bootstrapping), when wanted and possible.

tqdm is optional (``pip install tqdm``).  By default a bar is shown only
when stderr is a terminal or the code runs in a Jupyter kernel, so logs,
pipes, CI and doctests stay clean; ``progress=True`` asks for one anywhere,
and ``progress=False`` silences it.

Examples
--------
>>> bar = progress_bar(3, "demo", progress=False)
>>> bar.update(1); bar.close()
"""

from __future__ import annotations

import sys
from typing import Protocol

from .errors import MixedFitWarning, warn

__all__ = ["progress_bar", "ProgressBar"]


class ProgressBar(Protocol):
    """What the loops use of a tqdm bar."""

    def update(self, n: int = 1) -> object: ...

    def close(self) -> object: ...


class _Silent:
    """A bar that shows nothing, so loops need no ``if bar is not None``."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


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
        Call ``update(n)`` after each step and ``close()`` at the end.

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
    return tqdm(total=total, desc=desc, leave=False)
