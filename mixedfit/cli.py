"""The ``mixedfit`` command: fit a model from the shell and print lme4's summary.

Examples
--------
``mixedfit fit "Reaction ~ Days + (Days|Subject)" --data sleepstudy``
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from .datasets import list_datasets, load_dataset
from .errors import MixedFitError
from .model import mixed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixedfit", description="Fit lme4-style linear mixed models.")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit a model and print its summary")
    fit.add_argument("formula", help='an lme4 formula, e.g. "Reaction ~ Days + (Days|Subject)"')
    source = fit.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help=f"a bundled data set: {', '.join(list_datasets())}")
    source.add_argument("--csv", type=Path, help="a CSV file with a header row")
    fit.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    fit.add_argument("--weights", help="column of prior weights")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.data:
            data, name = load_dataset(args.data), args.data
        else:
            data, name = pd.read_csv(args.csv), args.csv.stem
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
