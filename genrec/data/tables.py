"""Tables on disk (CSV, TSV, Parquet, JSON lines, RecBole atomic files) or in memory (`datasets.Dataset`),
read through `datasets` into one Arrow table.

`datasets` parses a file in chunks into a memory-mapped Arrow cache, so a 10M-row file never passes
through a Python loop; everything downstream works on whole columns. Identifier columns are read as
text, so `007` stays `007` and an id column with a gap does not turn into floats.
"""
from __future__ import annotations

import contextlib
import csv
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Sequence

import pyarrow as pa

from genrec.data.validation import DataValidationError
from genrec.errors import GenrecError, MissingFileError

# file suffix -> format; a `.json` that is not LC-Rec's `*.inter.json` is read as JSON lines
SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet",
            ".jsonl": "jsonl", ".json": "jsonl", ".inter": "recbole", ".item": "recbole"}
FORMATS = ("csv", "tsv", "parquet", "jsonl", "recbole")
SEPARATORS = {"csv": ",", "tsv": "\t", "recbole": "\t"}


def table_format(path: Path) -> str | None:
    """The table format a file's suffix names (`None`: not a table file)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".gz"]:
        suffixes = suffixes[:-1]
    return SUFFIXES.get(suffixes[-1]) if suffixes else None


def recbole_header(path: Path, sep: str = "\t") -> dict[str, tuple[str, str]]:
    """RecBole atomic files name each column `name:type` (token, token_seq, float, float_seq):
    {name: (header as written, type)}."""
    columns = {}
    for raw in _first_line(path).split(sep):
        name, _, kind = raw.strip().partition(":")
        if not kind:
            raise DataValidationError(f"{path}:1: malformed_header: column {raw!r} has no ':type' "
                                      "(RecBole atomic files write e.g. 'user_id:token')")
        columns[name] = (raw, kind)
    return columns


def _first_line(path: Path) -> str:
    """The header line alone (a 10 GB file is not read to find it), without a byte-order mark."""
    import gzip

    if not path.is_file():
        raise MissingFileError(f"data file not found: {path}")
    with (gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")) as f:
        raw = f.readline().removeprefix(b"\xef\xbb\xbf")
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise DataValidationError(f"{path}:1: bad_encoding: the header is not UTF-8 (byte {err.start})") from None


def _header(path: Path, sep: str) -> list[str]:
    first = next(csv.reader([_first_line(path)], delimiter=sep), [])
    if not first or not any(first):
        raise DataValidationError(f"{path}: the file is empty or has no header line; the first line must name "
                                  "the columns")
    return first


NAME_COLUMNS = "data.table.columns (e.g. data.table.columns.user=userId)"


def read_table(source: Any, fmt: str = "auto", *, sep: str = "", columns: Sequence[str] = (),
               setting: str = NAME_COLUMNS) -> tuple[pa.Table, str]:
    """`source` (a path or a `datasets.Dataset`) as an Arrow table, and the name to use for it in messages.
    `columns`, if given, must all exist (else the error points at `setting`), and only they are kept.
    Delimited files are read all as text: ids keep their leading zeros, and times and ratings are parsed
    later, so a bad value can name its row."""
    import datasets

    if isinstance(source, datasets.Dataset):
        table = source.with_format("arrow")[:]  # honours a select/shuffle/filter done on the Dataset
        return _keep(table, columns, "the in-memory Dataset", setting), "the in-memory Dataset"
    path = Path(source)
    if not path.is_file():
        raise MissingFileError(f"data file not found: {path}")
    fmt = table_format(path) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise DataValidationError(f"{path}: cannot tell the table format from the name; set data.table.format to one of "
                                  f"{', '.join(FORMATS)}")
    try:
        with _quiet(datasets):
            if fmt in ("csv", "tsv", "recbole"):
                table = _read_delimited(path, fmt, sep or SEPARATORS[fmt], columns, setting)
            elif fmt == "parquet":
                table = datasets.Dataset.from_parquet(str(path)).data.table
            else:
                table = datasets.Dataset.from_json(str(path)).data.table
            table.validate(full=True)  # Arrow's JSON reader lets bytes that are not UTF-8 into text columns
    except GenrecError:
        raise
    except Exception as err:  # the parser's own error names neither the file nor the line: find them here
        raise DataValidationError(_unreadable(path, fmt, err)) from None
    if fmt == "parquet":  # delimited headers are checked before reading, and JSON lines with a repeated key fail to parse
        _check_columns(table.column_names, str(path))
    if table.num_rows == 0:
        raise DataValidationError(f"{path}: no_rows: the file has no data rows" + (" under its header" if fmt != "jsonl" else ""))
    return _keep(table, columns, str(path), setting), str(path)


def _check_columns(names: Sequence[str], where: str) -> None:
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise DataValidationError(f"{where}: duplicate_column: column name(s) {repeated} appear more than once; "
                                  "every column needs its own name")


def _unreadable(path: Path, fmt: str, err: Exception) -> str:
    """The message for a file the parser could not read: the first problem a plain pass over it finds (with its
    line), or else the parser's own words. The pass runs only here, after a failure, so good files pay nothing."""
    import gzip
    import json
    import zlib

    opener = gzip.open if path.suffix == ".gz" else open
    number = 0
    try:
        with opener(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as bad:
                    return f"{path}:{number}: bad_encoding: the line is not UTF-8 (byte {bad.start} of the line); save the file as UTF-8"
                if fmt == "jsonl" and line.strip():
                    try:
                        keys = [key for key, _ in json.loads(line, object_pairs_hook=lambda pairs: pairs)]
                    except json.JSONDecodeError as bad:
                        return f"{path}:{number}: malformed_json: {bad.msg} at column {bad.colno}; JSON lines hold one object per line"
                    except (TypeError, ValueError):  # a line that is not an object
                        return f"{path}:{number}: malformed_json: the line is not a JSON object; JSON lines hold one object per line"
                    repeated = sorted(key for key, count in Counter(keys).items() if count > 1)
                    if repeated:
                        return f"{path}:{number}: duplicate_column: key(s) {repeated} appear more than once in the object"
    except (EOFError, OSError, zlib.error) as bad:
        return (f"{path}: truncated_file: the compressed file ends early or is damaged after line {number} "
                f"({type(bad).__name__}: {bad}); copy or download it again")
    if fmt in ("csv", "tsv", "recbole") and number <= 1:
        return f"{path}: no_rows: the file has a header line and no data rows"
    if number == 0:
        return f"{path}: no_rows: the file is empty"
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"{path}: cannot be read as {fmt} ({type(err).__name__}: {first})"


def _read_delimited(path: Path, fmt: str, sep: str, columns: Sequence[str], setting: str) -> pa.Table:
    import datasets

    names = list(recbole_header(path, sep)) if fmt == "recbole" else _header(path, sep)
    _check_columns(names, f"{path}:1")
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataValidationError(f"{path}: no column(s) {missing}; the file has {names}. Name the columns "
                                  f"with {setting}")
    wanted = list(columns) or names
    features = datasets.Features({c: datasets.Value("string") for c in wanted})
    read = datasets.Dataset.from_csv(str(path), sep=sep, header=0, names=names, usecols=wanted, features=features,
                                     keep_default_na=False, na_values=[""])
    return read.data.table


def _keep(table: pa.Table, columns: Sequence[str], where: str, setting: str) -> pa.Table:
    if not columns:
        return table
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise DataValidationError(f"{where}: no column(s) {missing}; it has {table.column_names}. Name the "
                                  f"columns with {setting}")
    return table.select(list(columns))


@contextlib.contextmanager
def _quiet(datasets_module: Any) -> Iterator[None]:
    """`datasets` draws a progress bar per file it converts; off a terminal that is noise in a log."""
    from genrec.console import interactive

    was_enabled = datasets_module.is_progress_bar_enabled()
    if not interactive():
        datasets_module.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets_module.enable_progress_bars()
