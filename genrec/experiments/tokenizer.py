"""Fit a semantic tokenizer on item embeddings with the shared loop, then build its semantic-ID table.

Experiments keep one fit per run folder: `semantic_table` and `pretrained_tokenizer` train it once
and reload it when a run resumes, so a resumed run keeps its codes.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from torch import nn

from genrec.evaluation.codes import level_usage, unique_rate
from genrec.quantize.semantic_ids import SemanticIdTable
from genrec.quantize.tokenizer import SemanticTokenizer, TokenizerConfig, check_embeddings
from genrec.training import SplitTensors, Task, TrainConfig, Trainer
from genrec.training.checkpoint import load_weights
from genrec.training.loop import BEST


def _tokenizer_train() -> TrainConfig:
    return TrainConfig(epochs=150, batch_size=1024, lr=1e-3, weight_decay=1e-4, monitor="score", patience=0,
                       eval_every=10, mixed_precision="no", progress=False, resume=False, checkpoint_every=0)


@dataclass
class TokenizerFitConfig(TokenizerConfig):
    """A tokenizer's architecture (the fields of `TokenizerConfig`) and how it is fitted."""

    revive_dead_codes: bool = True
    train: TrainConfig = field(default_factory=_tokenizer_train)


class TokenizerTask(Task):
    """Reconstruction + quantization losses over catalogue rows; dead codes revived each epoch."""

    def __init__(self, embeddings: torch.Tensor, cfg: TokenizerFitConfig):
        self.cfg = cfg
        self.embeddings = embeddings
        self.generator = torch.Generator().manual_seed(cfg.train.seed)
        self.model = SemanticTokenizer(embeddings.shape[1], cfg)
        self.model.initialize(embeddings, self.generator)
        self.data = SplitTensors({"train": {"x": embeddings}})

    def num_train_examples(self) -> int:
        return len(self.embeddings)

    def batch(self, indices: torch.Tensor, device: torch.device) -> torch.Tensor:
        return self.data.gather("train", indices, device)["x"]

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


def fit_tokenizer(embeddings: np.ndarray | torch.Tensor, cfg: TokenizerFitConfig, output_dir: str | Path,
                  precision: str | None = None, known: int | None = None) -> tuple[SemanticTokenizer, SemanticIdTable, dict]:
    """The tokenizer fitted on the first `known` rows (all when None: the cold-start protocol fits it without the new
    items' text), and the table of every row: the new items are encoded by the fitted tokenizer and, coming last,
    take the collision suffixes after the known items', whose codes are those of a table over them alone."""
    # a copy in torch's own (64-byte aligned) memory: BLAS kernels may round differently for differently aligned
    # inputs, and a vector table computed in this process and one read from the cache are allocated differently
    x = torch.tensor(np.asarray(embeddings), dtype=torch.float32)
    check_embeddings(x, cfg.codebook_size)
    torch.manual_seed(cfg.train.seed)
    task = TokenizerTask(x if known is None else x[:known], cfg)
    result = Trainer(cfg.train, output_dir, precision).fit(task)
    tokenizer: SemanticTokenizer = result.pop("model").cpu().eval()
    return tokenizer, SemanticIdTable.from_tokenizer(tokenizer, x), result


def seeded(cfg: TokenizerFitConfig, seed: int) -> TokenizerFitConfig:
    """The same tokenizer fit under another seed (each model seed gets its own tokenizer)."""
    return replace(cfg, train=replace(cfg.train, seed=seed))


def semantic_table(cfg: TokenizerFitConfig, embeddings: np.ndarray, run_dir: Path, accelerator: Accelerator,
                   known: int | None = None) -> SemanticIdTable:
    """Train a tokenizer into `run_dir/semantic_ids`, or reload it there (a resumed run keeps its codes); `known`
    as in `fit_tokenizer`."""
    saved = run_dir / "semantic_ids"
    if (saved / "semantic_ids.json").exists():
        return SemanticIdTable.load(saved)
    _, table, _ = fit_tokenizer(embeddings, cfg, run_dir / "tokenizer", accelerator.mixed_precision, known)
    if accelerator.is_main_process:
        table.save(saved)
    return table


def pretrained_tokenizer(cfg: TokenizerFitConfig, embeddings: np.ndarray, run_dir: Path,
                         accelerator: Accelerator) -> SemanticTokenizer:
    """The stage-one tokenizer a joint model starts from: the same fit `semantic_table` makes, reloaded
    from its best checkpoint when a run resumes."""
    checkpoint = run_dir / "tokenizer" / BEST
    if not checkpoint.exists():
        semantic_table(cfg, embeddings, run_dir, accelerator)
    tokenizer = SemanticTokenizer(embeddings.shape[1], cfg)
    load_weights(tokenizer, checkpoint)
    return tokenizer
