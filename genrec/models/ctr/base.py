"""The shared CTR skeleton: field embedding -> optional Mixture-of-Codes fusion -> interaction -> logit.

Every input is a row of categorical field ids; each backbone only supplies `interact`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

FUSION_FIELDS = ("all", "representation")  # what `CtrModelConfig.fusion_fields` may name


@dataclass
class CtrModelConfig:
    embedding_dim: int = 16
    dnn: list[int] = field(default_factory=lambda: [256, 128])
    dropout: float = 0.1
    dnn_batch_norm: bool = False  # batch norm after each hidden linear layer (FuxiCTR's `net_batch_norm`)
    # L2 on every embedding table, (lambda / 2) * ||E||^2 over whole tables each step, added to the mean
    # log loss: FuxiCTR's `embedding_regularizer`, the setting its benchmarks tune first
    embedding_l2: float = 0.0
    fusion: bool = False  # the MoC bottleneck in front of the interaction module
    fusion_dim: int = 64  # bottleneck width
    # which fields the fusion mixes: "all" (DESIGN.md: the user, attributes, item ID and codes together) or
    # "representation" (only the item representation under test: its code fields, or the ID copies of the
    # ID representation; the MoC paper fuses its Semantic Representation, the item's code embeddings)
    fusion_fields: str = "all"
    # fusion's learning rate as a fraction of `train.lr` (at the full rate, fusion's fits fit their training
    # rows worse than without it: docs/results/ctr.md)
    fusion_lr_scale: float = 1.0
    im_order: int = 3  # DeepIM: highest interaction order (<= 5)
    im_batch_norm: bool = True  # DeepIM: batch-normalise the interaction vectors before their weights
    attention_layers: int = 3  # AutoInt+
    attention_heads: int = 2
    attention_dim: int = 16  # per head; 32 (the paper's) is no better on validation and trains 2x slower (docs/results/ctr.md)
    cross_layers: int = 3  # DCNv2

    def __post_init__(self) -> None:
        if self.fusion_fields not in FUSION_FIELDS:
            raise ValueError(f"model.fusion_fields={self.fusion_fields!r}: choose from {FUSION_FIELDS}")
        if self.fusion_lr_scale <= 0:
            raise ValueError(f"model.fusion_lr_scale must be positive, got {self.fusion_lr_scale}")


# the settings every backbone reads; each backbone names its own in `CtrModel.own_settings`
SHARED_SETTINGS = ("embedding_dim", "dnn", "dropout", "dnn_batch_norm", "embedding_l2", "fusion", "fusion_dim",
                   "fusion_fields", "fusion_lr_scale")
# fusion settings added after fits were saved, with the value those fits were trained with: one counts in a
# fit's key only where it changes that fit (fusion on, another value), so the saved fits stay valid
LATER_FUSION_SETTINGS = {"fusion_fields": "all", "fusion_lr_scale": 1.0}


class FieldEmbedding(nn.Module):
    """All fields share one table; each field owns a disjoint id range (ids are offset per field)."""

    def __init__(self, vocab_sizes: list[int], dim: int, std: float = 1e-2):
        super().__init__()
        self.register_buffer("offsets", torch.tensor([0, *vocab_sizes[:-1]]).cumsum(0), persistent=False)
        self.register_buffer("sizes", torch.tensor(vocab_sizes), persistent=False)
        self.table = nn.Embedding(int(sum(vocab_sizes)), dim)
        nn.init.normal_(self.table.weight, std=std)

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        """[B, F] ids (each < its field's vocab size) -> [B, F, dim]."""
        return self.table(fields + self.offsets)

    def field_weights(self, index: int) -> torch.Tensor:
        start = int(self.offsets[index])
        return self.table.weight[start : start + int(self.sizes[index])]


def mlp(in_dim: int, hidden: list[int], dropout: float, out_dim: int | None = None,
        batch_norm: bool = False) -> nn.Sequential:
    """FuxiCTR's MLP block: linear -> (batch norm) -> ReLU -> dropout per hidden layer."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), *([nn.BatchNorm1d(width)] if batch_norm else []), nn.ReLU(),
                   nn.Dropout(dropout)]
        in_dim = width
    if out_dim is not None:
        layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class MoCFusion(nn.Module):
    """`e + GeLU(e W_down) W_up` over the concatenated fields, split back per field (Zhang et al. 2024); with
    `fields`, over those fields only, the others passed through. `W_up` starts at zero, so fusion begins as the
    identity and learns only the cross-field mixing it needs."""

    def __init__(self, num_fields: int, dim: int, bottleneck: int, fields: Sequence[int] | None = None):
        super().__init__()
        self.fields: torch.Tensor | None
        self.register_buffer("fields", None if fields is None else torch.tensor(list(fields)), persistent=False)
        width = num_fields if fields is None else len(fields)
        self.down = nn.Linear(width * dim, bottleneck)
        self.up = nn.Linear(bottleneck, width * dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        mixed = e if self.fields is None else e[:, self.fields]
        flat = mixed.flatten(1)
        fused = (flat + self.up(nn.functional.gelu(self.down(flat)))).view_as(mixed)
        return fused if self.fields is None else e.index_copy(1, self.fields, fused)


class CtrModel(nn.Module):
    """Subclasses build their layers and call `reset_parameters()` last (`build_ctr_model` does).
    `fused_fields`: the field indices fusion mixes when `cfg.fusion_fields` names a subset."""

    # the `CtrModelConfig` fields this backbone reads besides `SHARED_SETTINGS`: with them, what a saved
    # fit depends on (a setting of another backbone never invalidates it)
    own_settings: ClassVar[tuple[str, ...]] = ()

    def __init__(self, vocab_sizes: list[int], cfg: CtrModelConfig, fused_fields: Sequence[int] | None = None):
        super().__init__()
        if cfg.fusion and (cfg.fusion_fields == "all") != (fused_fields is None):
            raise ValueError(f"model.fusion_fields={cfg.fusion_fields!r} needs the field indices to fuse "
                             f"exactly when it is not 'all' (got {fused_fields})")
        self.cfg = cfg
        self.num_fields = len(vocab_sizes)
        self.embedding = FieldEmbedding(vocab_sizes, cfg.embedding_dim)
        self.fusion = (MoCFusion(self.num_fields, cfg.embedding_dim, cfg.fusion_dim, fused_fields) if cfg.fusion
                       else nn.Identity())

    @property
    def flat_dim(self) -> int:
        return self.num_fields * self.cfg.embedding_dim

    def reset_parameters(self) -> None:
        """FuxiCTR's initialisation: Xavier-normal linear weights and zero biases; embeddings and the
        zero-initialised fusion keep their own."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if isinstance(self.fusion, MoCFusion):
            self.fusion.reset_parameters()

    def regularization(self) -> torch.Tensor | float:
        """The embedding L2 term to add to the loss (0 when `embedding_l2` is 0)."""
        if not self.cfg.embedding_l2:
            return 0.0
        tables = [m.table.weight for m in self.modules() if isinstance(m, FieldEmbedding)]
        return 0.5 * self.cfg.embedding_l2 * sum(t.float().square().sum() for t in tables)

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        """[B, F] field ids -> [B] logits."""
        return self.interact(self.fusion(self.embedding(fields)), fields)

    def interact(self, e: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def settings(cls, cfg: CtrModelConfig) -> dict[str, object]:
        """The settings of `cfg` this backbone is built and trained with: what a saved fit is keyed by
        (`LATER_FUSION_SETTINGS` only where they change it)."""
        settings = {name: getattr(cfg, name) for name in (*SHARED_SETTINGS, *cls.own_settings)}
        for name, before in LATER_FUSION_SETTINGS.items():
            if not cfg.fusion or settings[name] == before:
                del settings[name]
        return settings
