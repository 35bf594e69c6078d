"""The canonical in-memory form every loader produces."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

TEXT_FIELDS = ("title", "brand", "categories", "description", "keywords")


@dataclass
class Catalog:
    """Items with a contiguous index 0..n-1; `original_ids[i]` is the id the source file used."""

    original_ids: list[str]
    text: dict[str, list[Any]] = field(default_factory=dict)  # field name -> one value per item
    extra: dict[str, list[Any]] = field(default_factory=dict)  # e.g. asin

    def __post_init__(self) -> None:
        self._index = {oid: i for i, oid in enumerate(self.original_ids)}
        for name, values in {**self.text, **self.extra}.items():
            if len(values) != len(self.original_ids):
                raise ValueError(f"catalog field {name!r} has {len(values)} values for {len(self)} items")

    def __len__(self) -> int:
        return len(self.original_ids)

    def __contains__(self, original_id: str) -> bool:
        return str(original_id) in self._index

    def index_of(self, original_id: str) -> int:
        try:
            return self._index[str(original_id)]
        except KeyError:
            raise KeyError(f"item id {original_id!r} is not in the catalogue") from None

    def get(self, name: str, index: int) -> Any:
        values = self.text.get(name) or self.extra.get(name)
        return None if values is None else values[index]

    def title(self, index: int) -> str:
        """`title`, else P5's keywords, else the first text field a user's item table has, else the id."""
        first = next(iter(self.text), None)
        return (self.get("title", index) or self.get("keywords", index) or (first and self.text[first][index])
                or self.original_ids[index])


@dataclass
class SequenceData:
    """Per-user chronological item sequences over a catalogue (item indices, not original ids)."""

    name: str
    catalog: Catalog
    user_ids: list[str]
    sequences: list[np.ndarray]
    dropped: dict[str, int] = field(default_factory=dict)  # rows dropped by kind (data.on_error=drop)
    filtering: dict[str, Any] = field(default_factory=dict)  # interaction tables: each filter's counts

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.catalog)

    @property
    def num_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    def stats(self) -> dict[str, Any]:
        lengths = np.array([len(s) for s in self.sequences])
        counts = np.bincount(np.concatenate(self.sequences), minlength=self.num_items) if self.sequences else []
        return {
            "dataset": self.name,
            "users": self.num_users,
            "items": self.num_items,
            "interactions": self.num_interactions,
            "density": self.num_interactions / max(1, self.num_users * self.num_items),
            "sequence_length": {
                "min": int(lengths.min()),
                "mean": round(float(lengths.mean()), 3),
                "median": float(np.median(lengths)),
                "p90": float(np.percentile(lengths, 90)),
                "max": int(lengths.max()),
                "histogram": _length_histogram(lengths),
            },
            "items_without_interactions": int((np.asarray(counts) == 0).sum()),
            "text_coverage": {
                name: sum(bool(v) for v in values) / max(1, self.num_items)
                for name, values in self.catalog.text.items()
            },
            "dropped_rows": dict(self.dropped),
            **({"filtering": self.filtering} if self.filtering else {}),
        }

    def to_hf_dataset(self):
        """A `datasets.Dataset` with one row per user (imported lazily: optional at run time)."""
        import datasets

        return datasets.Dataset.from_dict(
            {"user_id": self.user_ids, "item_indices": [s.tolist() for s in self.sequences]}
        )

    def catalog_to_hf_dataset(self):
        import datasets

        cols: dict[str, list[Any]] = {"item_index": list(range(self.num_items)), "original_id": self.catalog.original_ids}
        cols.update({k: [_jsonable(v) for v in vals] for k, vals in self.catalog.text.items()})
        return datasets.Dataset.from_dict(cols)


def _jsonable(v: Any) -> Any:
    return v if isinstance(v, (str, type(None))) else str(v)


def _length_histogram(lengths: np.ndarray) -> dict[str, int]:
    edges = [(5, 5), (6, 10), (11, 20), (21, 50), (51, 100), (101, None)]
    out = {}
    below = int((lengths < 5).sum())
    if below:
        out["<5"] = below
    for lo, hi in edges:
        mask = lengths >= lo if hi is None else (lengths >= lo) & (lengths <= hi)
        out[f"{lo}+" if hi is None else (f"{lo}" if lo == hi else f"{lo}-{hi}")] = int(mask.sum())
    return out
