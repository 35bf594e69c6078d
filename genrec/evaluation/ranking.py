"""Full-ranking Recall@K / NDCG@K, from a model's top-K list or from scores over the whole catalogue.

With one target per user, Recall@K equals HR@K and NDCG@K is 1/log2(rank+2) for a hit at 0-based rank.
"""
from __future__ import annotations

import torch

KS = (5, 10)


def target_ranks_from_topk(topk_items: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based position of the target in each top-K list, or K (a miss) when absent."""
    hits = topk_items == targets.unsqueeze(1)
    k = topk_items.shape[1]
    return torch.where(hits.any(1), hits.float().argmax(1), torch.full_like(targets, k)).long()


def target_ranks_from_scores(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Rank of the target among all items; ties are broken by item index (deterministic, not optimistic).

    Non-finite scores raise: with `(scores > target).sum()` a NaN would give rank 0, a false hit."""
    if not torch.isfinite(scores).all():
        rows = (~torch.isfinite(scores)).any(1).nonzero().squeeze(1)
        raise FloatingPointError(f"non-finite scores for {len(rows)} user(s) (batch rows {rows[:5].tolist()}); refusing to rank")
    target_scores = scores.gather(1, targets.unsqueeze(1))
    index = torch.arange(scores.shape[1], device=scores.device).unsqueeze(0)
    ahead = (scores > target_scores) | ((scores == target_scores) & (index < targets.unsqueeze(1)))
    return ahead.sum(1)


def metrics_from_ranks(ranks: torch.Tensor, ks: tuple[int, ...] = KS) -> dict[str, float]:
    ranks = ranks.float()
    out = {}
    for k in ks:
        hit = ranks < k
        out[f"recall@{k}"] = hit.float().mean().item()
        out[f"ndcg@{k}"] = torch.where(hit, 1.0 / torch.log2(ranks + 2), torch.zeros_like(ranks)).mean().item()
    return out


def cold_warm_metrics(ranks: torch.Tensor, cold: torch.Tensor, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """The cold-start protocol's report: metrics over every target, and `cold_*` over the targets marked `cold`
    (new items), `warm_*` over the rest; a group without targets is left out."""
    out = metrics_from_ranks(ranks, ks)
    for name, group in (("cold", cold), ("warm", ~cold)):
        if group.any():
            out.update({f"{name}_{k}": v for k, v in metrics_from_ranks(ranks[group], ks).items()})
    return out


def new_item_share(topk_items: torch.Tensor, known: int) -> float:
    """The share of filled top-k slots (item >= 0) holding a new item (index >= `known`)."""
    filled = topk_items >= 0
    return ((topk_items >= known) & filled).sum().item() / max(1, filled.sum().item())


def protocol_metrics(ranks: torch.Tensor, targets: torch.Tensor, top: torch.Tensor, known: int | None,
                     num_items: int, k: int = 10) -> dict[str, float]:
    """Metrics of a ranking; once the cold-start protocol's new items are in the catalogue (`num_items` > `known`),
    also over cold and warm targets, with the new items' share of the top-k lists `top` (`new_share@k`)."""
    if known is None or num_items == known:
        return metrics_from_ranks(ranks)
    return {**cold_warm_metrics(ranks, targets >= known), f"new_share@{k}": new_item_share(top, known)}
