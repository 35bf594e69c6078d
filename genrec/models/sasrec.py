"""SASRec (Kang & McAuley 2018) scored over the full catalogue and trained with softmax cross-entropy."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genrec.models.item_embedding import ItemEmbedding


@dataclass
class SasRecConfig:
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 2
    dropout: float = 0.2
    max_history: int = 20


class SasRec(nn.Module):
    """Causal self-attention over the history; the last position's state scores every item by a dot
    product with the (shared) item embedding table: plain IDs, or `[ID ‖ semantic]` items (`ItemEmbedding`).

    With a live tokenizer in the item embedding (the paper's end-to-end setting), the semantic half is
    recomputed from the item text at every step, so the recommendation loss trains the tokenizer too, and
    `aux_loss` holds its RQ-VAE losses (times `rq_weight`) for the task to add. Every item must be
    quantized at every step (full-catalogue scores), but the reconstruction loss need not decode every
    item: `rq_sample` > 0 decodes that many items drawn uniformly per step, an unbiased estimate of the
    full loss that halves the tokenizer's cost on a large catalogue (0 = decode all)."""

    def __init__(self, num_items: int, cfg: SasRecConfig, item_embedding: ItemEmbedding | None = None,
                 rq_weight: float = 1.0, rq_sample: int = 0):
        super().__init__()
        self.cfg = cfg
        self.item_embedding = item_embedding
        self.rq_weight, self.rq_sample = rq_weight, rq_sample
        self._aux_loss = torch.zeros(())
        self.items = nn.Embedding(1 if item_embedding else num_items + 1, cfg.d_model, padding_idx=0)  # token = index + 1
        self.positions = nn.Embedding(cfg.max_history, cfg.d_model)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.num_heads, 4 * cfg.d_model, cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        nn.init.normal_(self.items.weight, std=0.02)
        with torch.no_grad():
            self.items.weight[0].zero_()  # padding row
        nn.init.normal_(self.positions.weight, std=0.02)

    @torch.no_grad()
    def add_items(self, count: int) -> None:
        """Rows for `count` items that arrive after training, at zero: an ID model knows nothing of them (the
        cold-start protocol's baseline; `[ID ‖ semantic]` items grow through their `ItemEmbedding`)."""
        if self.item_embedding is not None:
            raise ValueError("SASRec with unified items adds items through its ItemEmbedding")
        weight = self.items.weight
        self.items = nn.Embedding.from_pretrained(torch.cat([weight, weight.new_zeros(count, weight.shape[1])]),
                                                  freeze=False, padding_idx=0)

    @property
    def num_items(self) -> int:
        return (self.item_embedding.num_items if self.item_embedding is not None else len(self.items.weight) - 1)

    def attention_mask(self, history: torch.Tensor) -> torch.Tensor:
        """[B*heads, L, L] bool, True = blocked. Causal, pads blocked as keys, but every position may
        attend to itself, so no row is fully masked (a fully masked row gives NaN that leaks through)."""
        length = history.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=history.device).triu(1)
        pad_key = (history < 0).unsqueeze(1)  # [B, 1, L]
        eye = torch.eye(length, dtype=torch.bool, device=history.device)
        blocked = (causal | pad_key) & ~eye
        return blocked.repeat_interleave(self.cfg.num_heads, dim=0)

    def item_table(self) -> torch.Tensor:
        """[num_items + 1, d]: row 0 is padding, row i + 1 is item i."""
        embedding = self.item_embedding
        if embedding is None:
            return self.items.weight
        if embedding.tokenizer is None or not self.training:
            semantic = embedding.current_semantic()  # frozen table, or the live tokenizer without its losses
        else:
            rows = None
            if 0 < self.rq_sample < embedding.num_items:
                rows = torch.randperm(embedding.num_items, device=embedding.semantic.device)[: self.rq_sample]
            out = embedding.quantize(recon_rows=rows)
            self._aux_loss = self.rq_weight * out.loss
            semantic = out.quantized
        return torch.cat([self.items.weight, embedding.table(semantic)], dim=0)

    def user_state(self, history: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """history [B, L] item indices, left-padded with -1 -> [B, d] state after the last item."""
        table = self.item_table() if table is None else table
        history = history[:, -self.cfg.max_history:]
        x = table[history + 1] * self.cfg.d_model**0.5
        x = self.dropout(x + self.positions.weight[-history.shape[1]:])
        h = self.encoder(x, mask=self.attention_mask(history))
        return self.norm(h[:, -1])

    def aux_loss(self) -> torch.Tensor:
        """Losses of a jointly trained item tokenizer from the last forward pass (zero otherwise)."""
        live = self.item_embedding is not None and self.item_embedding.tokenizer is not None
        return self._aux_loss if live else torch.zeros(())

    def forward(self, history: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """[B, num_items] fp32 scores (`table`: a precomputed `item_table()`, e.g. for a whole evaluation).
        Scores stay fp32 under bf16 autocast: with 8 mantissa bits, a dozen or more items tie with the target on
        average (Sports, `tools/rescore_baseline.py`), and the tie rule rather than the model would order them."""
        table = self.item_table() if table is None else table
        state = self.user_state(history, table)
        with torch.autocast(state.device.type, enabled=False):
            return state.float() @ table[1:].float().T
