"""AutoInt+ (Song et al., CIKM 2019): stacked multi-head self-attention over fields with residual
connections and ReLU, flattened to a logit, plus a parallel DNN (the "+")."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genrec.models.ctr.base import CtrModel, CtrModelConfig, mlp


class InteractingLayer(nn.Module):
    """One projection gives queries, keys, values and (when the width changes) the residual, so a layer
    is one matmul over all fields; the residual is the identity where widths match (FuxiCTR's layer)."""

    def __init__(self, in_dim: int, heads: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        width = heads * head_dim
        self.project_residual = in_dim != width
        self.proj = nn.Linear(in_dim, (4 if self.project_residual else 3) * width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, f, _ = x.shape
        width = self.heads * self.head_dim
        projected = self.proj(x)
        q, k, v = projected[..., : 3 * width].view(b, f, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        # unscaled, as in the paper and FuxiCTR (`use_scale=False`)
        attended = F.scaled_dot_product_attention(q, k, v, scale=1.0).transpose(1, 2).reshape(b, f, width)
        residual = projected[..., 3 * width :] if self.project_residual else x
        return F.relu(attended + residual)


class AutoIntPlus(CtrModel):
    def __init__(self, vocab_sizes: list[int], cfg: CtrModelConfig):
        super().__init__(vocab_sizes, cfg)
        width = cfg.attention_heads * cfg.attention_dim
        dims = [cfg.embedding_dim] + [width] * cfg.attention_layers
        self.layers = nn.ModuleList(InteractingLayer(d, cfg.attention_heads, cfg.attention_dim) for d in dims[:-1])
        self.attention_out = nn.Linear(self.num_fields * dims[-1], 1)
        self.dnn = mlp(self.flat_dim, cfg.dnn, cfg.dropout, 1)

    def interact(self, e: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
        x = e
        for layer in self.layers:
            x = layer(x)
        return self.attention_out(x.flatten(1)).squeeze(-1) + self.dnn(e.flatten(1)).squeeze(-1)
