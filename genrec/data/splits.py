"""Leave-one-out splits (P5/TIGER protocol) as padded tensors ready for batching.

For a user sequence s[0..n-1]: test target s[n-1], validation target s[n-2], and training targets
s[1..n-3] (every prefix of the training part, sliding window). Histories are the up-to-`max_history`
items just before the target, left-padded with -1.

Under the cold-start protocol (`genrec.data.coldstart`) the items from `known` on are new: they are left out of
the training part and of validation, and only the test split sees them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from genrec.data.schema import SequenceData

if TYPE_CHECKING:
    from genrec.data.coldstart import ColdStart

PAD = -1


@dataclass
class Split:
    """`history[i]` (left-padded with PAD) precedes `target[i]`; `user[i]` is the user index."""

    history: np.ndarray  # [n, max_history] int64
    target: np.ndarray  # [n] int64
    user: np.ndarray  # [n] int64

    def __len__(self) -> int:
        return len(self.target)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"history": torch.from_numpy(self.history), "target": torch.from_numpy(self.target),
                "user": torch.from_numpy(self.user)}


@dataclass
class LeaveOneOut:
    train: Split
    valid: Split
    test: Split
    cold: ColdStart | None = None  # the cold-start protocol's new items, when it is in use

    @property
    def known(self) -> int | None:
        """Items [0, known) may appear in training; the rest are new (None: every item, the standard protocol)."""
        return None if self.cold is None else self.cold.known

    def tensors(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: getattr(self, name).tensors() for name in ("train", "valid", "test")}


def _pad_left(seq: np.ndarray, width: int) -> np.ndarray:
    out = np.full(width, PAD, dtype=np.int64)
    tail = seq[-width:] if width else seq[:0]
    if len(tail):
        out[width - len(tail):] = tail
    return out


def _examples(pairs: list[tuple[int, np.ndarray, int]], max_history: int) -> Split:
    if not pairs:
        return Split(np.zeros((0, max_history), np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return Split(
        history=np.stack([_pad_left(h, max_history) for _, h, _ in pairs]),
        target=np.array([t for _, _, t in pairs], dtype=np.int64),
        user=np.array([u for u, _, _ in pairs], dtype=np.int64),
    )


def leave_one_out(data: SequenceData, max_history: int = 20) -> LeaveOneOut:
    train, valid, test = [], [], []
    for u, seq in enumerate(data.sequences):
        n = len(seq)
        if n < 3:
            raise ValueError(f"user {data.user_ids[u]} has {n} items; leave-one-out needs at least 3")
        test.append((u, seq[: n - 1], int(seq[n - 1])))
        valid.append((u, seq[: n - 2], int(seq[n - 2])))
        train.extend((u, seq[:t], int(seq[t])) for t in range(1, n - 2))
    return LeaveOneOut(_examples(train, max_history), _examples(valid, max_history), _examples(test, max_history))


def training_parts(data: SequenceData, known: int | None = None) -> list[np.ndarray]:
    """Each user's training part: all but the last two items, without the new items (>= `known`) if given."""
    parts = [np.asarray(s[: len(s) - 2], dtype=np.int64) for s in data.sequences]
    return parts if known is None else [p[p < known] for p in parts]


def training_items(data: SequenceData, known: int | None = None) -> np.ndarray:
    """Every item occurrence in the training part (all but the last two of each sequence)."""
    return np.concatenate(training_parts(data, known))


def popularity(data: SequenceData, known: int | None = None) -> np.ndarray:
    """Training-part interaction count per item (used by the popularity baseline and CTR sampling); new items
    (>= `known`, the cold-start protocol) count zero."""
    return np.bincount(training_items(data, known), minlength=data.num_items)


@dataclass
class Rows:
    """Every-position training rows: `target[r, j]` is the item after `history[r, j]` (both left-padded
    with PAD), so one causal pass over a row trains every position at once."""

    history: np.ndarray  # [rows, max_history] int64
    target: np.ndarray  # [rows, max_history] int64
    user: np.ndarray  # [rows] int64

    def __len__(self) -> int:
        return len(self.user)

    @property
    def num_targets(self) -> int:
        return int((self.target >= 0).sum())

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"history": torch.from_numpy(self.history), "target": torch.from_numpy(self.target),
                "user": torch.from_numpy(self.user)}


def training_rows(data: SequenceData, max_history: int = 20, known: int | None = None) -> Rows:
    """The training part of each sequence (all but the last two items) cut into rows of at most
    `max_history` + 1 items, from the newest end back, consecutive rows sharing one item so that every
    training target appears exactly once. A target sees the items before it in its own row: the full
    history (up to `max_history`) in a user's newest row, and less at the start of older rows. `known`: the
    cold-start protocol's first new item (new items are left out of the training part)."""
    history, target, user = [], [], []
    for u, part in enumerate(training_parts(data, known)):
        end = len(part)
        while end > 1:
            start = max(0, end - max_history - 1)
            history.append(_pad_left(part[start : end - 1], max_history))
            target.append(_pad_left(part[start + 1 : end], max_history))
            user.append(u)
            end = start + 1
    if not user:
        return Rows(np.zeros((0, max_history), np.int64), np.zeros((0, max_history), np.int64), np.zeros(0, np.int64))
    return Rows(np.stack(history), np.stack(target), np.asarray(user, dtype=np.int64))
