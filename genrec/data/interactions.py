"""A table of interactions (user, item, time, maybe a rating) -> per-user sequences, with raw ids kept.

The steps, all on whole columns: check the rows (missing ids, times or ratings that do not parse: raised, or
dropped and counted with `on_error="drop"`), keep ratings >= `min_rating`, k-core filtering, order each
user's interactions by time (ties keep file order), drop users shorter than `min_length`. Users are numbered
in order of first appearance; items in the item table's order when one is given, else in order of first
appearance. Every filter's before/after counts end up in `SequenceData.filtering`.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from genrec.data.schema import Catalog, SequenceData
from genrec.data.tables import FORMATS, read_table, recbole_header, table_format
from genrec.data.validation import DataValidationError, OnError, ProblemLog


@dataclass
class Columns:
    """Column names in the interaction table. `time: ""` keeps each user's rows in file order."""

    user: str = "user_id"
    item: str = "item_id"
    time: str = "timestamp"
    rating: str = "rating"  # read only when `min_rating` is set


@dataclass
class ItemTable:
    """The item side: an id column plus the text columns that describe an item (MiniLM embeds them)."""

    path: str = ""  # "" = none (RecBole: the `.item` file beside the `.inter` file is used if present)
    id: str = "item_id"
    text: list[str] = field(default_factory=list)  # [] = every column but the id


