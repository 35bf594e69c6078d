"""AutoInt+ (Song et al., CIKM 2019): stacked multi-head self-attention over fields with residual
connections and ReLU, flattened to a logit, plus a parallel DNN (the "+")."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from genrec.models.ctr.base import CtrModel, CtrModelConfig, mlp


class InteractingLayer(nn.Module):
    """Multi-head self-attention over fields, unscaled as in the paper and FuxiCTR (`use_scale=False`), plus a
    residual that is projected only where the width changes (FuxiCTR's layer), then ReLU."""

    def __init__(self, in_dim: int, heads: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        width = heads * head_dim
        self.qkv = nn.Linear(in_dim, 3 * width, bias=False)
        self.residual = nn.Linear(in_dim, width, bias=False) if in_dim != width else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, f, _ = x.shape
        q, k, v = self.qkv(x).view(b, f, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, scale=1.0).transpose(1, 2).reshape(b, f, -1)
        return F.relu(attended + (self.residual(x) if self.residual is not None else x))


class AutoIntPlus(CtrModel):
    own_settings = ("attention_layers", "attention_heads", "attention_dim")

    def __init__(self, vocab_sizes: list[int], cfg: CtrModelConfig, fused_fields: Sequence[int] | None = None):
        super().__init__(vocab_sizes, cfg, fused_fields)
        width = cfg.attention_heads * cfg.attention_dim
        dims = [cfg.embedding_dim] + [width] * cfg.attention_layers
        self.layers = nn.ModuleList(InteractingLayer(d, cfg.attention_heads, cfg.attention_dim) for d in dims[:-1])
        self.attention_out = nn.Linear(self.num_fields * dims[-1], 1)
        self.dnn = mlp(self.flat_dim, cfg.dnn, cfg.dropout, 1, cfg.dnn_batch_norm)

    def interact(self, e: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
        x = e
        for layer in self.layers:
            x = layer(x)
        return self.attention_out(x.flatten(1)).squeeze(-1) + self.dnn(e.flatten(1)).squeeze(-1)
