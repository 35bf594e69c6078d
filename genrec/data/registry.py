"""Resolve a dataset name (`beauty`, `sports`, `scientific`) or a user path to loaded `SequenceData`."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from genrec.data.interactions import InteractionTable, load_interactions
from genrec.data.loaders import MIN_LENGTH, load_item_attributes, load_lcrec, load_p5
from genrec.data.schema import SequenceData
from genrec.data.tables import table_format
from genrec.data.validation import DataValidationError, OnError

# name -> folder under the shared data root
KNOWN = {"beauty": "amazon2014_beauty", "sports": "amazon2014_sports", "scientific": "amazon2018_scientific"}


def builtin_dir(name: str = "beauty") -> Path:
    return Path(str(resources.files("genrec.data") / "builtin" / name))


def data_roots() -> list[Path]:
    """Where named datasets are looked for: $GENREC_DATA_DIR, then a `shared/data` near cwd or the repo."""
    roots = []
    if os.environ.get("GENREC_DATA_DIR"):
        roots.append(Path(os.environ["GENREC_DATA_DIR"]))
    repo = Path(__file__).resolve().parents[2]
    for base in (Path.cwd(), repo):
        roots += [base / "shared" / "data", base.parent / "shared" / "data"]
    return roots


def _find_named(name: str) -> Path | None:
    for root in data_roots():
        if (root / KNOWN[name]).is_dir():
            return root / KNOWN[name]
    return None


def load_dataset(name_or_path: str | Path, *, on_error: OnError = "raise", min_length: int = MIN_LENGTH,
                 table: InteractionTable | None = None) -> SequenceData:
    """Load a named dataset, a folder in P5, LC-Rec or RecBole layout, or an interaction table file (CSV, TSV,
    Parquet, JSON lines, RecBole `.inter`; read as `table` says).

    `beauty` falls back to the copy shipped inside the package, so a fresh install runs offline.
    """
    key = str(name_or_path)
    if key in KNOWN:
        folder = _find_named(key)
        if folder is None and key == "beauty":
            folder = builtin_dir("beauty")
        if folder is None:
            raise FileNotFoundError(
                f"dataset {key!r} not found under {[str(r) for r in data_roots()]}; "
                f"set GENREC_DATA_DIR to the folder holding {KNOWN[key]}/"
            )
        return load_path(folder, name=key, on_error=on_error, min_length=min_length, table=table)
    path = Path(key)
    if not path.exists():
        raise FileNotFoundError(f"unknown dataset {key!r}: not one of {sorted(KNOWN)} and no such path")
    return load_path(path, name=path.name.split(".")[0], on_error=on_error, min_length=min_length, table=table)


def _first(folder: Path, patterns: list[str]) -> Path | None:
    for pattern in patterns:
        hits = sorted(folder.glob(pattern))
        if hits:
            return hits[0]
    return None


def load_path(path: Path, *, name: str, on_error: OnError = "raise", min_length: int = MIN_LENGTH,
              table: InteractionTable | None = None) -> SequenceData:
    """Detect the format of a folder (or a single sequence/interaction file) and load it."""
    path = Path(path)
    table = table or InteractionTable()
    inter_table = path if path.is_file() and not path.name.endswith(".inter.json") and (
        table.format != "auto" or table_format(path) is not None) else None
    if inter_table is None and path.is_dir():
        inter_table = _first(path, ["*.inter"])
    if inter_table is not None:
        return load_interactions(inter_table, table, name=name, min_length=min_length, on_error=on_error)
    if table != InteractionTable():
        raise DataValidationError(f"{path}: data.table settings apply to interaction tables (CSV, TSV, Parquet, "
                                  "JSON lines, RecBole); this dataset is in P5 or LC-Rec format")
    folder = path if path.is_dir() else path.parent
    inter = path if path.name.endswith(".inter.json") else _first(folder, ["*.inter.json", "raw/*.inter.json"])
    if inter is not None:
        stem = inter.name[: -len(".inter.json")]
        item = inter.with_name(f"{stem}.item.json")
        return load_lcrec(inter, item if item.exists() else None, name=name, on_error=on_error, min_length=min_length)
    seq_patterns = ["sequential_data.txt", "sequential_data.txt.gz", "sequential.txt", "raw/p5*/sequential_data.txt"]
    seq = path if path.is_file() else _first(folder, seq_patterns)
    if seq is None:
        raise FileNotFoundError(
            f"{path}: no sequential_data.txt (P5 format), *.inter.json (LC-Rec format) or *.inter (RecBole) found; "
            "an interaction table is a file ending in .csv, .tsv, .parquet, .jsonl or .inter (or set data.table.format)"
        )
    items = _first(folder, ["items.jsonl", "items.jsonl.gz", "derived/items.jsonl"])
    data = load_p5(seq, items, name=name, on_error=on_error, min_length=min_length)
    attributes = _first(folder, ["*item2attributes.json", "*item2attributes.json.gz", "raw/s3rec/*item2attributes.json"])
    if attributes is not None and items is not None:
        data.catalog.extra["attributes"] = load_item_attributes(attributes, data.catalog, on_error)
    return data