@dataclass
class InteractionTable:
    """How to read an interaction table: `data.table.*` in a run config."""

    format: str = "auto"  # auto (from the file suffix) | csv | tsv | parquet | jsonl | recbole
    columns: Columns = field(default_factory=Columns)
    sep: str = ""  # "" = the format's own (csv ",", tsv and recbole tab)
    min_rating: float | None = None  # implicit feedback: keep rows rated at least this
    k_core: int = 0  # repeat until every user and item has >= k interactions (0 = off; Amazon sets are 5-core)
    items: ItemTable = field(default_factory=ItemTable)

    def validate(self) -> None:
        if self.format not in ("auto", *FORMATS):
            raise ValueError(f"format must be auto or one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.k_core < 0:
            raise ValueError(f"k_core must be 0 (off) or a positive count, got {self.k_core}")
        if not self.columns.user or not self.columns.item:
            raise ValueError("columns.user and columns.item must name columns")


def load_interactions(source: Any, table: InteractionTable | None = None, *, name: str | None = None,
                      min_length: int = 3, on_error: OnError = "raise") -> SequenceData:
    """`source`: a CSV/TSV/Parquet/JSON-lines/RecBole file, or a `datasets.Dataset` in memory."""
    table = table or InteractionTable()
    table.validate()
    cols = table.columns
    wanted = [cols.user, cols.item] + ([cols.time] if cols.time else []) + (
        [cols.rating] if table.min_rating is not None else [])
    raw, where = read_table(source, table.format, sep=table.sep, columns=wanted)
    if not raw.num_rows:
        raise DataValidationError(f"{where}: the table holds no rows")
    users, items, times, ratings, bad, dropped = _checked_columns(raw, table, where, on_error)

    keep = ~bad
    filtering: dict[str, Any] = {"rows_read": raw.num_rows}
    if dropped:
        filtering["rows_dropped_as_invalid"] = int(bad.sum())
    if ratings is not None:
        low = keep & (ratings < table.min_rating)
        filtering[f"rows_rated_below_{table.min_rating:g}"] = int(low.sum())
        keep &= ~low
    if not keep.any():
        raise DataValidationError(f"{where}: no rows left after the checks and filters ({filtering})")

    user_codes, user_ids = _encode(users.filter(pa.array(keep)))
    item_codes, item_ids = _encode(items.filter(pa.array(keep)))
    times = times[keep]
    if table.k_core:
        core = k_core(user_codes, item_codes, table.k_core)
        filtering["k_core"] = {"k": table.k_core, "rounds": core.rounds, "before": _counts(user_codes, item_codes),
                               "after": _counts(user_codes[core.keep], item_codes[core.keep])}
        user_codes, item_codes, times = user_codes[core.keep], item_codes[core.keep], times[core.keep]

    user_codes, item_codes = _by_user_in_time_order(user_codes, item_codes, times, min_length, filtering, where)
    starts = np.flatnonzero(np.r_[True, user_codes[1:] != user_codes[:-1]])
    catalog, index_of_code = _catalog(item_ids, np.unique(item_codes), table, source, on_error, filtering)
    data = SequenceData(name=name or _name(source), catalog=catalog, user_ids=[user_ids[c] for c in user_codes[starts]],
                        sequences=np.split(index_of_code[item_codes], starts[1:]), dropped=dropped, filtering=filtering)
    print(f"[genrec] {where}: {raw.num_rows:,} rows -> {data.num_users:,} users, {data.num_items:,} items, "
          f"{data.num_interactions:,} interactions ({_describe(filtering)})", file=sys.stderr, flush=True)
    return data


def _checked_columns(raw: pa.Table, table: InteractionTable, where: str, on_error: OnError):
    """Ids as text, times and ratings as float64, and the rows that fail a check (raised, or dropped and
    counted: the dict of counts by kind)."""
    cols = table.columns
    log = ProblemLog(on_error)
    users, items = _ids(raw[cols.user]), _ids(raw[cols.item])
    bad = np.zeros(raw.num_rows, dtype=bool)

    def who(row: int) -> str:
        return f"user {users[row].as_py()!r} item {items[row].as_py()!r}"

    for kind, column, column_name in (("missing_user", users, cols.user), ("missing_item", items, cols.item)):
        missing = _missing(column)
        log.add_rows(kind, where, np.flatnonzero(missing), lambda r, c=column_name: f"{who(r)}: no value in column {c!r}")
        bad |= missing
    def parsed(name: str, column: str, dates: bool, expected: str) -> np.ndarray:
        """The column as float64; its empty and unparseable rows logged as missing_/bad_<name> and marked bad."""
        values, unparsed = _numbers(raw[column], dates=dates)
        nulls = _missing(raw[column])
        log.add_rows(f"missing_{name}", where, np.flatnonzero(nulls & ~bad), lambda r: f"{who(r)}: no {name}")
        log.add_rows(f"bad_{name}", where, np.flatnonzero(unparsed & ~nulls & ~bad), lambda r:
                     f"{who(r)}: {name} {raw[column][r].as_py()!r} is {expected}")
        bad[:] |= unparsed
        return values

    times = parsed("time", cols.time, True, "neither a number nor an ISO date") if cols.time else (
        np.arange(raw.num_rows, dtype=np.float64))  # no time column: file order
    ratings = parsed("rating", cols.rating, False, "not a number") if table.min_rating is not None else None
    return users, items, times, ratings, bad, log.finish(f"interaction table {where}")


def _by_user_in_time_order(user_codes: np.ndarray, item_codes: np.ndarray, times: np.ndarray, min_length: int,
                           filtering: dict[str, Any], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows grouped by user (in code order), each user's in time order with ties in file order, users with
    fewer than `min_length` rows left out."""
    order = np.lexsort((times, user_codes))  # a stable sort: equal times keep file order
    user_codes, item_codes = user_codes[order], item_codes[order]
    starts = np.flatnonzero(np.r_[True, user_codes[1:] != user_codes[:-1]])
    lengths = np.diff(np.r_[starts, len(user_codes)])
    long_enough = lengths >= min_length
    filtering[f"users_shorter_than_{min_length}"] = int((~long_enough).sum())
    if not long_enough.any():
        raise DataValidationError(f"{where}: no user has {min_length} or more interactions after filtering "
                                  f"({filtering}); leave-one-out needs a training item, a validation and a test item")
    rows = np.repeat(long_enough, lengths)
    return user_codes[rows], item_codes[rows]


# --------------------------------------------------------------------------- columns
def _ids(column: pa.ChunkedArray) -> pa.Array:
    """Ids as text. Whole-number floats (a Parquet/JSON id column with a gap) lose their `.0`."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_floating(array.type):
        values = array.to_numpy(zero_copy_only=False)
        finite = values[~np.isnan(values)]
        if np.all(finite == np.round(finite)):
            array = pc.cast(array, pa.int64(), safe=False)
    return array if pa.types.is_string(array.type) else pc.cast(array, pa.string())


def _missing(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    null = pc.is_null(column)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        null = pc.or_(null, pc.equal(pc.utf8_trim_whitespace(column), ""))
    return np.asarray(pc.fill_null(null, True).to_numpy(zero_copy_only=False), dtype=bool)


NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def _numbers(column: pa.ChunkedArray, dates: bool) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values, mask of rows that did not parse). Text columns: numbers, or (`dates`) ISO-8601 dates
    as seconds since 1970 when the column is not all numbers."""
    array = column.combine_chunks()
    if pa.types.is_timestamp(array.type) or pa.types.is_date(array.type):
        values = pc.cast(pc.cast(array, pa.timestamp("s")), pa.int64()).to_numpy(zero_copy_only=False)
        return values.astype(np.float64), np.asarray(pc.is_null(array).to_numpy(zero_copy_only=False), dtype=bool)
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        values = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
        return values, np.isnan(values)
    text = pc.utf8_trim_whitespace(array)
    numeric = pc.fill_null(pc.match_substring_regex(text, NUMBER), False)
    values = pc.cast(pc.if_else(numeric, text, None), pa.float64()).to_numpy(zero_copy_only=False)
    unparsed = np.isnan(values)
    present = ~np.asarray(pc.fill_null(pc.equal(text, ""), True).to_numpy(zero_copy_only=False), dtype=bool)
    if dates and (unparsed & present).any():  # not all numbers: are they dates?
        import pandas as pd

        stamps = pd.to_datetime(pd.Series(text.to_pandas()), errors="coerce", utc=True, format="ISO8601")
        seconds = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isnan(seconds).sum() < unparsed.sum():
            values, unparsed = seconds, np.isnan(seconds)
    return values, unparsed


def _encode(ids: pa.Array) -> tuple[np.ndarray, list[str]]:
    """Codes 0..n-1 in order of first appearance, and the id of each code."""
    encoded = pc.dictionary_encode(ids)
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary.to_pylist()


@dataclass
class Core:
    keep: np.ndarray  # bool per interaction
    rounds: int


def k_core(users: np.ndarray, items: np.ndarray, k: int) -> Core:
    """Drop interactions of users and items with fewer than `k` until none is left below `k` (dropping an item
    can push a user under `k` again, hence the rounds). Repeated (user, item) pairs count as interactions."""
    keep = np.ones(len(users), dtype=bool)
    rounds = 0
    while True:
        user_count = np.bincount(users[keep], minlength=users.max(initial=-1) + 1)
        item_count = np.bincount(items[keep], minlength=items.max(initial=-1) + 1)
        new = keep & (user_count[users] >= k) & (item_count[items] >= k)
        rounds += 1
        if new.sum() == keep.sum():
            return Core(keep, rounds)
        keep = new


def _counts(users: np.ndarray, items: np.ndarray) -> dict[str, int]:
    return {"users": int(len(np.unique(users))), "items": int(len(np.unique(items))), "interactions": int(len(users))}


def _describe(filtering: dict[str, Any]) -> str:
    parts = []
    for key, value in filtering.items():
        if key == "rows_read":
            continue
        if key == "k_core":
            b, a = value["before"], value["after"]
            parts.append(f"{value['k']}-core in {value['rounds']} rounds: users {b['users']:,}->{a['users']:,}, "
                         f"items {b['items']:,}->{a['items']:,}, interactions {b['interactions']:,}->{a['interactions']:,}")
        elif isinstance(value, dict):  # rows dropped by kind
            parts.append(f"{key.replace('_', ' ')}: {value}")
        elif value:
            parts.append(f"{key.replace('_', ' ')}: {value:,}")
    return "; ".join(parts) or "nothing filtered"


def _name(source: Any) -> str:
    if isinstance(source, (str, Path)):
        path = Path(source)
        return path.name.split(".")[0]
    return "table"


# --------------------------------------------------------------------------- items
def _item_table_path(source: Any, table: InteractionTable) -> Path | None:
    if table.items.path:
        return Path(table.items.path)
    if isinstance(source, (str, Path)) and table_format(Path(source)) == "recbole":
        candidate = Path(source).with_suffix(".item")
        return candidate if candidate.is_file() else None
    return None


def _catalog(item_ids: list[str], codes: np.ndarray, table: InteractionTable, source: Any, on_error: OnError,
             filtering: dict[str, Any]) -> tuple[Catalog, np.ndarray]:
    """The catalogue of the items left (`codes`), and code -> catalogue index."""
    ids = [item_ids[c] for c in codes]
    path = _item_table_path(source, table)
    text: dict[str, list[str]] = {}
    if path is not None:
        rows, text, dropped = _item_rows(path, table.items, on_error)
        if dropped:
            filtering["item_table_rows_dropped_as_invalid"] = dropped
        position = np.array([rows.get(i, len(rows)) for i in ids])
        order = np.argsort(position, kind="stable")  # the item table's order; items it lacks last
        ids = [ids[j] for j in order]
        codes = codes[order]
        missing = int((position == len(rows)).sum())
        text = {name: [values[rows[i]] if i in rows else "" for i in ids] for name, values in text.items()}
        filtering["items_not_in_item_table"] = missing
        filtering["item_table_rows_without_interactions"] = len(rows) - (len(ids) - missing)
    filtering["items_without_text"] = len(ids) if not text else int(sum(
        not any(values[j] for values in text.values()) for j in range(len(ids))))
    index_of_code = np.full(len(item_ids), -1, dtype=np.int64)
    index_of_code[codes] = np.arange(len(codes))
    return Catalog(ids, text={k: v for k, v in text.items() if any(v)}), index_of_code


def _item_rows(path: Path, spec: ItemTable, on_error: OnError) -> tuple[dict[str, int], dict[str, list[str]], dict[str, int]]:
    """{item id: row} and {text column: value per row} of the item table, and the rows dropped by kind (bad
    rows are raised unless `on_error="drop"`)."""
    fmt = table_format(path) or "auto"
    columns = [spec.id, *spec.text] if spec.text else []
    if fmt == "recbole" and not spec.text:  # RecBole declares types: its text is the token/token_seq columns
        header = recbole_header(path)
        columns = [spec.id] + [n for n, (_, kind) in header.items() if kind.startswith("token") and n != spec.id]
    raw, where = read_table(path, fmt, columns=columns, setting="data.table.items.id and data.table.items.text")
    if spec.id not in raw.column_names:
        raise DataValidationError(f"{where}: no item id column {spec.id!r}; it has {raw.column_names}. Name it "
                                  "with data.table.items.id")
    ids = _ids(raw[spec.id])
    log = ProblemLog(on_error)
    missing = _missing(ids)
    log.add_rows("missing_item", where, np.flatnonzero(missing), lambda r: f"no value in column {spec.id!r}")
    id_list = ids.to_pylist()
    codes, _ = _encode(pc.fill_null(ids, ""))
    _, first_row = np.unique(codes, return_index=True)
    duplicate = (first_row[codes] != np.arange(len(codes))) & ~missing
    log.add_rows("duplicate_item", where, np.flatnonzero(duplicate),
                 lambda r: f"item {id_list[r]!r} is already on row {first_row[codes[r]] + 1}")
    dropped = log.finish(f"item table {where}")
    good = ~(missing | duplicate)
    rows = {item: n for n, item in enumerate(i for i, g in zip(id_list, good) if g)}
    text_columns = [c for c in raw.column_names if c != spec.id]
    text = {c: [("" if v is None else str(v).strip()) for v, g in zip(raw[c].to_pylist(), good) if g] for c in text_columns}
    return rows, text, dropped
