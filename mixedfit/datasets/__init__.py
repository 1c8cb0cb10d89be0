"""Example data sets from R's lme4, nlme and mlmRev packages.

The data were exported from R by ``tests/lme4/export_datasets.R``: every
number reads back as exactly the double R holds, and every factor keeps R's
levels in R's order (and R's ``ordered`` flag), so that a model fitted here
sees the same data as the same model fitted by ``lme4::lmer``.

Examples
--------
>>> from mixedfit.datasets import list_datasets, load_dataset
>>> "sleepstudy" in list_datasets()
True
>>> load_dataset("sleepstudy").shape
(180, 3)
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from mixedfit.errors import DataError

__all__ = ["load_dataset", "list_datasets"]

_DATA_PACKAGE = "mixedfit.datasets"
_DATA_DIR = "data"


def _data_files() -> Any:
    return resources.files(_DATA_PACKAGE).joinpath(_DATA_DIR)


@lru_cache(maxsize=1)
def _catalog() -> dict[str, str]:
    """Map the lower-cased name of each bundled data set to its R name."""
    names: dict[str, str] = {}
    for entry in _data_files().iterdir():
        fname = entry.name
        if fname.endswith(".csv.gz"):
            stem = fname[: -len(".csv.gz")]
            if _data_files().joinpath(stem + ".json").is_file():
                names[stem.lower()] = stem
    return names


def list_datasets() -> list[str]:
    """Return the names of the bundled data sets, sorted case-insensitively.

    Returns
    -------
    list of str
        The data set names as spelled in R (e.g. ``"sleepstudy"``,
        ``"InstEval"``, ``"Hsb82"``); any of them can be passed to
        ``load_dataset``, in any letter case.

    Examples
    --------
    >>> from mixedfit.datasets import list_datasets
    >>> list_datasets()[:3]
    ['cake', 'cbpp', 'Chem97']
    """
    return sorted(_catalog().values(), key=str.lower)


@lru_cache(maxsize=None)
def _load_cached(name: str) -> pd.DataFrame:
    files = _data_files()
    meta = json.loads(files.joinpath(name + ".json").read_text(encoding="utf-8"))
    columns: dict[str, dict[str, Any]] = meta["columns"]
    dtypes: dict[str, Any] = {}
    for col, spec in columns.items():
        kind = spec["type"]
        if kind == "factor":
            dtypes[col] = str
        elif kind == "integer":
            dtypes[col] = "Int64"  # nullable while parsing; made int64 below when complete
        elif kind == "numeric":
            # read as text and convert with Python's correctly rounded float()
            # so every value is bit-identical to R's double, whatever pandas'
            # own float parser does
            dtypes[col] = str
        else:  # pragma: no cover - guarded by the export script
            raise DataError(f"data set {name!r}: column {col!r} has unknown type {kind!r}")
    with files.joinpath(name + ".csv.gz").open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as fh:
        frame = pd.read_csv(
            fh,
            dtype=dtypes,
            keep_default_na=False,
            na_values=[""],
        )
    out: dict[str, Any] = {}
    for col, spec in columns.items():
        values = frame[col]
        kind = spec["type"]
        if kind == "factor":
            levels = list(spec["levels"])
            cat = pd.Categorical(values, categories=levels, ordered=bool(spec["ordered"]))
            n_bad = int(np.sum(cat.isna() & values.notna().to_numpy()))
            if n_bad:
                raise DataError(f"data set {name!r}: column {col!r} holds {n_bad} values outside its levels")
            out[col] = cat
        elif kind == "integer":
            out[col] = values.astype(np.int64) if not values.isna().any() else values
        else:
            out[col] = np.array([float(v) for v in values.to_numpy(dtype=object)], dtype=np.float64)
    result = pd.DataFrame(out, columns=list(columns))
    if len(result) != int(meta["nrow"]):
        raise DataError(f"data set {name!r}: expected {meta['nrow']} rows, read {len(result)}")
    return result


def load_dataset(name: str) -> pd.DataFrame:
    """Load one of the bundled data sets as a new ``pandas.DataFrame``.

    Parameters
    ----------
    name : str
        Name of the data set, as in R (``"sleepstudy"``, ``"Dyestuff"``,
        ``"Dyestuff2"``, ``"Penicillin"``, ``"Pastes"``, ``"cake"``,
        ``"InstEval"``, ``"Machines"``, ``"Hsb82"``, ``"Chem97"``,
        ``"egsingle"``); the lookup ignores letter case.

    Returns
    -------
    pandas.DataFrame
        A fresh copy on every call. R factors are ``pandas.Categorical``
        columns whose categories are R's levels in R's order, ordered where
        R's factor is ordered; R numeric columns are ``float64`` and R integer
        columns ``int64``.

    Raises
    ------
    mixedfit.errors.DataError
        If no bundled data set has that name; the message lists the names.

    Examples
    --------
    >>> from mixedfit.datasets import load_dataset
    >>> df = load_dataset("sleepstudy")
    >>> df.shape
    (180, 3)
    >>> list(df.columns)
    ['Reaction', 'Days', 'Subject']
    >>> list(df["Subject"].cat.categories[:3])
    ['308', '309', '310']
    >>> load_dataset("instEVAL")["y"].dtype
    dtype('int64')
    """
    if not isinstance(name, str):
        raise DataError(f"data set name must be a string, not {type(name).__name__}")
    catalog = _catalog()
    key = name.strip().lower()
    if key not in catalog:
        raise DataError(
            f"unknown data set {name!r}; available data sets: {', '.join(list_datasets())}"
        )
    return _load_cached(catalog[key]).copy(deep=True)
