"""DeepIM (Yu et al., 2020): an Interaction Machine giving all field interactions up to order 5 in
O(F d) through Newton's identities on power sums, plus a DNN."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from genrec.models.ctr.base import CtrModel, CtrModelConfig, mlp


def elementary_symmetric(e: torch.Tensor, order: int) -> list[torch.Tensor]:
    """[B, F, d] -> [e_1, ..., e_order], each [B, d]: e_k = sum over k-subsets of fields of their
    element-wise product. Newton: k e_k = sum_{i=1..k} (-1)^(i-1) e_{k-i} p_i with p_i = sum_f x_f^i."""
    if not 1 <= order <= 5:
        raise ValueError(f"interaction order must be in 1..5, got {order}")
    powers = [e.sum(1)]
    x = e
    for _ in range(order - 1):
        x = x * e
        powers.append(x.sum(1))
    out = [torch.ones_like(powers[0])]
    for k in range(1, order + 1):
        out.append(sum((-1) ** (i - 1) * out[k - i] * powers[i - 1] for i in range(1, k + 1)) / k)
    return out[1:]


class DeepIM(CtrModel):
    own_settings = ("im_order", "im_batch_norm")

    def __init__(self, vocab_sizes: list[int], cfg: CtrModelConfig, fused_fields: Sequence[int] | None = None):
        super().__init__(vocab_sizes, cfg, fused_fields)
        self.order = cfg.im_order
        # orders differ in scale by far; the norm is where DeepIM's lead on Beauty came from (docs/results/ctr.md),
        # though FuxiCTR's default config leaves it out (`im_batch_norm: False`)
        self.norm = nn.BatchNorm1d(cfg.im_order * cfg.embedding_dim) if cfg.im_batch_norm else nn.Identity()
        self.im_out = nn.Linear(cfg.im_order * cfg.embedding_dim, 1)
        self.dnn = mlp(self.flat_dim, cfg.dnn, cfg.dropout, 1, cfg.dnn_batch_norm)

    def interact(self, e: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
        im = torch.cat(elementary_symmetric(e, self.order), dim=-1)
        return self.im_out(self.norm(im)).squeeze(-1) + self.dnn(e.flatten(1)).squeeze(-1)
