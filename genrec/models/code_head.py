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

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from transformers import T5ForConditionalGeneration

from genrec.generation.codes import ItemCodes

DECODERS = ("tiger", "item_table")
Scorer = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


@dataclass
class ItemTerms:
    """What a search adds to each item's score beyond the query's dot product with the item's row, per batch row
    (user): more dimensions of the dot product, `columns` [items, e] against `queries` [B, e] (a text view, a bias
    for new items), and `offsets` (items [B, E], values [B, E]): a score for a few distinct items per user."""

    columns: torch.Tensor
    queries: torch.Tensor
    offsets: tuple[torch.Tensor, torch.Tensor] | None = None

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Full item scores [B, items] from the dot products with the item rows [B, items]."""
        logits = logits + self.queries.float() @ self.columns.float().T
        if self.offsets is not None:
            logits = logits.scatter_add(1, self.offsets[0], self.offsets[1].float())
        return logits


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

    @staticmethod
    def _queries(x: torch.Tensor, terms: ItemTerms | None) -> torch.Tensor:
        """Queries [B, ..., d] with each user's extra dimensions (`terms.queries` [B, e]) appended."""
        if terms is None:
            return x
        extra = terms.queries.view(len(x), *[1] * (x.dim() - 2), -1).expand(*x.shape[:-1], -1)
        return torch.cat([x, extra.to(x.dtype)], -1)

    @staticmethod
    def _offsets(x: torch.Tensor, terms: ItemTerms | None, codes: ItemCodes) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Each user's item offsets for queries [B, ..., d], the items as places in code order."""
        if terms is None or terms.offsets is None:
            return None
        items, values = terms.offsets
        shape = (len(x), *x.shape[1:-1], items.shape[-1])
        view = lambda t: t.view(len(x), *[1] * (x.dim() - 2), -1).expand(shape)  # noqa: E731
        return view(codes.trie.code_rank[items]), view(values)

    def root_term(self, codes: ItemCodes, states: torch.Tensor, ordered: torch.Tensor,
                  terms: ItemTerms | None = None) -> torch.Tensor:
        """The first level's item-table term [..., size] for encoder states [..., d]: the log of the dense head's
        exp-scores summed under each first-level code (`ordered`: the item table in code order). Training takes
        it from the dense head's softmax instead (`TensorTrie.root_log_mass`): the same up to a per-row constant,
        which the level's softmax removes."""
        parents = torch.zeros(states.shape[:-1], dtype=torch.long, device=states.device)
        return codes.trie.child_log_mass(self._queries(states.float(), terms), ordered.float(), parents, 0,
                                         offsets=self._offsets(states, terms, codes))

    def log_probs(self, t5: T5ForConditionalGeneration, codes: ItemCodes, hidden: torch.Tensor, parents: torch.Tensor,
                  level: int, ordered: torch.Tensor | None = None, root: torch.Tensor | None = None,
                  terms: ItemTerms | None = None) -> torch.Tensor:
        """Log-probabilities [..., size] of level `level`'s codes after the prefixes ending at trie nodes `parents`
        [...], from decoder states `hidden` [..., d]. The item-table decoder needs `ordered` (the item table in
        code order, [items, d]) and, at the first level, `root` (its term there, [..., size])."""
        offset, size = codes.level_offsets[level], codes.level_sizes[level]
        logits = t5.lm_head(hidden * output_scale(t5)).float()
        if self.node_proj is None:
            return torch.log_softmax(logits, dim=-1)[..., offset : offset + size]
        if level == 0:
            if root is None:
                raise ValueError("the item-table decoder scores its first level with the encoder states' root term")
            node_term = root
        else:
            node_term = codes.trie.child_log_mass(self._queries(self.node_proj(hidden).float(), terms), ordered.float(),
                                                  parents, level, offsets=self._offsets(hidden, terms, codes))
        valid = codes.trie.children[parents, :size] >= 0
        return torch.log_softmax((logits[..., offset : offset + size] + node_term).masked_fill(~valid, float("-inf")), dim=-1)

    def scorer(self, t5: T5ForConditionalGeneration, codes: ItemCodes, states: torch.Tensor | None = None,
               table: torch.Tensor | None = None, terms: ItemTerms | None = None) -> Scorer:
        """`log_probs` for a search over one batch: `(hidden [B, W, d], parents [B, W], level)` -> [B, W, size].
        The item-table decoder needs the encoder states at the last position [B, d] and the item table, and adds
        the batch's `terms` to every item's score (the TIGER decoder scores codes, not items, and ignores them)."""
        if self.node_proj is None:
            return lambda hidden, parents, level: self.log_probs(t5, codes, hidden, parents, level)
        if terms is not None:
            table = torch.cat([table, terms.columns.to(table.dtype)], 1)
        ordered = table.index_select(0, codes.trie.code_order)  # once per batch, for every level
        root = self.root_term(codes, states.unsqueeze(1), ordered, terms)  # the search starts with one beam per user
        return lambda hidden, parents, level: self.log_probs(t5, codes, hidden, parents, level, ordered, root, terms)
