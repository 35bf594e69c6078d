"""Trie-constrained beam search over code tuples: a batched tensor version and a plain reference.

Both return, per user, the `topk` best distinct valid items with their summed log-probabilities.
Slots that cannot be filled (fewer valid items than `topk`) hold item -1 and score -inf.
"""
from __future__ import annotations

from typing import Callable

import torch

from genrec.generation.fast_decoder import SharedCrossDecoder
from genrec.generation.trie import TensorTrie
from genrec.models.seq2seq import PAD, CodeVocab, decoder_step, level_logits


@torch.no_grad()
def constrained_beam_search(model, vocab: CodeVocab, trie: TensorTrie, input_ids: torch.Tensor | None,
                            attention_mask: torch.Tensor, beam: int = 20, topk: int = 10,
                            inputs_embeds: torch.Tensor | None = None,
                            encoder_hidden: torch.Tensor | None = None, prior: torch.Tensor | None = None,
                            alpha: float = 1.0, start: torch.Tensor | None = None,
                            scorer: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor] | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched: every (user, beam) row advances together; masking is a gather into `trie.children`,
    and cross-attention keys/values are computed once per user (see `fast_decoder`). The encoder reads
    `input_ids`, or `inputs_embeds` when given (item vectors); `encoder_hidden` skips it (states the
    caller computed, e.g. with a causal encoder), and `attention_mask` [B, S] then masks cross-attention.

    Guided search: with `prior` [B, nodes] (`trie.node_log_mass` of another model's next-item
    log-probabilities), a prefix scores `alpha` * its decoder log-probability + (1 - alpha) * the log of
    the prior's mass under it,
    so the other model steers which prefixes survive, not only the order of what the decoder found; a
    finished item's score is the same mix of its sequence log-probability and its log-probability under
    the prior. `alpha=1` (or no prior) is the plain search. `start` [B, d]: added to the decoder's start
    token embedding (a model whose decoder starts from the encoder state). `scorer(hidden [B, W, d], parent
    nodes [B, W], level)` -> code log-probabilities [B, W, size] replaces the T5 LM head's (a node head)."""
    if topk > beam:
        raise ValueError(f"topk ({topk}) cannot exceed the beam width ({beam})")
    batch = attention_mask.shape[0]
    device = attention_mask.device
    if encoder_hidden is None:
        encoder_hidden = model.encoder(input_ids=None if inputs_embeds is not None else input_ids,
                                       inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state
    decoder = SharedCrossDecoder(model, encoder_hidden, attention_mask, start)
    nodes = torch.zeros(batch, 1, dtype=torch.long, device=device)  # start: one beam at the root
    scores = torch.zeros(batch, 1, device=device)  # what ranks the beams
    sequence_logp = scores  # the decoder's part of it (the same without a prior)
    tokens = torch.full((batch, 1), PAD, dtype=torch.long, device=device)  # each beam's newest token
    parent = None
    for level, size in enumerate(vocab.level_sizes):
        width = nodes.shape[1]
        hidden = decoder.step(tokens, parent)
        if scorer is None:
            logp = level_logits(model, hidden, vocab.level_offsets[level], size).view(batch, width, size)
        else:
            logp = scorer(hidden, nodes, level)
        valid = trie.valid_mask(nodes, level)
        extended = sequence_logp.unsqueeze(-1) + logp
        candidate = extended
        if prior is not None and alpha != 1.0:
            child = trie.children[nodes, :size].clamp_min(0).view(batch, -1)
            mass = prior.gather(1, child).view(batch, width, size)
            candidate = alpha * extended + (1 - alpha) * mass
        candidate = candidate.masked_fill(~valid | ~torch.isfinite(scores).unsqueeze(-1), float("-inf"))
        k = min(beam, width * size)
        scores, flat = candidate.view(batch, -1).topk(k, dim=-1)
        sequence_logp = extended.view(batch, -1).gather(1, flat)
        parent, code = flat // size, flat % size
        nodes = trie.step(nodes.gather(1, parent), code)
        nodes = torch.where(torch.isfinite(scores), nodes, torch.zeros_like(nodes))  # dead beams park at root
        tokens = code + vocab.level_offsets[level]
    items = trie.item[nodes]
    items = torch.where(torch.isfinite(scores), items, torch.full_like(items, -1))
    return _pad_to(items[:, :topk], topk, -1), _pad_to(scores[:, :topk], topk, float("-inf"))


def _pad_to(x: torch.Tensor, k: int, value: float) -> torch.Tensor:
    if x.shape[1] >= k:
        return x
    return torch.cat([x, torch.full((x.shape[0], k - x.shape[1]), value, dtype=x.dtype, device=x.device)], 1)


@torch.no_grad()
def reference_beam_search(model, vocab: CodeVocab, trie: dict, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                          beam: int = 20, topk: int = 10) -> list[list[tuple[int, float]]]:
    """One user at a time, beams as Python lists, the trie as nested dicts. Slow and obviously right."""
    results = []
    for row in range(input_ids.shape[0]):
        enc = model.encoder(input_ids=input_ids[row : row + 1], attention_mask=attention_mask[row : row + 1]).last_hidden_state
        beams: list[tuple[list[int], float, dict | int]] = [([PAD], 0.0, trie)]
        for level, size in enumerate(vocab.level_sizes):
            candidates = []
            for tokens, score, node in beams:
                hidden = decoder_step(model, torch.tensor([tokens], device=input_ids.device), enc, attention_mask[row : row + 1])
                logp = level_logits(model, hidden, vocab.level_offsets[level], size)[0]
                for code, child in node.items():
                    candidates.append((tokens + [vocab.level_offsets[level] + code], score + float(logp[code]), child))
            candidates.sort(key=lambda c: -c[1])
            beams = candidates[:beam]
        results.append([(int(item), score) for _, score, item in beams[:topk]])
    return results
