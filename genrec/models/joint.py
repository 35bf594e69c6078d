"""The jointly trained recommender: a live semantic tokenizer feeding a T5 encoder-decoder.

History items enter the encoder as `[small ID embedding ‖ quantized semantic vector]` projected to
d_model (Lin et al. 2025); the decoder emits the target's code tuple, as in two-stage TIGER. The
tokenizer stays a module of the model, so the recommendation loss reaches its encoder and codebooks
through the quantized vectors (rotation-trick gradients). `item_codes` and `item_latent` are
buffers, so a checkpoint always pairs weights with the codes they were trained against.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from genrec.models.seq2seq import CodeVocab, Seq2SeqConfig, build_model, user_token
from genrec.quantize.tokenizer import SemanticTokenizer


class Epoch(NamedTuple):
    """One epoch of a joint schedule: which parts learn, and whether codes are refreshed after it."""

    phase: str  # rec (recommender only) | tok (tokenizer only) | both
    refresh: bool = False  # re-assign codes (the targets) and rebuild the trie at the end of this epoch

    def __str__(self) -> str:
        return self.phase + ("+refresh" if self.refresh else "")


REC, TOK = Epoch("rec"), Epoch("tok", refresh=True)


@dataclass
class JointConfig:
    id_dim: int = 16  # width of the per-item ID half of the input; 0 drops it (ablation)
    # target_freeze: (rec_epochs x rec, freeze_epochs x both) per cycle; in the window both parts learn while the
    #   targets stay fixed, and with window_refresh the codes are re-assigned once at its end;
    # alternating (ETEGRec-style): (rec_epochs x rec, tok_epochs x tok) per cycle, codes refreshed after every tok epoch;
    # simultaneous: both parts learn every epoch and codes are refreshed after each (the ablation).
    # The defaults are the schedule chosen on validation (README, "Joint training"): targets never move, and the
    # tokenizer learns from the recommendation loss at the recommender's rate, as sasrec_unified's does.
    schedule: str = "target_freeze"
    rec_epochs: int = 0  # per cycle: recommender only, tokenizer frozen, codes fixed
    tok_epochs: int = 1  # per alternating cycle: tokenizer only (recommender frozen)
    freeze_epochs: int = 2  # per target_freeze cycle: the length of the window
    window_refresh: bool = False  # target_freeze: re-assign the codes at the end of each window
    cycles: int = 1  # the epochs left after the cycles are a recommender-only fine-tune on the final codes
    tok_lr_scale: float = 1.0  # with refreshes, use ~0.01: tokenizer codes sit on boundaries and a refresh moves them
    rq_weight: float = 1.0  # RQ-VAE reconstruction + quantization losses while the tokenizer learns
    align_weight: float = 0.0  # tokenizer's soft code assignment of the target -> recommender's prediction
    align_temperature: float = 1.0
    align_warmup_steps: int = 200  # the alignment weight ramps up linearly over the first tokenizer steps
    refresh_margin: float = 0.5  # a refreshed code stays put unless another is nearer by this fraction
    suffix_slots: int = 0  # fixed size of the dedup-suffix level (0 = codebook_size); refreshes must fit in it

    def phases(self, epochs: int) -> list[Epoch]:
        """The plan of every epoch."""
        if self.schedule == "simultaneous":
            return [Epoch("both", refresh=True)] * epochs
        if self.schedule == "alternating":
            cycle = [REC] * self.rec_epochs + [TOK] * self.tok_epochs
        elif self.schedule == "target_freeze":
            if self.freeze_epochs < 1:
                raise ValueError(f"joint.freeze_epochs must be at least 1, got {self.freeze_epochs}")
            window = [Epoch("both")] * (self.freeze_epochs - 1) + [Epoch("both", refresh=self.window_refresh)]
            cycle = [REC] * self.rec_epochs + window
        else:
            raise ValueError(f"joint.schedule must be 'alternating', 'target_freeze' or 'simultaneous', got {self.schedule!r}")
        plan = cycle * self.cycles
        if len(plan) >= epochs:
            raise ValueError(f"train.epochs={epochs} leaves no final recommender epoch after {self.cycles} cycle(s) of "
                             f"{len(cycle)} epochs ({' '.join(map(str, cycle))}); raise train.epochs or lower joint.cycles")
        return plan + [REC] * (epochs - len(plan))


class JointRecommender(nn.Module):
    def __init__(self, tokenizer: SemanticTokenizer, item_text: torch.Tensor, codes: torch.Tensor,
                 model_cfg: Seq2SeqConfig, vocab: CodeVocab, id_dim: int):
        super().__init__()
        self.tokenizer = tokenizer
        self.register_buffer("item_text", item_text.float(), persistent=False)  # the tokenizer's input
        self.register_buffer("item_codes", codes.long().clone())
        latent_dim = tokenizer.cfg.latent_dim
        self.register_buffer("item_latent", torch.zeros(len(codes), latent_dim))
        self.id_embedding = nn.Embedding(len(codes), id_dim) if id_dim else None
        if self.id_embedding is not None:
            nn.init.normal_(self.id_embedding.weight, std=0.02)
        self.item_proj = nn.Linear(id_dim + latent_dim, model_cfg.d_model)
        self.t5 = build_model(model_cfg, vocab.size)
        self.user_buckets = model_cfg.user_buckets
        self.user_offset = vocab.user_offset  # level sizes are fixed in joint mode, so token ids never move
        self.level_blocks = list(zip(vocab.level_offsets, vocab.level_sizes))
        self.refresh_latent()

    @torch.no_grad()
    def refresh_latent(self, batch_size: int = 8192) -> None:
        """Recompute every item's quantized vector with the current tokenizer (used while it is frozen)."""
        was = self.tokenizer.training
        self.tokenizer.eval()
        for start in range(0, len(self.item_latent), batch_size):
            x = self.item_text[start : start + batch_size]
            self.item_latent[start : start + batch_size] = self.tokenizer.quantizer(self.tokenizer.encode(x)).quantized
        self.tokenizer.train(was)

    def unified(self, items: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """[n] item indices with their quantized vectors [n, latent] -> [n, d_model]."""
        parts = [latent] if self.id_embedding is None else [self.id_embedding(items), latent]
        return self.item_proj(torch.cat(parts, dim=-1))

    def encoder_inputs(self, history: torch.Tensor, users: torch.Tensor | None,
                       live_latent: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """history [B, H] (-1 = pad) -> inputs_embeds [B, (1)+H, d] and mask. `live_latent` = (items, vectors)
        computed with gradients this step; otherwise the cached `item_latent` is used."""
        valid = history >= 0
        items = history.clamp_min(0)
        if live_latent is None:
            latent = self.item_latent[items]
        else:
            uniq, vectors = live_latent
            latent = vectors[torch.searchsorted(uniq, items)]
        embeds = self.unified(items, latent) * valid.unsqueeze(-1)
        mask = valid
        if self.user_buckets and users is not None:
            user = self.t5.shared(user_token(users, self.user_offset, self.user_buckets)).unsqueeze(1)
            embeds = torch.cat([user, embeds], dim=1)
            mask = torch.cat([torch.ones_like(valid[:, :1]), valid], dim=1)
        return embeds, mask

    def forward(self, history: torch.Tensor, users: torch.Tensor, labels: torch.Tensor, target: torch.Tensor,
                live: bool, align_temperature: float = 1.0) -> dict[str, torch.Tensor]:
        """Losses of one batch. With `live`, the history's quantized vectors come from the tokenizer with
        gradients, and the RQ-VAE loss and the alignment loss (cross-entropy from the recommender's
        per-level code distribution, held fixed, to the tokenizer's soft assignment of the target) are added."""
        losses: dict[str, torch.Tensor] = {}
        live_latent = None
        if live:
            uniq = torch.unique(torch.cat([history.clamp_min(0).flatten(), target]))
            tok = self.tokenizer(self.item_text[uniq])
            live_latent = (uniq, tok.quantized)
            losses["rq"] = tok.loss
        embeds, mask = self.encoder_inputs(history, users, live_latent)
        out = self.t5(inputs_embeds=embeds, attention_mask=mask, labels=labels)
        losses["rec"] = out.loss
        if live:
            soft = self.tokenizer.quantizer.soft_assignments(self.tokenizer.encode(self.item_text[target]), align_temperature)
            align = 0.0
            for level, (log_q, (offset, size)) in enumerate(zip(soft, self.level_blocks)):  # no dedup suffix level
                predicted = F.softmax(out.logits[:, level, offset : offset + size].detach().float(), dim=-1)
                align = align - (predicted * log_q).sum(-1).mean()
            losses["align"] = align
        return losses
