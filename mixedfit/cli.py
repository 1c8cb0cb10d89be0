"""The ``mixedfit`` command: fit a model from the shell and print lme4's summary.

Examples
--------
``mixedfit fit "Reaction ~ Days + (Days|Subject)" --data sleepstudy``

``python -m mixedfit fit "y ~ x + (1|g)" --csv - --ddf satterthwaite --confint wald < data.csv``
"""

from __future__ import annotations

import argparse
import codecs
import errno
import io
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from .api import mixed
from .datasets import list_datasets, load_dataset
from .errors import DataError, MixedFitError

__all__ = ["read_csv", "main"]


#: separators a CSV file may use when --sep does not name one
_SEPARATORS = ",;\t|"


def _version() -> str:
    try:
        return version("mixedfit")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixedfit", description="Fit lme4-style linear mixed models.")
    parser.add_argument("--version", action="version", version=f"mixedfit {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit a model and print its summary")
    fit.add_argument("formula", help='an lme4 formula, e.g. "Reaction ~ Days + (Days|Subject)"')
    source = fit.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help=f"a bundled data set: {', '.join(list_datasets())}")
    source.add_argument("--csv", type=Path, help="a CSV file with a header row; - reads standard input")
    fit.add_argument("--sep", help="the CSV file's field separator (default: found from the header, "
                     "one of , ; tab |)")
    fit.add_argument("--encoding", default="utf-8", help="the CSV file's text encoding (default utf-8), "
                     "e.g. latin-1")
    fit.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    fit.add_argument("--weights", help="column of prior weights")
    fit.add_argument("--ddf", choices=["satterthwaite", "kenward-roger"],
                     help="lmerTest's t-tests in the summary, with these denominator df")
    fit.add_argument("--confint", nargs="?", const="profile", choices=["profile", "wald", "boot"],
                     help="also print confidence intervals (default method: profile, as confint())")
    return parser


def read_csv(path: Path, encoding: str = "utf-8", sep: str | None = None) -> pd.DataFrame:
    r"""The CSV file's rows; what stops pandas becomes a ``DataError`` naming the file.

    ``path`` ``-`` reads standard input.  Without ``sep`` the separator is
    the one of ``, ; tab |`` that the header line holds most of (R's
    ``read.csv2`` files use ``;``).  Text that is not in ``encoding`` is
    refused, with the line it is on, rather than read as latin-1: that never
    fails, so it would silently misread the letters of any other encoding.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "ragged.csv"
    >>> _ = path.write_text("y,g\n1,a\n2,b,3\n")
    >>> read_csv(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mixedfit.errors.DataError: ...ragged.csv cannot be read as CSV: Expected 2 fields in line 3, saw 3
    """
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r} (--encoding)") from None
    raw = sys.stdin.buffer.read() if str(path) == "-" else Path(path).read_bytes()
    try:
        text = raw.decode(encoding)
        data = pd.read_csv(io.StringIO(text), sep=sep or _separator(text))
    except UnicodeDecodeError:
        line = _undecodable_line(raw, encoding)
        raise DataError(f"{path} is not {encoding} text{f' (line {line})' if line else ''}: "
                        "give its encoding, e.g. --encoding latin-1") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: a CSV file needs a header row") from None
    except pd.errors.ParserError as err:
        detail = " ".join(str(err).split()).removeprefix("Error tokenizing data. C error: ")
        raise DataError(f"{path} cannot be read as CSV: {detail}") from None
    if data.empty:
        raise DataError(f"{path} has a header row but no rows of data")
    return data


def _separator(text: str) -> str:
    """The separator the header line uses most, of ``, ; tab |`` (``,`` when it holds none)."""
    header = text.partition("\n")[0]
    counts = {sep: header.count(sep) for sep in _SEPARATORS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _undecodable_line(raw: bytes, encoding: str) -> int | None:
    """The number of the first line of ``raw`` that is not ``encoding`` text (None if none is)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    for number, line in enumerate(raw.splitlines(keepends=True), start=1):
        try:
            decoder.decode(line)
        except UnicodeDecodeError:
            return number
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.data:
            data, name = load_dataset(args.data), args.data
        else:
            data = read_csv(args.csv, args.encoding, args.sep)
            name = "stdin" if str(args.csv) == "-" else args.csv.stem
        fit = mixed(args.formula, data, reml=not args.ml, weights=args.weights, data_name=name)
        text = str(fit.summary(ddf=args.ddf))
        if args.confint:
            text += f"\n{fit.confint(method=args.confint).to_string()}\n"
    except (MixedFitError, OSError) as err:
        print(f"mixedfit: error: {err}", file=sys.stderr)
        return 2
    return _write(text)


def _write(text: str) -> int:
    """Print ``text``; a reader that left or a full disk ends the command with a message, not a traceback."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left (``| head``): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as err:
        # Python flushes stdout again at exit: point it at /dev/null so that
        # the failure is reported once, here.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"mixedfit: error: cannot write the output: {os.strerror(err.errno or errno.EIO)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
