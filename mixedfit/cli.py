"""The ``mixedfit`` command: fit a model from the shell and print lme4's summary.

Examples
--------
``mixedfit fit "Reaction ~ Days + (Days|Subject)" --data sleepstudy``
"""

from __future__ import annotations

import argparse
import codecs
import os
import sys
from pathlib import Path

import pandas as pd

from .datasets import list_datasets, load_dataset
from .errors import DataError, MixedFitError
from .model import mixed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixedfit", description="Fit lme4-style linear mixed models.")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit a model and print its summary")
    fit.add_argument("formula", help='an lme4 formula, e.g. "Reaction ~ Days + (Days|Subject)"')
    source = fit.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help=f"a bundled data set: {', '.join(list_datasets())}")
    source.add_argument("--csv", type=Path, help="a CSV file with a header row")
    fit.add_argument("--encoding", default="utf-8", help="the CSV file's text encoding (default utf-8), "
                     "e.g. latin-1")
    fit.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    fit.add_argument("--weights", help="column of prior weights")
    return parser


def read_csv(path: Path, encoding: str = "utf-8") -> pd.DataFrame:
    r"""The CSV file's rows; what stops pandas becomes a :class:`DataError` naming the file.

    Text that is not in ``encoding`` is refused, with the line it is on,
    rather than read as latin-1: that never fails, so it would silently
    misread the letters of any other encoding.

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
        data = pd.read_csv(path, encoding=encoding)
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r} (--encoding)") from None
    except UnicodeDecodeError:
        line = _undecodable_line(path, encoding)
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


def _undecodable_line(path: Path, encoding: str) -> int | None:
    """The number of the file's first line that is not ``encoding`` text (None if none is)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    with open(path, "rb") as file:
        for number, line in enumerate(file, start=1):
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
            data, name = read_csv(args.csv, args.encoding), args.csv.stem
        fit = mixed(args.formula, data, reml=not args.ml, weights=args.weights, data_name=name)
    except (MixedFitError, OSError) as err:
        print(f"mixedfit: error: {err}", file=sys.stderr)
        return 2
    try:
        print(fit.summary())
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left (``| head``): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
