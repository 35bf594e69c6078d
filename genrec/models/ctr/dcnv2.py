"""DCNv2 (Wang et al., WWW 2021), parallel structure: a full-rank cross network
`x_{l+1} = x_0 * (W_l x_l + b_l) + x_l` beside a DNN, concatenated into the logit."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from genrec.models.ctr.base import CtrModel, CtrModelConfig, mlp


class CrossNetV2(nn.Module):
    def __init__(self, dim: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x


class DCNv2(CtrModel):
    own_settings = ("cross_layers",)

    def __init__(self, vocab_sizes: list[int], cfg: CtrModelConfig, fused_fields: Sequence[int] | None = None):
        super().__init__(vocab_sizes, cfg, fused_fields)
        self.cross = CrossNetV2(self.flat_dim, cfg.cross_layers)
        self.dnn = mlp(self.flat_dim, cfg.dnn, cfg.dropout, batch_norm=cfg.dnn_batch_norm)
        self.out = nn.Linear(self.flat_dim + (cfg.dnn[-1] if cfg.dnn else self.flat_dim), 1)

    def interact(self, e: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
        x0 = e.flatten(1)
        return self.out(torch.cat([self.cross(x0), self.dnn(x0)], dim=-1)).squeeze(-1)
