"""Business rules inside the search: which items each user may be recommended.

A rule set is a boolean matrix [users, items] (`allowed_items`): each user's exclusions (such as the items already
bought) and one allow-list for the batch (such as a category). The search applies it where it applies the trie:
a prefix survives only if an allowed item lies under it (`TensorTrie.allowed_nodes`), and a decoder that scores
codes by the items under them counts only the allowed ones (`rule_scores`: 0 or -inf added to each item's
score). So excluded items never come out, the beam spends no slot on them, and it still finds k items wherever k
allowed items exist; filtering a finished top-k list instead returns fewer than k, or misses the best allowed
item the beam dropped.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch


def allowed_items(num_items: int, users: int, exclude: Sequence[Iterable[int]] | None = None,
                  only: Iterable[int] | Sequence[Iterable[int] | None] | None = None, per_user_only: bool = False,
                  device: torch.device | str = "cpu") -> torch.Tensor | None:
    """[users, items] bool, or None when there is no rule. `exclude`: per user, item indices never to recommend
    (-1 entries, padding, are ignored); `only`: the item indices any user may get (all when None), or with
    `per_user_only` one such list (or None) per user."""
    if exclude is None and only is None:
        return None
    allowed = torch.ones(users, num_items, dtype=torch.bool, device=device)
    if only is not None:
        lists = list(only) if per_user_only else [only] * users
        if len(lists) != users:
            raise ValueError(f"only holds {len(lists)} lists for {users} users")
        for user, items in enumerate(lists):
            if items is not None:
                allowed[user] = False
                allowed[user, torch.as_tensor(list(items), dtype=torch.long, device=device)] = True
    if exclude is not None:
        if len(exclude) != users:
            raise ValueError(f"exclude holds {len(exclude)} lists for {users} users")
        rows = [torch.as_tensor(list(items), dtype=torch.long, device=device) for items in exclude]
        user = torch.cat([torch.full((len(r),), u, dtype=torch.long, device=device) for u, r in enumerate(rows)])
        items = torch.cat(rows) if rows else user
        real = items >= 0
        allowed[user[real], items[real]] = False
    return allowed


def rule_scores(allowed: torch.Tensor) -> torch.Tensor:
    """[users, items] float: 0 where allowed, -inf where not (added to item scores, it leaves items out)."""
    return torch.zeros(allowed.shape, device=allowed.device).masked_fill_(~allowed, float("-inf"))
