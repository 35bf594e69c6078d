"""A decoding-only forward of HF's T5 decoder that shares cross-attention keys/values across beams and
caches self-attention keys/values across steps.

HF's decoder, given `batch*beam` rows, projects the (repeated) encoder output to keys and values in
every layer at every step; with a history of 80 tokens and beam 20 that dominates decoding. Here the
projections are made once per user and broadcast over beams. Each step then runs the decoder on the one
new token per beam, its self-attention reading the earlier tokens' keys/values from a cache that follows
the beams (reordered to each survivor's parent), instead of re-running the whole prefix. It reads the
weights of the HF modules it is given, so `test_generation.py` checks it against `model.decoder` (the
plain reference).
"""
from __future__ import annotations

import torch
from einops import rearrange


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    return rearrange(x, "... t (h d) -> ... h t d", h=n_heads)


def _merge(x: torch.Tensor) -> torch.Tensor:
    return rearrange(x, "... h t d -> ... t (h d)")


def _follow(cache: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
    """[B, W', ...] -> [B, W, ...]: beam w's rows become those of its parent `parents[:, w]`, one contiguous row copy
    per beam (a gather along the beam dimension with a broadcast index reads every element's index instead)."""
    batch, width = cache.shape[:2]
    rows = (parents + torch.arange(batch, device=parents.device)[:, None] * width).reshape(-1)
    return cache.reshape(batch * width, -1).index_select(0, rows).view(*parents.shape, *cache.shape[2:])


class SharedCrossDecoder:
    """Encode cross-attention K/V for [B, S] once; then `step(tokens [B, W], parents [B, W])` -> [B, W, d]:
    the decoder state after appending one token to each beam, beam w continuing the prefix that was beam
    `parents[:, w]` at the previous step. `start` [B, d]: added to each row's start-token embedding (a
    decoder started from the encoder state)."""

    def __init__(self, model, encoder_hidden: torch.Tensor, encoder_mask: torch.Tensor, start: torch.Tensor | None = None,
                 steps: int = 4):
        """`steps`: how many steps the cache has room for at first (a search's code levels); more grow it."""
        self.decoder = model.decoder
        self.steps = steps
        self.start = start
        blocks = self.decoder.block
        self.n_heads = blocks[0].layer[1].EncDecAttention.n_heads
        # [B, h, S, d], once per user; beams are folded into the query length when attending
        self.cross = [
            (_heads(b.layer[1].EncDecAttention.k(encoder_hidden), self.n_heads),
             _heads(b.layer[1].EncDecAttention.v(encoder_hidden), self.n_heads))
            for b in blocks
        ]
        neg = torch.finfo(torch.float32).min
        self.cross_bias = ((~encoder_mask.bool()).float() * neg)[:, None, None, :]  # [B, 1, 1, S]
        # per layer, self-attention keys and values [B, W, 2, h, steps, d], the first `self.length` positions filled:
        # a step reorders them to the surviving beams (one contiguous row copy per beam, a per-layer tensor small
        # enough that its allocation costs no page faults) and writes its own position in place
        self.cache: list[torch.Tensor] = []
        self.length = 0

    def _attend(self, q, k, v, bias):
        scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) + bias  # T5 does not scale by sqrt(d)
        return torch.matmul(torch.softmax(scores, dim=-1).to(v.dtype), v)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, parents: torch.Tensor | None = None) -> torch.Tensor:
        """`tokens` [B, W]: each beam's newest token (the start token first, with `parents` None)."""
        x = self.decoder.embed_tokens(tokens).unsqueeze(-2)  # [B, W, 1, d]
        if not self.cache and self.start is not None:
            x = x + self.start[:, None, None].to(x.dtype)
        if parents is not None:  # the cache follows the surviving beams
            self.cache = [_follow(layer, parents) for layer in self.cache]
        t = self.length + 1
        first = self.decoder.block[0].layer[0].SelfAttention
        self_bias = first.compute_bias(t, t, device=x.device).float()[:, :, -1:]  # [1, h, 1, t]: the new position's row
        for i, (block, (ck, cv)) in enumerate(zip(self.decoder.block, self.cross)):
            sa = block.layer[0].SelfAttention
            h = block.layer[0].layer_norm(x)
            q, k, v = (_heads(proj(h), self.n_heads) for proj in (sa.q, sa.k, sa.v))  # [B, W, h, 1, d]
            if len(self.cache) <= i:
                self.cache.append(k.new_empty(*k.shape[:2], 2, k.shape[2], max(self.steps, 1), k.shape[-1]))
            elif t > self.cache[i].shape[-2]:  # more steps than room: grow it
                grown = self.cache[i].new_empty(*self.cache[i].shape[:-2], 2 * self.cache[i].shape[-2], k.shape[-1])
                grown[..., : self.length, :] = self.cache[i][..., : self.length, :]
                self.cache[i] = grown
            layer = self.cache[i]
            layer[:, :, 0, :, t - 1 : t], layer[:, :, 1, :, t - 1 : t] = k, v
            keys, values = layer[:, :, 0, :, :t], layer[:, :, 1, :, :t]
            x = x + sa.o(_merge(self._attend(q, keys, values, self_bias)))
            ca = block.layer[1].EncDecAttention
            h = block.layer[1].layer_norm(x)
            # beams folded into the query length: one bmm per user against its K/V, no copies per beam
            q = rearrange(_heads(ca.q(h), self.n_heads), "b w h t d -> b h (w t) d")
            out = rearrange(self._attend(q, ck, cv, self.cross_bias), "b h (w t) d -> b w h t d", w=x.shape[1])
            x = x + ca.o(_merge(out))
            ff = block.layer[2]
            x = x + ff.DenseReluDense(ff.layer_norm(x))
        self.length = t
        return self.decoder.final_layer_norm(x[..., -1, :])
