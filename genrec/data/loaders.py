"""Loaders for the two on-disk formats, both producing `SequenceData`.

* P5 style: `sequential_data.txt` (`user item item ...` per line) + `items.jsonl` (one object per item).
* LC-Rec style: `<name>.inter.json` (`{user: [item, ...]}`) + `<name>.item.json` (`{item: {title, ...}}`).
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from genrec.data.schema import Catalog, SequenceData
from genrec.data.validation import DataValidationError, OnError, ProblemLog, read_lines, read_text

MIN_LENGTH = 3  # leave-one-out needs one training item, a validation target and a test target


def _clean(text: Any) -> str:
    return html.unescape(str(text)).strip() if text else ""


def _categories(value: Any) -> str:
    """P5 stores `[["Beauty", "Makeup", ...]]`; LC-Rec a comma string. Both become `a > b > c`."""
    if not value:
        return ""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    else:
        parts = []
        for path in value if isinstance(value[0], list) else [value]:
            parts.extend(str(p) for p in path if str(p) not in parts)
    return " > ".join(_clean(p) for p in parts if p)


# --------------------------------------------------------------------------- P5 format
def load_p5_catalog(items_path: str | Path, log: ProblemLog) -> Catalog:
    ids: list[str] = []
    seen: dict[str, int] = {}
    title, categories, keywords, asin = [], [], [], []
    for number, line in read_lines(items_path, log):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            log.add("malformed_line", items_path, number, f"not valid JSON ({err.msg})")
            continue
        if not isinstance(row, dict) or "item_id" not in row:
            log.add("malformed_line", items_path, number, "object has no 'item_id'")
            continue
        item_id = str(row["item_id"])
        if not item_id.lstrip("-").isdigit():
            log.add("non_integer_id", items_path, number, f"item id {item_id!r} is not an integer")
            continue
        if item_id in seen:
            log.add("duplicate_item", items_path, number, f"item id {item_id} already defined on line {seen[item_id]}")
            continue
        seen[item_id] = number
        ids.append(item_id)
        title.append(_clean(row.get("title")))
        categories.append(_categories(row.get("categories")))
        keywords.append(_clean(row.get("idgenrec_text")))
        asin.append(row.get("asin"))
    text = {k: v for k, v in (("title", title), ("categories", categories), ("keywords", keywords)) if any(v)}
    return Catalog(ids, text=text, extra={"asin": asin} if any(asin) else {})


def load_p5_sequences(path: str | Path, catalog: Catalog | None, log: ProblemLog, min_length: int):
    users: list[str] = []
    sequences: list[list[str]] = []
    first_line: dict[str, int] = {}
    for number, line in read_lines(path, log):
        tokens = line.split()
        if len(tokens) < 2:
            log.add("malformed_line", path, number, f"expected 'user item ...', got {line[:60]!r}")
            continue
        user, items = tokens[0], tokens[1:]
        bad = next((t for t in items if not t.isdigit()), None)
        if bad is not None:
            log.add("non_integer_id", path, number, f"user {user}: item id {bad!r} is not a non-negative integer")
            continue
        if catalog is not None:
            missing = next((t for t in items if t not in catalog), None)
            if missing is not None:
                log.add("unknown_item", path, number, f"user {user}: item id {missing} is not in the catalogue")
                continue
        if user in first_line:
            log.add("duplicate_user", path, number, f"user {user} already appears on line {first_line[user]}")
            continue
        if len(items) < min_length:
            log.add("too_short", path, number, f"user {user} has {len(items)} item(s); leave-one-out needs >= {min_length}")
            continue
        first_line[user] = number
        users.append(user)
        sequences.append(items)
    return users, sequences


def load_p5(
    sequences_path: str | Path,
    items_path: str | Path | None = None,
    *,
    name: str = "p5",
    on_error: OnError = "raise",
    min_length: int = MIN_LENGTH,
) -> SequenceData:
    log = ProblemLog(on_error)
    catalog = load_p5_catalog(items_path, log) if items_path is not None else None
    dropped = log.finish(f"item file {items_path}")
    if catalog is not None and not len(catalog):
        raise DataValidationError(f"{items_path}: the item file holds no items; fill it (one JSON object per line "
                                  "with an 'item_id'), or remove it to use the ids of the sequence file")
    log = ProblemLog(on_error)
    users, sequences = load_p5_sequences(sequences_path, catalog, log, min_length)
    dropped = _add(dropped, log.finish(f"sequence file {sequences_path}"))
    return _assemble(name, catalog, users, sequences, sequences_path, dropped)


# --------------------------------------------------------------------------- LC-Rec format
def _no_duplicate_keys(path: Path, what: str):
    """A JSON object hook that refuses a repeated key (json.loads would silently keep the last one)."""
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise DataValidationError(f"{path}: duplicate_{what}: {what} {key} appears more than once; "
                                          "merge the entries into one")
            out[key] = value
        return out
    return hook


def _load_json_object(path: Path, what: str = "key") -> dict[str, Any]:
    try:
        data = json.loads(read_text(path), object_pairs_hook=_no_duplicate_keys(path, what))
    except json.JSONDecodeError as err:
        raise DataValidationError(f"{path}:{err.lineno}: malformed_line: not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise DataValidationError(f"{path}: expected a JSON object at the top level, got {type(data).__name__}")
    return data


def load_lcrec(
    inter_path: str | Path,
    item_path: str | Path | None = None,
    *,
    name: str = "lcrec",
    on_error: OnError = "raise",
    min_length: int = MIN_LENGTH,
) -> SequenceData:
    """JSON objects have no useful line numbers, so problems name the file, user key and item id."""
    inter_path = Path(inter_path)
    log = ProblemLog(on_error)
    catalog = None
    if item_path is not None:
        items = _load_json_object(Path(item_path), "item")
        ids, fields = [], {k: [] for k in ("title", "brand", "categories", "description")}
        for key, row in items.items():
            if not key.lstrip("-").isdigit():
                log.add("non_integer_id", item_path, None, f"item id {key!r} is not an integer")
                continue
            if not isinstance(row, dict):
                log.add("malformed_line", item_path, None, f"item {key}: expected an object, got {type(row).__name__}")
                continue
            ids.append(key)
            fields["title"].append(_clean(row.get("title")).rstrip(".").strip())
            fields["brand"].append(_clean(row.get("brand")))
            fields["categories"].append(_categories(row.get("categories")))
            fields["description"].append(_clean(row.get("description")))
        dropped = log.finish(f"item file {item_path}")
        catalog = Catalog(ids, text={k: v for k, v in fields.items() if any(v)})
    else:
        dropped = {}
    log = ProblemLog(on_error)
    users, sequences = [], []
    for user, items in _load_json_object(inter_path, "user").items():
        where = f"user {user}"
        if not isinstance(items, list):
            log.add("malformed_line", inter_path, None, f"{where}: expected a list of item ids")
            continue
        bad = next((i for i in items if not (isinstance(i, int) or (isinstance(i, str) and i.isdigit()))), None)
        if bad is not None:
            log.add("non_integer_id", inter_path, None, f"{where}: item id {bad!r} is not an integer")
            continue
        tokens = [str(i) for i in items]
        if catalog is not None:
            missing = next((t for t in tokens if t not in catalog), None)
            if missing is not None:
                log.add("unknown_item", inter_path, None, f"{where}: item id {missing} is not in the catalogue")
                continue
        if len(tokens) < min_length:
            log.add("too_short", inter_path, None, f"{where} has {len(tokens)} item(s); leave-one-out needs >= {min_length}")
            continue
        users.append(str(user))
        sequences.append(tokens)
    dropped = _add(dropped, log.finish(f"interaction file {inter_path}"))
    return _assemble(name, catalog, users, sequences, inter_path, dropped)


# --------------------------------------------------------------------------- side features
def load_item_attributes(path: str | Path, catalog: Catalog, on_error: OnError = "raise") -> list[list[int]]:
    """S3-Rec's `{"item id": [attribute id, ...]}`: anonymous brand and category ids, kept in file order.
    Items the file does not list get an empty list; ids not in the catalogue are errors."""
    log = ProblemLog(on_error)
    attributes: list[list[int]] = [[] for _ in range(len(catalog))]
    for key, values in _load_json_object(Path(path)).items():
        if key not in catalog:
            log.add("unknown_item", path, None, f"item id {key} is not in the catalogue")
            continue
        if not isinstance(values, list) or not all(isinstance(v, int) and v >= 0 for v in values):
            log.add("non_integer_id", path, None, f"item {key}: attributes must be a list of non-negative integers")
            continue
        attributes[catalog.index_of(key)] = values
    log.finish(f"attribute file {path}")
    return attributes


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in {**a, **b}}


def _assemble(name: str, catalog: Catalog | None, users: list[str], sequences: list[list[str]], source: str | Path,
              dropped: dict[str, int]) -> SequenceData:
    if catalog is None:  # no item file: the catalogue is the set of ids seen, in numeric order
        seen = sorted({t for s in sequences for t in s}, key=int)
        catalog = Catalog(seen)
    if not users:
        raise DataValidationError(f"{source}: no usable user sequences (dataset {name!r}"
                                  + (f"; dropped rows: {dropped})" if dropped else "; is the file empty?)"))
    arrays = [np.fromiter((catalog.index_of(t) for t in s), dtype=np.int64, count=len(s)) for s in sequences]
    return SequenceData(name=name, catalog=catalog, user_ids=users, sequences=arrays, dropped=dropped)
