"""CTR samples built from the same interactions as the sequential protocol.

Protocol (also in README): every interaction is a positive. Per user, the last interaction is the
test positive, the second-to-last the validation positive and the rest are training positives, so
no split sees the user's future. Each positive gets `negatives` items drawn uniformly from the
items that user never touched (in any split), and the negatives go to the positive's split.
Samples depend only on the data, `negatives` and `sample_seed`, and are cached on disk.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genrec.data.embeddings import cache_dir
from genrec.data.schema import SequenceData

SPLITS = ("train", "valid", "test")


@dataclass
class CtrSampleConfig:
    negatives: int = 1  # sampled negatives per positive, in every split
    sample_seed: int = 2024  # fixed across model seeds, so seed variance is model variance


@dataclass
class CtrSplit:
    users: np.ndarray  # [n] int64 user index
    items: np.ndarray  # [n] int64 item index
    labels: np.ndarray  # [n] float32, 1 = interaction, 0 = sampled negative

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class CtrSamples:
    train: CtrSplit
    valid: CtrSplit
    test: CtrSplit
    num_users: int
    num_items: int

    def split(self, name: str) -> CtrSplit:
        return getattr(self, name)


def _positives(data: SequenceData) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    lengths = np.array([len(s) for s in data.sequences])
    if (lengths < 3).any():
        user = data.user_ids[int(np.argmax(lengths < 3))]
        raise ValueError(f"user {user} has fewer than 3 interactions; the CTR time split needs train, valid and test")
    users = np.repeat(np.arange(len(lengths)), lengths)
    items = np.concatenate(data.sequences)
    position_from_end = np.concatenate([np.arange(n)[::-1] for n in lengths])
    return {"train": (users[position_from_end >= 2], items[position_from_end >= 2]),
            "valid": (users[position_from_end == 1], items[position_from_end == 1]),
            "test": (users[position_from_end == 0], items[position_from_end == 0])}


def sample_negatives(users: np.ndarray, touched: np.ndarray, num_items: int, rng: np.random.Generator) -> np.ndarray:
    """One item per entry of `users`, uniform over items that user never touched. `touched` holds the
    sorted keys `user * num_items + item` of all interactions; rejected draws are redrawn."""
    items = rng.integers(0, num_items, len(users))
    todo = np.arange(len(users))
    while len(todo):
        keys = users[todo] * num_items + items[todo]
        hit = np.searchsorted(touched, keys)
        clash = touched[np.minimum(hit, len(touched) - 1)] == keys
        todo = todo[clash]
        items[todo] = rng.integers(0, num_items, len(todo))
    return items


def build_ctr_samples(data: SequenceData, cfg: CtrSampleConfig) -> CtrSamples:
    if cfg.negatives < 1:
        raise ValueError(f"negatives must be >= 1, got {cfg.negatives}")
    num_items = data.num_items
    lengths = np.array([len(s) for s in data.sequences])
    touched = np.unique(np.repeat(np.arange(len(lengths)), lengths) * num_items + np.concatenate(data.sequences))
    full = np.bincount(touched // num_items, minlength=len(lengths)) >= num_items
    if full.any():
        raise ValueError(f"user {data.user_ids[int(np.argmax(full))]} touched every item: no negatives to sample")
    rng = np.random.default_rng(cfg.sample_seed)
    splits = {}
    for name, (users, items) in _positives(data).items():
        neg_users = np.repeat(users, cfg.negatives)
        neg_items = sample_negatives(neg_users, touched, num_items, rng)
        splits[name] = CtrSplit(np.concatenate([users, neg_users]).astype(np.int64),
                                np.concatenate([items, neg_items]).astype(np.int64),
                                np.concatenate([np.ones(len(users)), np.zeros(len(neg_users))]).astype(np.float32))
    return CtrSamples(**splits, num_users=data.num_users, num_items=num_items)


def _cache_path(data: SequenceData, cfg: CtrSampleConfig) -> Path:
    h = hashlib.sha256(f"ctr-v1|{cfg.negatives}|{cfg.sample_seed}|{data.num_items}".encode())
    for seq in data.sequences:
        h.update(seq.astype(np.int64).tobytes() + b"|")
    return cache_dir() / "ctr" / f"{data.name}_{h.hexdigest()[:16]}.npz"


def ctr_samples(data: SequenceData, cfg: CtrSampleConfig) -> CtrSamples:
    """Build or load the cached samples (keyed by the sequences themselves, so edited data never hits a stale cache)."""
    path = _cache_path(data, cfg)
    if path.exists():
        z = np.load(path)
        return CtrSamples(**{s: CtrSplit(z[f"{s}_users"], z[f"{s}_items"], z[f"{s}_labels"]) for s in SPLITS},
                          num_users=data.num_users, num_items=data.num_items)
    samples = build_ctr_samples(data, cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **{f"{s}_{k}": getattr(samples.split(s), k) for s in SPLITS for k in ("users", "items", "labels")})
    tmp.replace(path)
    return samples
