"""The cold-start protocol: a seeded share of the catalogue is new, items nobody interacted with in training.

Every interaction with a new item is removed from the training part and from validation (targets and
histories); the test split keeps every user, with the full history (new items included), and its target may be
new. Test metrics are then reported over the users whose target is new (cold), over the rest (warm) and over all.

New items are moved to the end of the catalogue (indices `known` and up), so a model is built and trained
over the known items only, exactly as if the new ones did not exist yet, and grows by appending rows when they
arrive (`GenerativeRecommender.add_items`). The new items are drawn by the protocol's own seed, the same for every
model and every training seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from genrec.data.schema import Catalog, SequenceData
from genrec.data.splits import LeaveOneOut, _examples, training_parts


@dataclass
class ColdStart:
    known: int  # items [0, known) may appear in training; [known, num_items) are new
    order: np.ndarray  # order[i]: item i's index in the source catalogue (to reorder vectors computed on it)
    source: Catalog  # the catalogue in its original order (item text vectors are cached by it)
    share: float
    seed: int
    counts: dict[str, int] = field(default_factory=dict)  # what the protocol removed, for the record

    @property
    def num_new(self) -> int:
        return len(self.order) - self.known

    def reorder(self, vectors: np.ndarray) -> np.ndarray:
        """Rows computed over the source catalogue (e.g. item text vectors) in this protocol's item order."""
        return np.ascontiguousarray(np.asarray(vectors)[self.order])


def pick_new_items(num_items: int, share: float, seed: int) -> np.ndarray:
    """A bool mask of round(share * num_items) items, drawn uniformly by `seed`."""
    if not 0 < share < 1:
        raise ValueError(f"the share of new items must lie in (0, 1), got {share}")
    count = max(1, round(share * num_items))
    new = np.zeros(num_items, dtype=bool)
    new[np.random.default_rng(seed).choice(num_items, count, replace=False)] = True
    return new


def _reordered(data: SequenceData, order: np.ndarray) -> SequenceData:
    """The same data over the catalogue in `order` (new index i = old index order[i])."""
    catalog = data.catalog
    pick = lambda values: [values[i] for i in order]  # noqa: E731
    new_catalog = Catalog([catalog.original_ids[i] for i in order], {k: pick(v) for k, v in catalog.text.items()},
                          {k: pick(v) for k, v in catalog.extra.items()})
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    return replace(data, catalog=new_catalog, sequences=[position[np.asarray(s)] for s in data.sequences])


def cold_start(data: SequenceData, share: float = 0.05, seed: int = 0,
               max_history: int = 20) -> tuple[SequenceData, LeaveOneOut]:
    """The data with its new items moved last, and the cold-start splits over it (see the module's docstring).
    A validation example goes when its target is new or its history is empty without the new items; each
    count is kept in `splits.cold.counts`."""
    new = pick_new_items(data.num_items, share, seed)
    order = np.concatenate([np.flatnonzero(~new), np.flatnonzero(new)])
    known, source = int((~new).sum()), data.catalog
    data = _reordered(data, order)
    train, valid, test = [], [], []
    counts = {"new_items": int(new.sum()), "training_interactions_removed": 0, "valid_new_target": 0,
              "valid_empty_history": 0, "test_new_target": 0, "test_history_with_new_items": 0}
    for u, (seq, part) in enumerate(zip(data.sequences, training_parts(data, known))):
        n = len(seq)
        counts["training_interactions_removed"] += n - 2 - len(part)
        test.append((u, seq[: n - 1], int(seq[n - 1])))
        counts["test_new_target"] += int(seq[n - 1] >= known)
        counts["test_history_with_new_items"] += int((seq[max(0, n - 1 - max_history) : n - 1] >= known).any())
        if seq[n - 2] >= known:
            counts["valid_new_target"] += 1
        elif not len(part):
            counts["valid_empty_history"] += 1
        else:
            valid.append((u, part, int(seq[n - 2])))
        train.extend((u, part[:t], int(part[t])) for t in range(1, len(part)))
    splits = LeaveOneOut(_examples(train, max_history), _examples(valid, max_history), _examples(test, max_history),
                         ColdStart(known, order, source, share, seed, counts))
    return data, splits
