"""DeepFM (Guo et al., IJCAI 2017): first-order weights + FM pairwise term + a DNN, all on shared embeddings."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from genrec.models.ctr.base import CtrModel, CtrModelConfig, FieldEmbedding, mlp


def fm_pairwise(e: torch.Tensor) -> torch.Tensor:
    """sum_{i<j} <e_i, e_j> in O(F d): ((sum e)^2 - sum e^2) / 2."""
    s = e.sum(1)
    return 0.5 * (s * s - (e * e).sum(1)).sum(-1)


class DeepFM(CtrModel):
    def __init__(self, vocab_sizes: list[int], cfg: CtrModelConfig, fused_fields: Sequence[int] | None = None):
        super().__init__(vocab_sizes, cfg, fused_fields)
        self.first_order = FieldEmbedding(vocab_sizes, 1, std=0.0)
        self.bias = nn.Parameter(torch.zeros(()))
        self.dnn = mlp(self.flat_dim, cfg.dnn, cfg.dropout, 1, cfg.dnn_batch_norm)

    def interact(self, e: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
        linear = self.first_order(fields).sum((1, 2)) + self.bias
        return linear + fm_pairwise(e) + self.dnn(e.flatten(1)).squeeze(-1)
