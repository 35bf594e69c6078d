"""Train a semantic tokenizer on item embeddings with the shared loop, then build its semantic-ID table."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from genrec.evaluation.codes import level_usage, unique_rate
from genrec.quantize.semantic_ids import SemanticIdTable
from genrec.quantize.tokenizer import SemanticTokenizer, TokenizerConfig, check_embeddings
from genrec.training.loop import Trainer


class TokenizerTask:
    """Reconstruction + quantization losses over catalogue rows; dead codes revived each epoch."""

    def __init__(self, embeddings: torch.Tensor, cfg: TokenizerConfig):
        self.cfg = cfg
        self.embeddings = embeddings
        self.generator = torch.Generator().manual_seed(cfg.train.seed)
        self.model = SemanticTokenizer(embeddings.shape[1], cfg)
        self.model.initialize(embeddings, self.generator)

    def num_train_examples(self) -> int:
        return len(self.embeddings)

    def batch(self, indices: torch.Tensor, device: torch.device) -> torch.Tensor:
        if self.embeddings.device != device:  # move once; batches are then a gather on the device
            self.embeddings = self.embeddings.to(device)
        return self.embeddings[indices.to(device)]

    def loss(self, model: nn.Module, x: torch.Tensor):
        out = model(x)
        return out.loss, {"recon": out.recon_loss.detach(), "quant": out.quant_loss.detach()}  # no host sync

    def on_epoch_end(self, model: SemanticTokenizer, epoch: int, accelerator) -> dict[str, float]:
        if not self.cfg.revive_dead_codes or epoch > 0.8 * self.cfg.train.epochs:
            for cb in model.quantizer.levels:  # usage is counted per window; keep it fresh
                cb.usage.zero_()
            return {}
        revived = model.revive(self.embeddings.to(accelerator.device), self.generator)
        return {"revived": float(sum(revived))}

    @torch.no_grad()
    def evaluate(self, model: SemanticTokenizer, split: str, accelerator) -> dict[str, float]:
        model.eval()
        out = model(self.embeddings.to(accelerator.device))
        model.train()
        codes = out.codes.cpu().numpy()
        usage = level_usage(codes, self.cfg.codebook_size)
        return {"score": -float(out.loss), "recon": float(out.recon_loss), "unique": unique_rate(codes),
                "usage_l1": usage[0], "usage_min": min(usage)}


def fit_tokenizer(embeddings: np.ndarray | torch.Tensor, cfg: TokenizerConfig, output_dir: str | Path,
                  precision: str | None = None) -> tuple[SemanticTokenizer, SemanticIdTable, dict]:
    x = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
    check_embeddings(x, cfg.codebook_size)
    torch.manual_seed(cfg.train.seed)
    task = TokenizerTask(x, cfg)
    result = Trainer(cfg.train, output_dir, precision).fit(task)
    tokenizer: SemanticTokenizer = result.pop("model").cpu().eval()
    table = build_table(tokenizer, x, cfg)
    return tokenizer, table, result


@torch.no_grad()
def build_table(tokenizer: SemanticTokenizer, x: torch.Tensor, cfg: TokenizerConfig) -> SemanticIdTable:
    tokenizer.eval()
    out = tokenizer(x)
    last = tokenizer.last_level_distances(x) if cfg.collision == "reassign" else None
    return SemanticIdTable.build(out.codes, out.quantized, codebook_size=cfg.codebook_size, collision=cfg.collision,
                                 distances=tokenizer.distances, id_dim=cfg.id_dim, seed=cfg.train.seed, last_distances=last)
