"""The code-scoring head: one level's code log-probabilities from decoder states, for training and search alike.

Two decoders (`Seq2SeqConfig.decoder`):
* `tiger`: T5's tied LM head, normalised over the whole vocabulary, as TIGER trains it.
* `item_table` (the default): the LM head's logits plus an item-table term, normalised over the trie's valid
  children only. A child's term is the log of the summed exp-scores, against the decoder state (projected),
  of the items under it, so the level distributions chained along a path factorise a full softmax over the
  items: a dense head that the decoder refines with each code it has chosen. The first level's term is the
  dense head's own mass under each code (the encoder state against the item table), which training gets from
  the dense head's softmax for free. What the dense head learns reaches the decoder at once; a code token's own
  embedding, shared by every prefix, would have to learn what a later-level code means under each prefix.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from transformers import T5ForConditionalGeneration

from genrec.generation.codes import ItemCodes

DECODERS = ("tiger", "item_table")
Scorer = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def output_scale(model: T5ForConditionalGeneration) -> float:
    """T5 scales decoder outputs by d_model^-0.5 before a tied LM head; transformers 4.x keys this on
    `tie_word_embeddings`, 5.x on `scale_decoder_outputs`. Decoding must match training exactly."""
    cfg = model.config
    scaled = getattr(cfg, "scale_decoder_outputs", None)
    if scaled is None:
        scaled = cfg.tie_word_embeddings
    return cfg.d_model**-0.5 if scaled else 1.0


class CodeHead(nn.Module):
    def __init__(self, decoder: str, d_model: int):
        super().__init__()
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
        self.decoder = decoder
        # zero-initialised: the model starts as the plain decoder and learns how much to use the item table
        self.node_proj = nn.Linear(d_model, d_model, bias=False) if decoder == "item_table" else None
        if self.node_proj is not None:
            nn.init.zeros_(self.node_proj.weight)

    @property
    def uses_item_table(self) -> bool:
        return self.node_proj is not None

    def root_term(self, codes: ItemCodes, states: torch.Tensor, ordered: torch.Tensor,
                  item_scores: torch.Tensor | None = None) -> torch.Tensor:
        """The first level's item-table term [..., size] for encoder states [..., d]: the log of the dense head's
        exp-scores summed under each first-level code (`ordered`: the item table in code order). Training takes
        it from the dense head's softmax instead (`TensorTrie.root_log_mass`): the same up to a per-row constant,
        which the level's softmax removes. `item_scores` as in `log_probs`."""
        parents = torch.zeros(states.shape[:-1], dtype=torch.long, device=states.device)
        return codes.trie.child_log_mass(states.float(), ordered.float(), parents, 0, item_scores=item_scores)

    def log_probs(self, t5: T5ForConditionalGeneration, codes: ItemCodes, hidden: torch.Tensor, parents: torch.Tensor,
                  level: int, ordered: torch.Tensor | None = None, root: torch.Tensor | None = None,
                  item_scores: torch.Tensor | None = None) -> torch.Tensor:
        """Log-probabilities [..., size] of level `level`'s codes after the prefixes ending at trie nodes `parents`
        [...], from decoder states `hidden` [..., d]. The item-table decoder needs `ordered` (the item table in
        code order, [items, d]) and, at the first level, `root` (its term there, [..., size]); `item_scores`
        [B, items] (code order) is added to each user's item scores (B the first dimension of `hidden`)."""
        offset, size = codes.level_offsets[level], codes.level_sizes[level]
        if self.node_proj is None:  # TIGER normalises over the whole vocabulary
            logits = t5.lm_head(hidden * output_scale(t5)).float()
            return torch.log_softmax(logits, dim=-1)[..., offset : offset + size]
        # the item-table decoder normalises over the level's codes: only their rows of the LM head are needed
        weight = t5.lm_head.weight[offset : offset + size]
        logits = torch.nn.functional.linear(hidden * output_scale(t5), weight).float()
        if level == 0:
            if root is None:
                raise ValueError("the item-table decoder scores its first level with the encoder states' root term")
            node_term = root
        else:
            node_term = codes.trie.child_log_mass(self.node_proj(hidden).float(), ordered.float(), parents, level,
                                                  item_scores=item_scores)
        valid = codes.trie.child_valid[parents, :size]
        return torch.log_softmax((logits + node_term).masked_fill(~valid, float("-inf")), dim=-1)

    def scorer(self, t5: T5ForConditionalGeneration, codes: ItemCodes, states: torch.Tensor | None = None,
               table: torch.Tensor | None = None, item_scores: torch.Tensor | None = None) -> Scorer:
        """`log_probs` for a search over one batch: `(hidden [B, W, d], parents [B, W], level)` -> [B, W, size].
        The item-table decoder needs the encoder states at the last position [B, d] and the item table, and adds
        `item_scores` [B, items] to each user's item scores (the TIGER decoder scores codes, not items: it ignores
        them)."""
        if self.node_proj is None:
            return lambda hidden, parents, level: self.log_probs(t5, codes, hidden, parents, level)
        ordered = table.index_select(0, codes.trie.code_order)  # once per batch, for every level
        if item_scores is not None:
            item_scores = item_scores.index_select(1, codes.trie.code_order)  # in code order too, once
        root = self.root_term(codes, states.unsqueeze(1), ordered, item_scores)  # one beam per user at the start
        return lambda hidden, parents, level: self.log_probs(t5, codes, hidden, parents, level, ordered, root, item_scores)
