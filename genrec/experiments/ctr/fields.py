"""Item-side categorical fields for the CTR path: attributes, item-ID copies and semantic-ID codes.

Every representation is reduced to an integer matrix [items, fields] plus a vocabulary size per
field, so all backbones see the same kind of input. At scaling factor k, with L base levels:

* `id`:  the item ID in k independent tables (multi-embedding of the ID itself);
* `rq`:  the item ID + codes of one RQ-VAE with k*L residual levels;
* `me`:  the item ID + the L codes of one RQ-VAE, each looked up in k independent tables;
* `moc`: the item ID + codes of k*L parallel (independent) codebooks, Mixture-of-Codes.

So `rq`, `me` and `moc` spend exactly the same number of fields and embedding rows per scale.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from genrec.config import to_dict
from genrec.files import save_atomic
from genrec.data.schema import Catalog
from genrec.experiments.tokenizer import TokenizerFitConfig, fit_tokenizer

REPRESENTATIONS = ("id", "rq", "me", "moc")
# `code_fields` names its columns <representation>_c<level>[_t<copy>]
CODE_PREFIXES = tuple(f"{r}_" for r in REPRESENTATIONS if r != "id")


@dataclass
class ItemFields:
    names: list[str]
    values: np.ndarray  # [items, fields] int64, each column < its vocab size
    vocab_sizes: list[int]

    def fingerprint(self) -> str:
        h = hashlib.sha256(json.dumps([self.names, self.vocab_sizes]).encode())
        h.update(np.ascontiguousarray(self.values).tobytes())
        return h.hexdigest()[:16]

    def __add__(self, other: "ItemFields") -> "ItemFields":
        return ItemFields(self.names + other.names, np.concatenate([self.values, other.values], axis=1),
                          self.vocab_sizes + other.vocab_sizes)


def representation_columns(fields: ItemFields) -> list[int]:
    """The columns of the representation under test: its code fields, or (ID representation) the item-ID
    copies; what `model.fusion_fields=representation` fuses."""
    codes = [i for i, name in enumerate(fields.names) if name.startswith(CODE_PREFIXES)]
    return codes or [i for i, name in enumerate(fields.names) if name.startswith("item_id_")]


def id_fields(num_items: int, copies: int = 1) -> ItemFields:
    ids = np.arange(num_items, dtype=np.int64)[:, None]
    return ItemFields([f"item_id_{i}" for i in range(copies)], np.repeat(ids, copies, axis=1), [num_items] * copies)


def attribute_fields(catalog: Catalog, slots: int) -> ItemFields:
    """The first `slots` attributes of each item, one field per position; 0 means none. Attribute ids are
    anonymous (S3-Rec brand/category ids), so position in the list is the only structure there is."""
    attributes = catalog.extra.get("attributes")
    if not slots or attributes is None:
        return ItemFields([], np.zeros((len(catalog), 0), dtype=np.int64), [])
    values = np.zeros((len(catalog), slots), dtype=np.int64)
    for i, attrs in enumerate(attributes):
        head = attrs[:slots]
        values[i, : len(head)] = np.asarray(head, dtype=np.int64) + 1
    vocab = int(values.max()) + 1
    return ItemFields([f"attr_{s}" for s in range(slots)], values, [vocab] * slots)


def code_fields(codes: np.ndarray, codebook_size: int, prefix: str, copies: int = 1) -> ItemFields:
    codes = np.asarray(codes, dtype=np.int64)
    names = [f"{prefix}_c{level}" + (f"_t{t}" if copies > 1 else "") for t in range(copies) for level in range(codes.shape[1])]
    return ItemFields(names, np.tile(codes, (1, copies)), [codebook_size] * codes.shape[1] * copies)


def code_folder(tokenizer_config: dict) -> str:
    """`<kind>_<levels>_<hash of the whole tokenizer config>`: where a tokenizer's codes are cached."""
    key = hashlib.sha256(json.dumps(tokenizer_config, sort_keys=True).encode()).hexdigest()[:10]
    return f"{tokenizer_config['kind']}_{tokenizer_config['num_levels']}_{key}"


CodeSource = Callable[[str, int], np.ndarray]  # (tokenizer kind, number of code fields) -> codes [items, n]


def code_paths(kept: str | Path | None, cache: str | Path, folder: str) -> tuple[Path | None, Path]:
    """Where a tokenizer's codes are saved: kept with the results (`<kept>/<code_folder>.npz`, None without a
    kept folder) and cached by the fit that made them (`<cache>/<code_folder>/codes.npy`)."""
    return (Path(kept) / f"{folder}.npz" if kept else None), Path(cache) / folder / "codes.npy"


def saved_codes(kept: str | Path | None, cache: str | Path, folder: str) -> np.ndarray | None:
    """A tokenizer's kept codes, else its cached ones, else None."""
    kept_file, cached = code_paths(kept, cache, folder)
    if kept_file is not None and kept_file.exists():
        return np.load(kept_file)["codes"].astype(np.int64)
    return np.load(cached) if cached.exists() else None


def tokenizer_codes(embeddings: np.ndarray, cfg: TokenizerFitConfig, cache: str | Path,
                    kept: str | Path | None = None) -> CodeSource:
    """Train (once) and cache the raw codes of a residual or parallel tokenizer with n levels/codebooks.
    Collisions are left as they are: a CTR model also sees the item ID, so codes need not be unique.

    `kept`: a folder (committed with the results) where each tokenizer's codes are also kept, as
    `<code_folder>.npz`, and read before anything else. A refit of the same config on another CPU gives
    other codes (floating-point order), so a grid filled on several machines needs its codes kept."""
    x = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)

    def codes(kind: str, n: int) -> np.ndarray:
        tok_cfg = replace(cfg, kind=kind, num_levels=n)
        folder = code_folder(to_dict(tok_cfg))  # a changed config never reuses old codes
        kept_file, cached = code_paths(kept, cache, folder)
        out = saved_codes(kept, cache, folder)
        if out is None:
            tokenizer, _, _ = fit_tokenizer(x, tok_cfg, cached.parent)
            out = tokenizer.codes(x).numpy()
            save_atomic(lambda f: np.save(f, out), cached)
        if kept_file is not None and not kept_file.exists():
            kept_file.parent.mkdir(parents=True, exist_ok=True)
            small = out.astype(np.min_scalar_type(int(out.max())))  # codebook ids: one byte each at 256 codes
            save_atomic(lambda f: np.savez_compressed(f, codes=small), kept_file)
        return out

    return codes


def representation_fields(representation: str, scale: int, num_items: int, base_levels: int, codebook_size: int,
                          codes: CodeSource) -> ItemFields:
    if scale < 1:
        raise ValueError(f"scaling factor must be >= 1, got {scale}")
    if representation == "id":
        return id_fields(num_items, scale)
    if representation == "rq":
        return id_fields(num_items) + code_fields(codes("residual", base_levels * scale), codebook_size, "rq")
    if representation == "me":
        return id_fields(num_items) + code_fields(codes("residual", base_levels), codebook_size, "me", copies=scale)
    if representation == "moc":
        return id_fields(num_items) + code_fields(codes("parallel", base_levels * scale), codebook_size, "moc")
    raise ValueError(f"unknown representation {representation!r}; choose from {REPRESENTATIONS}")
