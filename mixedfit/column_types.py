"""Files and partitions that cannot make one table: refused, naming the file and the column.

Dask takes the columns' types from one file (or partition) and finds out
about the others only when it reads them.  A file whose model column is text
where the others hold numbers reached the sums pass, where each text value
became a level of a factor: a dense rows × rows fixed-effects matrix per
partition, before the error.  Parquet files are checked first, on their
footers alone (``check_parquet_files``); partitions of other sources in the
levels pass (``values_kind`` of each partition's columns, then
``check_kinds``).  What is compared is the kind of type (``_kind``: numbers,
logical values, text), as the formula reads the column.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .errors import DataError
from .terms import plural

__all__ = ["values_kind", "check_kinds", "check_parquet_files", "parquet_reads"]

_PARQUET_EXTENSIONS = (".parq", ".parquet", ".pq")  # what read_parquet reads from a directory


def _kind(dtype) -> str:
    """What a formula makes of a column of this type: numbers, logical values, text (levels)
    or another type (its name).  A categorical is what its categories are."""
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "logical values"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numbers"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return "text"
    return str(dtype)


def values_kind(column: pd.Series) -> str | None:
    """``_kind`` of a column, by its values where its type is object; None if all missing."""
    if not pd.api.types.is_object_dtype(column.dtype):
        return _kind(column.dtype)
    inferred = pd.api.types.infer_dtype(column, skipna=True)
    return {"empty": None, "string": "text", "floating": "numbers", "integer": "numbers",
            "mixed-integer-float": "numbers", "decimal": "numbers",
            "boolean": "logical values"}.get(inferred, f"values of type '{inferred}'")


def _arrow_kind(arrow_type) -> str | None:
    """``_kind`` of a parquet column's arrow type; None for a column of nulls only."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_null(arrow_type):
        return None  # goes with any type
    if pa.types.is_decimal(arrow_type):
        return "numbers"
    return _kind(arrow_type.to_pandas_dtype())


def _arrow_name(arrow_type) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        return f"categorical {arrow_type.value_type}"
    return str(arrow_type)


def _parquet_files(path, storage_options: dict | None) -> tuple[Any, list[str]]:
    """The filesystem, and the files ``dask.dataframe.read_parquet(path)`` reads."""
    import fsspec

    fs, _, paths = fsspec.core.get_fs_token_paths(path, mode="rb",
                                                  storage_options=storage_options or {})
    files: list[str] = []
    for where in paths:
        if fs.isdir(where):
            files.extend(sorted(f for f in fs.find(where) if f.endswith(_PARQUET_EXTENSIONS)))
        elif not where.endswith("_metadata"):  # also _common_metadata: summaries, not data
            files.append(where)
    if not files:
        raise DataError(f"no parquet file found at {path!r}")
    return fs, files


def _parquet_schema(fs, file: str):
    """The file's arrow schema, read from its footer alone."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with fs.open(file, "rb") as handle:
            return pq.read_schema(handle)
    except (OSError, ValueError, pa.ArrowException) as err:
        raise DataError(f"{file} is not a readable parquet file: {err}") from None


def check_parquet_files(path, storage_options: dict | None, names: set[str]) -> None:
    """Refuse parquet files that cannot make one table of the model's columns, naming the file.

    Each file must be readable, hold each of ``names`` that any file holds
    (a name in none is a constant, a column of a partitioned directory's
    paths, or unknown: said later) and give it the kind of type the others
    give it (``_kind``).  Only the files' footers are read.
    """
    fs, files = _parquet_files(path, storage_options)
    schemas = {file: _parquet_schema(fs, file) for file in files}
    for column in sorted(names):
        types = {file: schema.field(column).type for file, schema in schemas.items()
                 if column in schema.names}
        missing = [file for file in files if file not in types]
        if types and missing:
            raise DataError(f"column '{column}' is missing from {missing[0]}"
                            f"{f' (and {len(missing) - 1} more files)' if len(missing) > 1 else ''}"
                            f"; {plural(len(types), 'other file')} hold it")
        _check_same_kind(column, types)


def _check_same_kind(column: str, types: dict[str, Any]) -> None:
    """Refuse a column whose files give it different kinds of type, naming an odd file."""
    by_kind: dict[str, list[str]] = {}
    for file, arrow_type in types.items():
        kind = _arrow_kind(arrow_type)
        if kind is not None:
            by_kind.setdefault(kind, []).append(file)
    if len(by_kind) < 2:
        return
    usual = max(by_kind, key=lambda kind: len(by_kind[kind]))  # a tie: the first file's
    odd = next(files[0] for kind, files in by_kind.items() if kind != usual)
    raise DataError(f"column '{column}' is {_arrow_name(types[odd])} in {odd} but "
                    f"{_arrow_name(types[by_kind[usual][0]])} in "
                    f"{plural(len(by_kind[usual]), 'other file')}: every file must give a "
                    "column the same type")


def parquet_reads(data) -> list[tuple[Any, dict | None]]:
    """``(path, storage_options)`` of each ``read_parquet`` (on fsspec) behind a Dask DataFrame."""
    try:
        from dask.dataframe.dask_expr.io.parquet import ReadParquetFSSpec

        reads = list(data.expr.find_operations(ReadParquetFSSpec))
    except (ImportError, AttributeError):  # another Dask: its files are read unchecked
        return []
    return [(read.path, read.storage_options) for read in reads
            if isinstance(read.operand("filesystem"), str)]


def check_kinds(kinds: dict[str, dict[str, int]], meta: pd.DataFrame) -> None:
    """Refuse a column whose partitions hold values of different kinds (``_kind``).

    ``kinds`` gives, for each column, the first partition holding each kind;
    the meta's type counts too unless it is object (which holds anything).
    The message names the later of the first two kinds found.
    """
    for column, found in kinds.items():
        where = {kind: f"partition {number}"
                 for kind, number in sorted(found.items(), key=lambda item: item[1])}
        dtype = meta[column].dtype
        if not pd.api.types.is_object_dtype(dtype):
            where = {_kind(dtype): f"the Dask DataFrame's meta ({dtype})", **where}
        if len(where) > 1:
            (kind, at), (other, other_at) = list(where.items())[:2]
            raise DataError(f"column '{column}' holds {other} in {other_at} but {kind} in {at}: "
                            "every partition must give a column the same type")
