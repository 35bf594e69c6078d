"""Semantic-ID tokenizers: codebooks, residual (RQ-VAE) and parallel (Mixture-of-Codes) quantizers."""
from genrec.quantize.codebook import Codebook
from genrec.quantize.fit import build_table, fit_tokenizer
from genrec.quantize.residual import ParallelQuantizer, ResidualQuantizer, distance_schedule
from genrec.quantize.semantic_ids import SemanticIdTable
from genrec.quantize.tokenizer import SemanticTokenizer, TokenizerConfig

__all__ = ["Codebook", "ResidualQuantizer", "ParallelQuantizer", "SemanticTokenizer", "TokenizerConfig",
           "SemanticIdTable", "fit_tokenizer", "build_table", "distance_schedule"]
