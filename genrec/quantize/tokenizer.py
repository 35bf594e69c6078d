"""RQ-VAE (and its Mixture-of-Codes variant): standardise -> MLP encoder -> quantizer -> MLP decoder.

The architecture only; how it is fitted (epochs, dead-code revival) is `genrec.experiments.tokenizer`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from genrec.quantize.codebook import distances
from genrec.quantize.quantizers import ParallelQuantizer, ResidualQuantizer, distance_schedule

QUANTIZERS = {"residual": ResidualQuantizer, "parallel": ParallelQuantizer}


@dataclass
class TokenizerConfig:
    kind: str = "residual"  # residual (RQ-VAE) | parallel (Mixture-of-Codes)
    num_levels: int = 3
    codebook_size: int = 256
    distances: str | list[str] = "cosine-then-euclidean"
    latent_dim: int = 32
    hidden_dims: list[int] = field(default_factory=lambda: [512, 256, 128])
    dropout: float = 0.0
    estimator: str = "rotation"  # rotation | ste
    beta: float = 0.25
    kmeans_iters: int = 25
    collision: str = "suffix"  # suffix | reassign: how items sharing a code tuple are told apart


def _mlp(dims: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers += [nn.SiLU(), nn.Dropout(dropout)] if dropout else [nn.SiLU()]
    return nn.Sequential(*layers)


@dataclass
class TokenizerOutput:
    reconstruction: torch.Tensor
    latent: torch.Tensor
    quantized: torch.Tensor
    codes: torch.Tensor
    recon_loss: torch.Tensor
    quant_loss: torch.Tensor

    @property
    def loss(self) -> torch.Tensor:
        return self.recon_loss + self.quant_loss


class SemanticTokenizer(nn.Module):
    def __init__(self, input_dim: int, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        schedule = distance_schedule(cfg.distances, cfg.num_levels)
        quantizer = QUANTIZERS.get(cfg.kind)
        if quantizer is None:
            raise ValueError(f"tokenizer kind must be one of {sorted(QUANTIZERS)}, got {cfg.kind!r}")
        self.register_buffer("mean", torch.zeros(input_dim))
        self.register_buffer("std", torch.ones(input_dim))
        self.encoder = _mlp([input_dim, *cfg.hidden_dims, cfg.latent_dim], cfg.dropout)
        self.decoder = _mlp([cfg.latent_dim, *reversed(cfg.hidden_dims), input_dim], cfg.dropout)
        self.quantizer = quantizer(cfg.latent_dim, cfg.codebook_size, schedule, cfg.estimator, cfg.beta)

    @property
    def distances(self) -> list[str]:
        return [cb.distance for cb in self.quantizer.levels]

    @torch.no_grad()
    def initialize(self, embeddings: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Fit the standardiser and k-means-initialise every codebook on encoder outputs."""
        check_embeddings(embeddings, self.cfg.codebook_size)
        self.mean.copy_(embeddings.mean(0))
        self.std.copy_(embeddings.std(0).clamp_min(1e-6))
        self.quantizer.init_from(self.encode(embeddings), self.cfg.kmeans_iters, generator)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor, recon_rows: torch.Tensor | None = None) -> TokenizerOutput:
        """`recon_rows` decodes only those rows: an unbiased estimate of the reconstruction loss (for uniformly
        drawn rows) at a fraction of the decoder's cost, when every row must be quantized but not rebuilt."""
        z = self.encode(x)
        q = self.quantizer(z)
        rows = slice(None) if recon_rows is None else recon_rows
        recon = self.decoder(q.quantized[rows])
        target = (x[rows] - self.mean) / self.std
        return TokenizerOutput(recon, z, q.quantized, q.codes, F.mse_loss(recon, target), q.loss)

    @torch.no_grad()
    def quantize_items(self, x: torch.Tensor, batch_size: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes [n, levels] and quantized vectors [n, latent] in eval mode, in fixed-size batches (so the
        numbers do not depend on how many items are asked for at once)."""
        was = self.training
        self.eval()
        outs = [self.quantizer(self.encode(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
        self.train(was)
        return torch.cat([o.codes for o in outs]), torch.cat([o.quantized for o in outs])

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantize_items(x)[0]

    @torch.no_grad()
    def revive(self, embeddings: torch.Tensor, generator: torch.Generator | None = None) -> list[int]:
        residuals = self.quantizer.residuals(self.encode(embeddings))
        return [cb.revive_dead_codes(r, generator) for cb, r in zip(self.quantizer.levels, residuals)]

    @torch.no_grad()
    def last_level_distances(self, x: torch.Tensor) -> torch.Tensor:
        """[n, K] distances at the last level (for collision re-assignment)."""
        last = self.quantizer.levels[-1]
        return distances(self.quantizer.residuals(self.encode(x))[-1], last.weight, last.distance)


def check_embeddings(embeddings: torch.Tensor, codebook_size: int) -> None:
    if embeddings.ndim != 2:
        raise ValueError(f"item embeddings must be 2-D [items, dim], got shape {tuple(embeddings.shape)}")
    bad = (~torch.isfinite(embeddings)).any(1).nonzero().squeeze(1)
    if len(bad):
        raise ValueError(
            f"item embeddings contain NaN/inf in {len(bad)} row(s), first item index(es) {bad[:5].tolist()}; "
            "recompute them (tools/prepare_data.py --embed --refresh)"
        )
    if embeddings.shape[0] < codebook_size:
        raise ValueError(
            f"{embeddings.shape[0]} items is fewer than codebook_size={codebook_size}: k-means cannot place every "
            "code; lower tokenizer.codebook_size"
        )
