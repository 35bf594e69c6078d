"""The generative recommender's training losses: the code loss, the dense head's, distillation and alignment.

Two ways to form examples (`objective.kind`):
* sliding window (TIGER): one encoder pass per history, the decoder teacher-forced on the next item's codes;
* every position: one causal encoder pass per row of a user's history and, for every position t, the decoder
  teacher-forced on item t+1's codes (cross-attending to positions <= t only, so each is exactly the sliding-
  window loss of the prefix ending at t), plus the dense head: the state at t against the whole item table,
  full-softmax cross-entropy.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.profiler import record_function

from genrec.generation.codes import PAD
from genrec.hardware import use_bf16

if TYPE_CHECKING:
    from genrec.models.recommender import GenerativeRecommender

Live = tuple[torch.Tensor, torch.Tensor]  # (sorted item indices, their semantic vectors with gradients this step)


def decoder_states(model: GenerativeRecommender, hidden: torch.Tensor, sees: torch.Tensor, tokens: torch.Tensor,
                   states: torch.Tensor) -> torch.Tensor:
    """Teacher-forced decoder states [n, L, d] for the code tokens [n, L] (state l predicts token l), the decoder
    cross-attending to `hidden` [n, S, d] where `sees` [n, S]; `states` [n, d]: the encoder states at the
    targets' positions (where an item-table decoder starts)."""
    embeds = model.t5.decoder.embed_tokens(torch.cat([torch.full_like(tokens[:, :1], PAD), tokens[:, :-1]], dim=-1))
    start = model.decoder_start(states)
    if start is not None:
        embeds = torch.cat([embeds[:, :1] + start.unsqueeze(1).to(embeds.dtype), embeds[:, 1:]], dim=1)
    return model.t5.decoder(inputs_embeds=embeds, encoder_hidden_states=hidden, encoder_attention_mask=sees).last_hidden_state


def code_loss(model: GenerativeRecommender, decoded: torch.Tensor, tokens: torch.Tensor, ordered: torch.Tensor | None = None,
              root: torch.Tensor | None = None, teacher: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
    """Cross-entropy [n] of each target's code tuple (mean over levels); the per-level code distributions [n, size]
    (log) under each target's own prefix; and, given `teacher` (distributions over the items in code order
    [n, items]), the cross-entropy [n] of those distributions to soft targets: at each level the teacher's mass
    under each child of the target's prefix, renormalised (None without). `ordered`, `root`: as in
    `CodeHead.log_probs`."""
    codes = model.codes
    targets = tokens - torch.tensor(codes.level_offsets, device=tokens.device)
    parents = codes.trie.parents(targets)
    log_probs = [model.head.log_probs(model.t5, codes, decoded[:, level], parents[:, level], level, ordered, root)
                 for level in range(tokens.shape[1])]
    picked = torch.stack([lp.gather(-1, targets[:, level : level + 1]).squeeze(-1) for level, lp in enumerate(log_probs)], -1)
    if teacher is None:
        return -picked.mean(-1), log_probs, None
    soft = []
    for lp, mass in zip(log_probs, codes.trie.child_masses(teacher, parents)):
        target = mass / mass.sum(-1, keepdim=True).clamp_min(torch.finfo(mass.dtype).tiny)
        soft.append(-torch.where(target > 0, target * lp, torch.zeros_like(lp)).sum(-1))  # 0 * -inf off the trie
    return -picked.mean(-1), log_probs, torch.stack(soft, -1).mean(-1)


def item_logits(model: GenerativeRecommender, queries: torch.Tensor, ordered: torch.Tensor) -> torch.Tensor:
    """fp32 scores [n, items] of queries [n, d] against the item table in code order; in training, the matmul in
    bf16 where `model.item_score_precision` resolves to it (auto: where the hardware has native bf16)."""
    if model.training and use_bf16(model.seq2seq.item_score_precision, queries.device, "model.item_score_precision"):
        return (queries.bfloat16() @ ordered.bfloat16().T).float()
    return (queries @ ordered.T).float()


def every_position(model: GenerativeRecommender, history: torch.Tensor, users: torch.Tensor, target: torch.Tensor,
                   labels: torch.Tensor, live: Live | None = None, distill: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One causal pass over rows: history [B, H], target [B, H] (the item after each position, -1 = none),
    labels [B, H, L] its code tokens. Returns, for the n positions with a target (row-major order), the code
    losses [n], the dense head's full-softmax cross-entropies [n], and with `distill` the decoder's cross-entropy
    [n] to the dense head's (detached) mass under each level's codes. Heads run on those positions only: most of
    a left-padded row is padding."""
    length = history.shape[1]
    with record_function("encoder"):
        hidden, valid = model.encode(history, users, live)
    offset = hidden.shape[1] - length  # a user token sits before the items
    rows, positions = (target >= 0).nonzero(as_tuple=True)
    # one decoder sequence per position t, cross-attending to its row's encoder states at positions <= t
    keys = torch.arange(hidden.shape[1], device=history.device)
    sees = (keys[None, :] <= positions[:, None] + offset) & valid[rows].bool()
    tokens = labels[rows, positions]  # [n, L]
    states = hidden[rows, positions + offset]  # [n, d]
    trie = model.codes.trie
    with record_function("dense head"):
        # the dense head scores the items in code order (a permutation: the same loss), so the mass under each trie
        # node is a contiguous run, and one log-softmax serves the loss, the root level's term and the teacher
        ordered = model.items.table().index_select(0, trie.code_order)
        log_probs = torch.log_softmax(item_logits(model, states, ordered), dim=-1)
        dense_loss = -log_probs.gather(1, trie.code_rank[target[rows, positions]].unsqueeze(1)).squeeze(1)
        item_table = model.head.uses_item_table
        probs = log_probs.exp() if distill or item_table else None
        root = trie.root_log_mass(probs) if item_table else None  # the dense head's own mass under each first-level code
        teacher = probs.detach() if distill else None
    with record_function("decoder"):
        decoded = decoder_states(model, hidden[rows], sees, tokens, states)
    with record_function("code head"):
        codes, _, soft = code_loss(model, decoded, tokens, ordered, root, teacher)
    return codes, dense_loss, soft


def sliding_window(model: GenerativeRecommender, history: torch.Tensor, users: torch.Tensor, labels: torch.Tensor,
                   live: Live | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """history [B, H] -> one target per row, labels [B, L]: the code losses [B] and the per-level code
    distributions under each target's prefix."""
    hidden, valid = model.encode(history, users, live)
    decoded = decoder_states(model, hidden, valid, labels, hidden[:, -1])
    losses, log_probs, _ = code_loss(model, decoded, labels)
    return losses, log_probs


def alignment(model: GenerativeRecommender, log_probs: list[torch.Tensor], target: torch.Tensor,
              temperature: float) -> torch.Tensor:
    """Cross-entropy from the recommender's per-level code distribution (held fixed) to the live tokenizer's
    soft assignment of the target item, summed over the levels that have one (not the dedup suffix)."""
    tokenizer = model.items.tokenizer
    soft = tokenizer.quantizer.soft_assignments(tokenizer.encode(model.items.item_text[target]), temperature)
    align = 0.0
    for level, log_q in enumerate(soft):
        predicted = F.softmax(log_probs[level].detach(), dim=-1)  # over this level's codes
        align = align - (predicted * log_q).sum(-1).mean()
    return align
