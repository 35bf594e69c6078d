"""Residual and parallel (Mixture-of-Codes) quantizers over one latent vector."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genrec.quantize.codebook import Codebook, QuantizeOutput, distances

SCHEDULES = {
    "cosine-then-euclidean": lambda n: ["cosine"] * (n - 1) + ["euclidean"],
    "euclidean": lambda n: ["euclidean"] * n,
    "cosine": lambda n: ["cosine"] * n,
}


def distance_schedule(spec: str | list[str], levels: int) -> list[str]:
    """`cosine-then-euclidean` (default: cosine on levels 1..L-1, Euclidean on L), `cosine`, `euclidean`, or a list."""
    if isinstance(spec, str):
        if spec not in SCHEDULES:
            raise ValueError(f"unknown distance schedule {spec!r}; use one of {sorted(SCHEDULES)} or a list")
        return SCHEDULES[spec](levels)
    if len(spec) != levels:
        raise ValueError(f"distance list has {len(spec)} entries for {levels} levels")
    return list(spec)


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor  # [n, d]
    codes: torch.Tensor  # [n, levels]
    loss: torch.Tensor


class ResidualQuantizer(nn.Module):
    """Level l quantizes what levels < l left over; the residual is always taken in raw space,
    also after a cosine level (the codeword is subtracted, not its normalised direction)."""

    def __init__(self, dim: int, num_codes: int, distances: list[str], estimator: str = "rotation", beta: float = 0.25):
        super().__init__()
        self.levels = nn.ModuleList(Codebook(num_codes, dim, d, estimator, beta) for d in distances)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        residual, total, codes, loss = z, torch.zeros_like(z), [], z.new_zeros(())
        for codebook in self.levels:
            out: QuantizeOutput = codebook(residual)
            total = total + out.quantized
            residual = residual - out.quantized
            codes.append(out.codes)
            loss = loss + out.loss
        return QuantizerOutput(total, torch.stack(codes, 1), loss)

    @torch.no_grad()
    def init_from(self, z: torch.Tensor, iters: int = 25, generator: torch.Generator | None = None) -> None:
        residual = z
        for codebook in self.levels:
            codebook.init_from(residual, iters, generator)
            residual = residual - codebook.weight[codebook.assign(residual)]

    @torch.no_grad()
    def residuals(self, z: torch.Tensor) -> list[torch.Tensor]:
        """The input each level sees (used for dead-code revival and last-level re-assignment)."""
        out, residual = [], z
        for codebook in self.levels:
            out.append(residual)
            residual = residual - codebook.weight[codebook.assign(residual)]
        return out

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return sum(cb.weight[codes[:, i]] for i, cb in enumerate(self.levels))

    @torch.no_grad()
    def assign_sticky(self, z: torch.Tensor, previous: torch.Tensor, margin: float) -> torch.Tensor:
        """Codes for `z` that keep each `previous` code while its distance is within (1 + margin) of the
        best one. A tokenizer that keeps learning (joint training) then moves an item's code only when
        the item has really moved, not because it sat on a boundary; margin 0 is plain assignment."""
        codes, residual = [], z
        for level, codebook in enumerate(self.levels):
            d = distances(residual, codebook.weight, codebook.distance)
            best = d.argmin(-1)
            old = previous[:, level]
            keep = d.gather(1, old[:, None]).squeeze(1) <= d.gather(1, best[:, None]).squeeze(1) * (1 + margin)
            chosen = torch.where(keep, old, best)
            codes.append(chosen)
            residual = residual - codebook.weight[chosen]
        return torch.stack(codes, 1)

    def soft_assignments(self, z: torch.Tensor, temperature: float = 1.0) -> list[torch.Tensor]:
        """Per level, log-softmax of -distance/temperature over codes: a differentiable view of the
        assignment (w.r.t. the encoder and the codewords), used to align codes with a recommender."""
        out, residual = [], z
        for codebook in self.levels:
            out.append(torch.log_softmax(-distances(residual, codebook.weight, codebook.distance) / temperature, dim=-1))
            residual = residual - codebook.weight[codebook.assign(residual.detach())]
        return out


class ParallelQuantizer(nn.Module):
    """Mixture-of-Codes: N independent codebooks each quantize the same latent; reconstruction
    uses their mean. Each codebook gives one semantic-ID field (Zhang et al. 2024)."""

    def __init__(self, dim: int, num_codes: int, distances: list[str], estimator: str = "rotation", beta: float = 0.25):
        super().__init__()
        self.levels = nn.ModuleList(Codebook(num_codes, dim, d, estimator, beta) for d in distances)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        outs = [cb(z) for cb in self.levels]
        quantized = torch.stack([o.quantized for o in outs]).mean(0)
        return QuantizerOutput(quantized, torch.stack([o.codes for o in outs], 1), sum(o.loss for o in outs))

    @torch.no_grad()
    def init_from(self, z: torch.Tensor, iters: int = 25, generator: torch.Generator | None = None) -> None:
        for codebook in self.levels:  # different random seeds per codebook make the fields differ
            codebook.init_from(z, iters, generator)

    @torch.no_grad()
    def residuals(self, z: torch.Tensor) -> list[torch.Tensor]:
        return [z for _ in self.levels]

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.stack([cb.weight[codes[:, i]] for i, cb in enumerate(self.levels)]).mean(0)
