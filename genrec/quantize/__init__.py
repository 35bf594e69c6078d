"""Semantic-ID tokenizers: codebooks, residual (RQ-VAE) and parallel (Mixture-of-Codes) quantizers."""
from genrec.quantize.codebook import DISTANCES, Codebook
from genrec.quantize.quantizers import ParallelQuantizer, ResidualQuantizer, distance_schedule
from genrec.quantize.semantic_ids import SemanticIdTable
from genrec.quantize.tokenizer import SemanticTokenizer, TokenizerConfig

__all__ = ["Codebook", "DISTANCES", "ResidualQuantizer", "ParallelQuantizer", "SemanticTokenizer", "TokenizerConfig",
           "SemanticIdTable", "distance_schedule"]
