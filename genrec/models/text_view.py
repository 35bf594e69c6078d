"""The text view: an item's score gets a weight times the cosine of its text vector to the last history item's.

A text vector reaches a model's item table through a projection to the model width; the view adds the texts'
similarity at full resolution, for new and known items alike. Any model that ranks a catalogue can add it (the
generative recommender inside its search, SASRec-CE to its scores), with the weight chosen on validation.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def text_view_scores(text: torch.Tensor, last: torch.Tensor, weight: float) -> torch.Tensor:
    """[B, items]: `weight` times each item's cosine to item `last[b]` (text vectors `text` [items, dim]), 0 for the
    item itself: a user's own last item is not its own text neighbour."""
    unit = F.normalize(text.float(), dim=-1)
    return weight * (unit[last] @ unit.T).scatter_(1, last.unsqueeze(1), 0.0)


def choose_weight(weights: list[float], validate: Callable[[float], dict[str, float]]
                  ) -> tuple[float, dict[float, dict[str, float]]]:
    """The weight with the best validation N@10 (`validate(weight)`: the validation metrics with that weight; ties go
    to the smaller weight), and every weight's metrics."""
    metrics = {weight: validate(weight) for weight in weights}
    return max(weights, key=lambda w: (metrics[w]["ndcg@10"], -w)), metrics
