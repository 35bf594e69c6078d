"""Trie-constrained beam search over code tuples: a batched tensor version and a plain reference.

Both take the decoder (a T5) and a `score(hidden [..., d], parent nodes [...], level)` -> code log-probabilities
[..., size] (the model's code head), and return, per user, the `topk` best distinct valid items with their summed
log-probabilities. Slots that cannot be filled (fewer valid items than `topk`) hold item -1 and score -inf.
"""
from __future__ import annotations

from typing import Callable

import torch

from genrec.generation.codes import PAD, ItemCodes
from genrec.generation.fast_decoder import SharedCrossDecoder

Scorer = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


@torch.no_grad()
def constrained_beam_search(t5, codes: ItemCodes, encoder_hidden: torch.Tensor, attention_mask: torch.Tensor,
                            score: Scorer, beam: int = 20, topk: int = 10, start: torch.Tensor | None = None,
                            prior: torch.Tensor | None = None, alpha: float = 1.0,
                            allowed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched: every (user, beam) row advances together; masking is a lookup in the trie's child table, and
    cross-attention keys/values over `encoder_hidden` [B, S, d] (where `attention_mask` [B, S]) are computed
    once per user (see `fast_decoder`).

    Guided search: with `prior` [B, nodes] (`trie.node_log_mass` of another model's next-item
    log-probabilities), a prefix scores `alpha` * its decoder log-probability + (1 - alpha) * the log of
    the prior's mass under it, so the other model steers which prefixes survive, not only the order of what
    the decoder found; a finished item's score is the same mix of its sequence log-probability and its
    log-probability under the prior. `alpha=1` (or no prior) is the plain search. `start` [B, d]: added to
    the decoder's start token embedding (a decoder that starts from the encoder state). `allowed` [B, nodes] bool
    (`TensorTrie.allowed_nodes`): each user's search steps only into these nodes, so only allowed items come out
    (`generation.rules`)."""
    if topk > beam:
        raise ValueError(f"topk ({topk}) cannot exceed the beam width ({beam})")
    trie = codes.trie
    batch = attention_mask.shape[0]
    device = attention_mask.device
    decoder = SharedCrossDecoder(t5, encoder_hidden, attention_mask, start, steps=len(codes.level_sizes))
    nodes = torch.zeros(batch, 1, dtype=torch.long, device=device)  # start: one beam at the root
    scores = torch.zeros(batch, 1, device=device)  # what ranks the beams
    sequence_logp = scores  # the decoder's part of it (the same without a prior)
    tokens = torch.full((batch, 1), PAD, dtype=torch.long, device=device)  # each beam's newest token
    parent = None
    for level, size in enumerate(codes.level_sizes):
        width = nodes.shape[1]
        hidden = decoder.step(tokens, parent)
        logp = score(hidden, nodes, level)
        valid = trie.valid_mask(nodes, level)
        if allowed is not None or (prior is not None and alpha != 1.0):  # per-node scores to read
            children = trie.children[nodes, :size].clamp_min(0).view(batch, -1)
        if allowed is not None:
            valid = valid & allowed.gather(1, children).view(batch, width, size)
        extended = sequence_logp.unsqueeze(-1) + logp
        candidate = extended
        if prior is not None and alpha != 1.0:
            mass = prior.gather(1, children).view(batch, width, size)
            candidate = alpha * extended + (1 - alpha) * mass
        candidate = candidate.masked_fill(~valid | ~torch.isfinite(scores).unsqueeze(-1), float("-inf"))
        k = min(beam, width * size)
        scores, flat = candidate.view(batch, -1).topk(k, dim=-1)
        sequence_logp = extended.view(batch, -1).gather(1, flat)
        parent, code = flat // size, flat % size
        nodes = trie.step(nodes.gather(1, parent), code)
        nodes = torch.where(torch.isfinite(scores), nodes, torch.zeros_like(nodes))  # dead beams park at root
        tokens = code + codes.level_offsets[level]
    items = trie.item[nodes]
    items = torch.where(torch.isfinite(scores), items, torch.full_like(items, -1))
    return _pad_to(items[:, :topk], topk, -1), _pad_to(scores[:, :topk], topk, float("-inf"))


def _pad_to(x: torch.Tensor, k: int, value: float) -> torch.Tensor:
    if x.shape[1] >= k:
        return x
    return torch.cat([x, torch.full((x.shape[0], k - x.shape[1]), value, dtype=x.dtype, device=x.device)], 1)


@torch.no_grad()
def reference_beam_search(t5, codes: ItemCodes, encoder_hidden: torch.Tensor, attention_mask: torch.Tensor,
                          score: Scorer, beam: int = 20, topk: int = 10,
                          start: torch.Tensor | None = None,
                          allowed: torch.Tensor | None = None) -> list[list[tuple[int, float]]]:
    """One user and one beam at a time, beams as Python lists, HF's decoder re-run on the whole prefix at every
    step, children read off the trie one by one (and, with `allowed` [B, nodes], only the allowed ones). Slow and
    obviously right."""
    children, item = codes.trie.children.tolist(), codes.trie.item.tolist()
    results = []
    for row in range(len(encoder_hidden)):
        hidden_row, mask_row = encoder_hidden[row : row + 1], attention_mask[row : row + 1]
        beams: list[tuple[list[int], float, int]] = [([PAD], 0.0, 0)]  # tokens, score, trie node
        for level, size in enumerate(codes.level_sizes):
            candidates = []
            for tokens, total, node in beams:
                embeds = t5.decoder.embed_tokens(torch.tensor([tokens], device=encoder_hidden.device))
                if start is not None:
                    embeds[:, 0] += start[row]
                out = t5.decoder(inputs_embeds=embeds, encoder_hidden_states=hidden_row, encoder_attention_mask=mask_row)
                logp = score(out.last_hidden_state[:, -1], torch.tensor([node], device=encoder_hidden.device), level)[0]
                for code in range(size):
                    child = children[node][code]
                    if child >= 0 and (allowed is None or bool(allowed[row, child])):
                        token = codes.level_offsets[level] + code
                        candidates.append((tokens + [token], total + float(logp[code]), child))
            candidates.sort(key=lambda c: -c[1])
            beams = candidates[:beam]
        results.append([(item[node], total) for _, total, node in beams[:topk]])
    return results
