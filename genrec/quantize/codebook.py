"""A vector-quantization codebook with a per-codebook distance.

* `cosine`: codes are chosen by the angle between the (normalised) input and codewords, but the
  codeword itself lives in raw space, so a residual quantizer subtracts the raw vector.
* `euclidean`: nearest codeword in raw space.

Gradients reach the encoder through the rotation trick (Fifty et al. 2024) by default, or a plain
straight-through estimator; `tools/analyze_codes.py` compares them. Codebooks start from k-means on
data and dead codes are revived from live inputs; both are broadcast from rank 0 so that every
process of a multi-process run holds the same codebook.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

ESTIMATORS = ("rotation", "ste")


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def broadcast_(tensor: torch.Tensor) -> torch.Tensor:
    """Make every rank hold rank 0's values (no-op in a single process)."""
    if _distributed():
        dist.broadcast(tensor, src=0)
    return tensor


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    if _distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


@dataclass(frozen=True)
class Distance:
    """How a codebook compares inputs with codewords. `nearest` and `dissimilarity` must agree
    (argmin of one is the other); `nearest` may skip terms that are constant per row."""

    nearest: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x [n, d], codewords [K, d]) -> [n]
    dissimilarity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # -> [n, K], smaller is nearer


def _cosine_nearest(x: torch.Tensor, codewords: torch.Tensor) -> torch.Tensor:
    return (F.normalize(x, dim=-1) @ F.normalize(codewords, dim=-1).T).argmax(-1)


def _euclidean_nearest(x: torch.Tensor, codewords: torch.Tensor) -> torch.Tensor:
    # ||x-e||^2 = ||x||^2 - 2 x.e + ||e||^2; ||x||^2 is constant per row
    return (codewords.pow(2).sum(-1) - 2 * x @ codewords.T).argmin(-1)


DISTANCES: dict[str, Distance] = {
    "cosine": Distance(_cosine_nearest, lambda x, c: 1 - F.normalize(x, dim=-1) @ F.normalize(c, dim=-1).T),
    "euclidean": Distance(_euclidean_nearest, lambda x, c: torch.cdist(x, c).pow(2)),
}


def get_distance(name: str) -> Distance:
    if name not in DISTANCES:
        raise ValueError(f"distance must be one of {sorted(DISTANCES)}, got {name!r}")
    return DISTANCES[name]


def assign(x: torch.Tensor, codewords: torch.Tensor, distance: str) -> torch.Tensor:
    """Index of the nearest codeword per row under `distance`."""
    return get_distance(distance).nearest(x, codewords)


def distances(x: torch.Tensor, codewords: torch.Tensor, distance: str) -> torch.Tensor:
    """[n, K] dissimilarities (smaller is nearer), consistent with `assign`."""
    return get_distance(distance).dissimilarity(x, codewords)


@torch.no_grad()
def kmeans(x: torch.Tensor, k: int, distance: str, iters: int = 25, generator: torch.Generator | None = None) -> torch.Tensor:
    """Lloyd's k-means (spherical assignment for cosine); centroids are raw-space means of their members."""
    n = x.shape[0]
    if n < k:
        raise ValueError(f"k-means needs at least as many points as codes: {n} points for {k} codes")
    centroids = x[torch.randperm(n, generator=generator, device="cpu")[:k].to(x.device)].clone()
    for _ in range(iters):
        labels = assign(x, centroids, distance)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k).unsqueeze(1)
        empty = counts.squeeze(1) == 0
        centroids = torch.where(empty.unsqueeze(1), centroids, sums / counts.clamp_min(1))
        if empty.any():  # re-seed empty clusters at random points
            pick = torch.randint(0, n, (int(empty.sum()),), generator=generator, device="cpu").to(x.device)
            centroids[empty] = x[pick]
    return centroids


def rotate_to(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Rotation trick: returns `target` in the forward pass; the gradient w.r.t. x is rotated and
    scaled like the map taking x onto target, so it carries the angle between them."""
    eps = 1e-6
    x_norm = x.norm(dim=-1, keepdim=True).clamp_min(eps)
    t_norm = target.norm(dim=-1, keepdim=True).clamp_min(eps)
    u = (x / x_norm).detach()
    q = (target / t_norm).detach()
    w = F.normalize(u + q, dim=-1, eps=eps).detach()
    rotated = x - 2 * (x * w).sum(-1, keepdim=True) * w + 2 * (x * u).sum(-1, keepdim=True) * q
    return rotated * (t_norm / x_norm).detach()


@dataclass
class QuantizeOutput:
    quantized: torch.Tensor  # forward value = chosen codewords, gradient flows to the input
    codes: torch.Tensor  # [n] long
    loss: torch.Tensor  # codebook + beta * commitment


class Codebook(nn.Module):
    def __init__(self, num_codes: int, dim: int, distance: str = "euclidean", estimator: str = "rotation", beta: float = 0.25):
        super().__init__()
        get_distance(distance)  # an unknown name fails here, not at the first batch
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        self.num_codes, self.dim, self.distance, self.estimator, self.beta = num_codes, dim, distance, estimator, beta
        self.weight = nn.Parameter(torch.randn(num_codes, dim) * dim**-0.5)
        self.register_buffer("usage", torch.zeros(num_codes))  # assignments since the last revival
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def init_from(self, x: torch.Tensor, iters: int = 25, generator: torch.Generator | None = None) -> None:
        self.weight.copy_(kmeans(x.float(), self.num_codes, self.distance, iters, generator))
        broadcast_(self.weight.data)
        self.initialized.fill_(True)

    def assign(self, x: torch.Tensor) -> torch.Tensor:
        return assign(x, self.weight, self.distance)

    def forward(self, x: torch.Tensor) -> QuantizeOutput:
        with torch.autocast(x.device.type, enabled=False):  # code choice must not flip under bf16
            return self._quantize(x.float())

    def _quantize(self, x: torch.Tensor) -> QuantizeOutput:
        codes = self.assign(x.detach())
        chosen = self.weight[codes]
        loss = F.mse_loss(chosen, x.detach()) + self.beta * F.mse_loss(x, chosen.detach())
        if self.training:
            self.usage += torch.bincount(codes, minlength=self.num_codes).to(self.usage.dtype)
        if self.estimator == "rotation":
            quantized = rotate_to(x, chosen)
        else:
            quantized = x + (chosen - x).detach()
        return QuantizeOutput(quantized, codes, loss)

    @torch.no_grad()
    def revive_dead_codes(self, candidates: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Move codes unused since the last call onto random candidate vectors; returns how many moved.

        Usage is summed over ranks and the replacements are rank 0's, so codebooks stay identical."""
        all_reduce_sum_(self.usage)
        dead = (self.usage == 0).nonzero().squeeze(1)
        if len(dead):
            pick = torch.randint(0, candidates.shape[0], (len(dead),), generator=generator, device="cpu").to(candidates.device)
            fresh = candidates[pick].to(self.weight.dtype).clone()
            broadcast_(fresh)
            self.weight.data[dead] = fresh
        self.usage.zero_()
        return int(len(dead))
