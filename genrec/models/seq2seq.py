"""TIGER-style encoder-decoder over semantic-ID tokens, built on transformers' T5 classes.

Vocabulary: 0 = pad (also the decoder start), 1 = eos, then one block of codes per level
(`level_offsets`), then optional hashed user tokens. Saving and loading use `save_pretrained`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import T5Config, T5ForConditionalGeneration

PAD, EOS, NUM_SPECIAL = 0, 1, 2


@dataclass
class Seq2SeqConfig:
    num_layers: int = 4
    num_decoder_layers: int = 4
    d_model: int = 128
    num_heads: int = 6
    d_kv: int = 64
    d_ff: int = 1024
    dropout: float = 0.1
    user_buckets: int = 2000  # hashed user token prepended to the history; 0 disables it
    # a causal encoder only: the decoder's start token adds the encoder state at the target's position (the
    # state the dense head scores from), so the decoder reads its query directly instead of having to find
    # the most recent position by cross-attention (which carries no position information in T5)
    start_from_state: bool = False
    # a causal encoder only: each level's code scores add the decoder state (projected) against the mean item
    # vector under each child prefix (the item table the dense head trains), and the softmax runs over the
    # trie's valid children; without it a code token's output embedding is shared by every prefix, so the
    # decoder must learn which item a later-level code means under each prefix from scratch
    node_head: bool = False
    # how the node head scores a child: "mean", the projected state against the mean item vector under it; "mass",
    # the log of the summed exp(projected state . item vector) over its items, so the code distributions chained
    # along a path factorise a full softmax over the items (the decoder is a dense head refined level by level)
    node_score: str = "mean"
    # with node_score "mass", which state scores the first level's codes: "decoder", the decoder's projected start
    # state, or "encoder", the encoder state the dense head scores from, so the root level's node term is the dense
    # head's own mass under each code (in training, one [targets, items] matmul a step fewer)
    root_query: str = "decoder"
    # in training, the dense head's [targets, items] matmul (with root_query "encoder", the only one) runs in bf16 on
    # the AMX units, its softmax in fp32; evaluation stays fp32. Whole-model bf16 autocast is slower for this model:
    # its small matmuls lose more to the casts than they gain
    bf16_item_scores: bool = False


def user_token(users: torch.Tensor, offset: int, buckets: int) -> torch.Tensor:
    """A fixed multiplicative hash, so bucket assignment does not depend on the process."""
    return offset + (users * 2654435761 % (2**31)) % buckets


class CodeVocab:
    """Maps (level, code) and users to token ids; `item_tokens[i]` is item i's token tuple."""

    def __init__(self, codes: torch.Tensor, level_sizes: list[int], user_buckets: int):
        self.level_sizes = list(level_sizes)
        offsets = [NUM_SPECIAL]
        for size in self.level_sizes[:-1]:
            offsets.append(offsets[-1] + size)
        self.level_offsets = offsets
        self.user_offset = offsets[-1] + self.level_sizes[-1]
        self.user_buckets = user_buckets
        self.size = self.user_offset + user_buckets
        tokens = codes.long() + torch.tensor(offsets)
        # an extra all-pad row at index -1 lets padded history positions (-1) gather pad tokens
        self.item_tokens = torch.cat([tokens, torch.full((1, tokens.shape[1]), PAD)], 0)

    @property
    def depth(self) -> int:
        return len(self.level_sizes)

    def user_token(self, users: torch.Tensor) -> torch.Tensor:
        return user_token(users, self.user_offset, self.user_buckets)

    def encode_history(self, history: torch.Tensor, users: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """history [B, H] of item indices (-1 = pad) -> input_ids [B, (1) + H*L] and attention mask."""
        item_tokens = self.item_tokens.to(history.device)
        ids = item_tokens[history].flatten(1)
        if self.user_buckets and users is not None:
            ids = torch.cat([self.user_token(users).unsqueeze(1), ids], 1)
        return ids, ids != PAD


def build_model(cfg: Seq2SeqConfig, vocab_size: int) -> T5ForConditionalGeneration:
    config = T5Config(
        vocab_size=vocab_size, d_model=cfg.d_model, d_kv=cfg.d_kv, d_ff=cfg.d_ff, num_layers=cfg.num_layers,
        num_decoder_layers=cfg.num_decoder_layers, num_heads=cfg.num_heads, dropout_rate=cfg.dropout,
        feed_forward_proj="relu", pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD,
        tie_word_embeddings=True, relative_attention_num_buckets=32, relative_attention_max_distance=128,
    )
    return T5ForConditionalGeneration(config)


def output_scale(model: T5ForConditionalGeneration) -> float:
    """T5 scales decoder outputs by d_model^-0.5 before a tied LM head; transformers 4.x keys this on
    `tie_word_embeddings`, 5.x on `scale_decoder_outputs`. Decoding must match training exactly."""
    cfg = model.config
    scaled = getattr(cfg, "scale_decoder_outputs", None)
    if scaled is None:
        scaled = cfg.tie_word_embeddings
    return cfg.d_model**-0.5 if scaled else 1.0


def level_logits(model: T5ForConditionalGeneration, decoder_hidden: torch.Tensor, start: int, size: int) -> torch.Tensor:
    """Log-probabilities (normalised over the whole vocabulary, as in training) of one level's codes."""
    logits = model.lm_head(decoder_hidden * output_scale(model))
    return torch.log_softmax(logits.float(), dim=-1)[..., start : start + size]


def decoder_step(model: T5ForConditionalGeneration, decoder_ids: torch.Tensor, encoder_hidden: torch.Tensor,
                 encoder_mask: torch.Tensor) -> torch.Tensor:
    """Last-position decoder hidden state for each row (prefixes are at most depth long, so no cache)."""
    out = model.decoder(input_ids=decoder_ids, encoder_hidden_states=encoder_hidden, encoder_attention_mask=encoder_mask)
    return out.last_hidden_state[:, -1]

