"""The score offset of items that arrived after training.

A new item is scored by its content alone, while a known item's learned ID part carries what training learned of it,
so new items sit below known ones and a ranking would almost never return one. The offset added to every new item's
score is set so that new items fill a given share of the top k over some histories (by default their share of the
catalogue: as if a new item were as popular as the average item). No test data is needed: validation histories do.
"""
from __future__ import annotations

from typing import Callable


def offset_for_share(share_at: Callable[[float], float], share: float, low: float = -5.0, high: float = 15.0,
                     steps: int = 12) -> float:
    """The offset at which `share_at(offset)` (the new items' share of the top-k slots, rising with the offset)
    reaches `share`: bisection over [low, high], `steps` halvings."""
    for _ in range(steps):
        middle = (low + high) / 2
        low, high = (middle, high) if share_at(middle) < share else (low, middle)
    return (low + high) / 2
