"""Multi-embedding (ME) baseline for the CTR path: one code looked up in M independent tables."""
from __future__ import annotations

import torch
from torch import nn


class MultiEmbedding(nn.Module):
    """The single-codebook alternative to Mixture-of-Codes: the same code, M different embeddings."""

    def __init__(self, num_codes: int, num_tables: int, dim: int):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(num_codes, dim) for _ in range(num_tables))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """[...] codes -> [..., M, dim]."""
        return torch.stack([t(codes) for t in self.tables], dim=-2)
