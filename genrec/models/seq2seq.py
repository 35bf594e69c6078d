"""TIGER-style encoder-decoder over semantic-ID tokens, built on transformers' T5 classes.

The defaults are the shipped model: the CPU size of the main job (2+2 layers, d_model 64) with the item-table
decoder; `recipes/configs/*_gpu.yaml` set TIGER's size (4+4 layers, d_model 128, 6 heads x 64, FFN 1024).
"""
from __future__ import annotations

from dataclasses import dataclass

from transformers import T5Config, T5ForConditionalGeneration

from genrec.config import check
from genrec.generation.codes import EOS, PAD
from genrec.hardware import PRECISIONS
from genrec.models.code_head import DECODERS


@dataclass
class Seq2SeqConfig:
    num_layers: int = 2
    num_decoder_layers: int = 2
    d_model: int = 64
    num_heads: int = 2
    d_kv: int = 32
    d_ff: int = 128  # 128 beat 256 on validation in the main job (beam R@10 .0825 against .0785) and the benchmark
    dropout: float = 0.0  # 0 beat 0.1 at every epoch of a 10-minute CPU budget (docs/results/budget.md)
    user_buckets: int = 0  # hashed user token prepended to the history; 0 disables it
    # how each level's codes are scored (`models.code_head`): "item_table", the decoder started from the encoder
    # state and each code scored by its items' summed exp-scores too (a dense head factorised level by level;
    # needs a causal encoder, objective.kind=every_position), or "tiger", T5's LM head alone
    decoder: str = "item_table"
    # the dense head's [targets, items] matmul in training: auto = bf16 where the hardware has it natively (AMX,
    # AVX-512-bf16, CUDA), its softmax in fp32; evaluation stays fp32. Whole-model bf16 autocast is slower for this
    # model on a CPU: its small matmuls lose more to the casts than they gain
    item_score_precision: str = "auto"

    def validate(self) -> None:
        check(self.decoder in DECODERS, f"decoder must be one of {', '.join(DECODERS)}, got {self.decoder!r}")
        check(self.item_score_precision in PRECISIONS,
              f"item_score_precision must be one of {', '.join(PRECISIONS)}, got {self.item_score_precision!r}")


def build_model(cfg: Seq2SeqConfig, vocab_size: int) -> T5ForConditionalGeneration:
    config = T5Config(
        vocab_size=vocab_size, d_model=cfg.d_model, d_kv=cfg.d_kv, d_ff=cfg.d_ff, num_layers=cfg.num_layers,
        num_decoder_layers=cfg.num_decoder_layers, num_heads=cfg.num_heads, dropout_rate=cfg.dropout,
        feed_forward_proj="relu", pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD,
        tie_word_embeddings=True, relative_attention_num_buckets=32, relative_attention_max_distance=128,
    )
    return T5ForConditionalGeneration(config)
