"""The semantic-ID table: item -> unique code tuple and its quantized semantic vector."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from genrec.errors import MissingFileError
from genrec.files import save_folder

if TYPE_CHECKING:
    from genrec.quantize.tokenizer import SemanticTokenizer

COLLISION_MODES = ("suffix", "reassign")


def group_collisions(codes: np.ndarray) -> list[np.ndarray]:
    """Groups (arrays of item indices, in index order) of items sharing one code tuple, size >= 2."""
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(counts)[:-1]
    return [g for g in np.split(order, bounds) if len(g) > 1]


def add_suffix(codes: np.ndarray) -> np.ndarray:
    """Append a level numbering the items within each collision group (0 for unique items), as TIGER does."""
    suffix = np.zeros(len(codes), dtype=codes.dtype)
    for group in group_collisions(codes):
        suffix[group] = np.arange(len(group))
    return np.concatenate([codes, suffix[:, None]], axis=1)


def reassign_last_level(codes: np.ndarray, last_distances: np.ndarray) -> np.ndarray:
    """Keep the item nearest its code; move the others of a group to their nearest free last-level code
    under the same prefix. Falls back to an error if a prefix has more items than codes."""
    codes = codes.copy()
    prefix_used: dict[tuple, set[int]] = {}
    for row in codes:
        prefix_used.setdefault(tuple(row[:-1]), set()).add(int(row[-1]))
    for group in group_collisions(codes):
        keep = group[np.argmin(last_distances[group, codes[group[0], -1]])]
        used = prefix_used[tuple(codes[group[0], :-1])]
        for item in group:
            if item == keep:
                continue
            free = [c for c in np.argsort(last_distances[item]) if int(c) not in used]
            if not free:
                raise ValueError(f"prefix {tuple(codes[item, :-1])} has more items than codes; use collision='suffix'")
            codes[item, -1] = free[0]
            used.add(int(free[0]))
    return codes


def extend_codes(known: np.ndarray, raw: np.ndarray, collision: str,
                 last_distances: np.ndarray | None = None) -> np.ndarray:
    """Code tuples for items that join a table (their tokenizer codes `raw` [n, levels]) beside the known items'
    resolved codes, which do not change (a trained model's targets). `suffix`: the next free suffix of their code
    tuple, which is what resolving the whole catalogue with the new items last gives; `reassign`: the code if free,
    else the nearest free last-level code under its prefix (`last_distances` [n, K])."""
    raw = np.asarray(raw, dtype=np.int64)
    if collision == "suffix":
        next_suffix: dict[tuple, int] = {}
        for row in np.asarray(known):
            key = tuple(row[:-1].tolist())
            next_suffix[key] = max(next_suffix.get(key, 0), int(row[-1]) + 1)
        suffix = np.zeros(len(raw), dtype=np.int64)
        for n, row in enumerate(raw):
            key = tuple(row.tolist())
            suffix[n] = next_suffix.get(key, 0)
            next_suffix[key] = suffix[n] + 1
        return np.concatenate([raw, suffix[:, None]], axis=1)
    if collision != "reassign":
        raise ValueError(f"collision must be one of {COLLISION_MODES}, got {collision!r}")
    if last_distances is None:
        raise ValueError("collision='reassign' needs the new items' last-level distances")
    used: dict[tuple, set[int]] = {}
    for row in np.asarray(known):
        used.setdefault(tuple(row[:-1].tolist()), set()).add(int(row[-1]))
    codes = raw.copy()
    for n, row in enumerate(codes):
        taken = used.setdefault(tuple(row[:-1].tolist()), set())
        if int(row[-1]) in taken:
            free = [int(c) for c in np.argsort(last_distances[n]) if int(c) not in taken]
            if not free:
                raise ValueError(f"prefix {tuple(row[:-1].tolist())} has no free code left for new item {n}")
            row[-1] = free[0]
        taken.add(int(row[-1]))
    return codes


@dataclass
class TableMeta:
    codebook_size: int
    num_levels: int  # levels after collision resolution (suffix adds one)
    level_sizes: list[int]  # vocabulary per level
    collision: str
    distances: list[str]
    semantic_dim: int
    unique_rate_before_dedup: float


LEGACY_META_KEYS = ("id_dim", "seed")  # tables saved before the ID half moved to `models.item_embedding`


class SemanticIdTable:
    """`codes` [items, levels] (unique rows) and `semantic` [items, d] (each item's quantized vector).
    The learned ID half of an item's representation is a model parameter (`ItemEmbedding`), not part
    of the table: a table is what a tokenizer produced, and holds nothing that trains."""

    def __init__(self, codes: torch.Tensor, semantic: torch.Tensor, meta: TableMeta):
        self.codes = codes.long()
        self.semantic = semantic.float()
        self.meta = meta

    @classmethod
    def build(cls, raw_codes: torch.Tensor, semantic: torch.Tensor, *, codebook_size: int, collision: str,
              distances: list[str], last_distances: torch.Tensor | None = None) -> "SemanticIdTable":
        if collision not in COLLISION_MODES:
            raise ValueError(f"collision must be one of {COLLISION_MODES}, got {collision!r}")
        raw = raw_codes.cpu().numpy()
        unique_rate = len(np.unique(raw, axis=0)) / len(raw)
        if collision == "suffix":
            codes = add_suffix(raw)
        else:
            if last_distances is None:
                raise ValueError("collision='reassign' needs the last level's distances")
            codes = reassign_last_level(raw, last_distances.cpu().numpy())
        sizes = [codebook_size] * raw.shape[1] + ([int(codes[:, -1].max()) + 1] if collision == "suffix" else [])
        meta = TableMeta(codebook_size, codes.shape[1], sizes, collision, list(distances), semantic.shape[1], unique_rate)
        return cls(torch.from_numpy(codes), semantic.detach().cpu(), meta)

    @classmethod
    @torch.no_grad()
    def from_tokenizer(cls, tokenizer: "SemanticTokenizer", x: torch.Tensor) -> "SemanticIdTable":
        """Every item's codes (collisions resolved as the tokenizer's config says) and quantized vector."""
        codes, quantized = tokenizer.quantize_items(x)
        cfg = tokenizer.cfg
        last = tokenizer.last_level_distances(x) if cfg.collision == "reassign" else None
        return cls.build(codes, quantized, codebook_size=cfg.codebook_size, collision=cfg.collision,
                         distances=tokenizer.distances, last_distances=last)

    @property
    def num_items(self) -> int:
        return self.codes.shape[0]

    @property
    def num_levels(self) -> int:
        return self.codes.shape[1]

    def save(self, folder: str | Path) -> None:
        def fill(staged: Path) -> None:
            save_file({"codes": self.codes.contiguous(), "semantic": self.semantic.contiguous()},
                      str(staged / "semantic_ids.safetensors"))
            (staged / "semantic_ids.json").write_text(json.dumps(asdict(self.meta), indent=2))

        save_folder(folder, fill)

    @classmethod
    def load(cls, folder: str | Path) -> "SemanticIdTable":
        folder = Path(folder)
        for name in ("semantic_ids.safetensors", "semantic_ids.json"):
            if not (folder / name).exists():
                raise MissingFileError(f"{folder / name} missing: not a saved semantic-ID table")
        tensors = load_file(str(folder / "semantic_ids.safetensors"))
        meta = json.loads((folder / "semantic_ids.json").read_text())
        for key in LEGACY_META_KEYS:
            meta.pop(key, None)
        return cls(tensors["codes"], tensors["semantic"], TableMeta(**meta))
