"""Discriminative baselines in the shared harness: popularity and SASRec-CE (plain IDs, or `[ID ‖ semantic]` items).

Same data, splits, loop, early stopping, checkpoints and metric code as the generative runs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import torch.nn.functional as F
from accelerate import Accelerator

from genrec.config import load_config
from genrec.errors import MissingFileError
from genrec.data import LeaveOneOut, popularity
from genrec.data.splits import Split
from genrec.evaluation.ranking import new_item_share, protocol_metrics, target_ranks_from_scores
from genrec.experiments.harness import (DataConfig, RunConfig, cold_start_note, fit_and_test, format_metrics, hardware,
                                        holding, item_vectors, load_data, log, popularity_metrics, run_record,
                                        start_fit, summarize, write_result)
from genrec.experiments.seq.config import ItemInputConfig
from genrec.experiments.tokenizer import TokenizerFitConfig, pretrained_tokenizer, seeded, semantic_table
from genrec.models.item_embedding import ItemEmbedding
from genrec.models.new_items import offset_for_share
from genrec.models.sasrec import SasRec, SasRecConfig
from genrec.models.text_view import choose_weight, text_view_scores
from genrec.quantize import SemanticTokenizer
from genrec.training import SplitTensors, Task, TrainConfig, eval_batches, make_accelerator
from genrec.training.checkpoint import load_weights
from genrec.training.loop import BEST


MODELS = ("sasrec_id", "sasrec_unified")
UNTRAINED = ("text_neighbours",)  # baselines without a fit (popularity is always reported)


class SasRecTask(Task):
    """SASRec-CE: the same leave-one-out examples, softmax cross-entropy over the whole catalogue,
    and full-ranking evaluation from scores (non-finite scores raise)."""

    def __init__(self, splits: LeaveOneOut, num_items: int, cfg: SasRecConfig, eval_batch_size: int = 1024,
                 item_embedding: ItemEmbedding | None = None, tokenizer_lr_scale: float = 1.0, rq_weight: float = 1.0,
                 rq_sample: int = 0, text: torch.Tensor | None = None, text_view_weights: list[float] | None = None):
        self.known, self.num_items = splits.known, num_items  # cold start: trained over the known items only
        # the text view (genrec.models.text_view), its weight chosen on validation after training
        self.text, self.text_view_weights, self.text_view_weight = text, list(text_view_weights or []), 0.0
        self.text_view_metrics: dict[float, dict[str, float]] = {}
        self.new_item_offset = 0.0  # cold start: set on validation (genrec.models.new_items) when `calibrate` runs
        if self.known is not None and item_embedding is not None:
            raise ValueError("the cold-start protocol (data.new_items) runs the sasrec_id baseline")
        self.model = SasRec(num_items if self.known is None else self.known, cfg, item_embedding, rq_weight, rq_sample)
        self.eval_batch_size = eval_batch_size
        self.tokenizer_lr_scale = tokenizer_lr_scale
        self.data = SplitTensors(splits.tensors())

    def add_new_items(self, model) -> None:
        """The cold-start protocol's new items arrive with empty ID rows."""
        if model.num_items < self.num_items:
            model.add_items(self.num_items - model.num_items)

    def before_test(self, model, accelerator: Accelerator) -> None:
        """The new items arrive (cold start); the text view's weight is chosen on validation."""
        self.add_new_items(model)
        if self.text_view_weights:
            def validate(weight: float) -> dict[str, float]:
                self.text_view_weight = weight
                return self.evaluate(model, "valid", accelerator)

            self.text_view_weight, self.text_view_metrics = choose_weight(self.text_view_weights, validate)

    @torch.no_grad()
    def calibrate(self, model, accelerator: Accelerator) -> float:
        """The new items' score offset at which they fill their share of the catalogue in the validation top 10, as the
        generative model's search gets it (`genrec.models.new_items`); returns it."""
        model.eval()
        scores = torch.cat([self.scores(model, batch, model.item_table()) for batch in
                            eval_batches(self, "valid", self.eval_batch_size, accelerator)])
        known = self.known

        def share_at(offset: float) -> float:
            shifted = torch.cat([scores[:, :known], scores[:, known:] + offset], 1)
            return new_item_share(shifted.topk(10, -1).indices, known)

        self.new_item_offset = offset_for_share(share_at, (model.num_items - known) / model.num_items)
        return self.new_item_offset

    def scores(self, model, batch: dict[str, torch.Tensor], table: torch.Tensor) -> torch.Tensor:
        """[B, items] fp32: SASRec's scores, with the text view and the new items' offset when set."""
        scores = model(batch["history"], table).float()
        if self.text_view_weight:
            scores = scores + text_view_scores(self.text.to(scores.device), batch["history"][:, -1], self.text_view_weight)
        if self.new_item_offset and self.known is not None and model.num_items > self.known:
            scores[:, self.known :] += self.new_item_offset
        return scores

    def num_train_examples(self) -> int:
        return self.data.rows("train")

    def batch(self, indices: torch.Tensor, device: torch.device, split: str = "train") -> dict[str, torch.Tensor]:
        return self.data.gather(split, indices, device)

    def lr_scale(self, parameter_name: str) -> float:
        return self.tokenizer_lr_scale if ".tokenizer." in f".{parameter_name}" else 1.0

    def loss(self, model, batch):
        rec = F.cross_entropy(model(batch["history"]).float(), batch["target"])
        aux = getattr(model, "module", model).aux_loss()  # RQ-VAE losses when the item tokenizer trains jointly
        return rec + aux.to(rec.device), {"rec": rec.detach(), "rq": aux.detach()}

    @torch.no_grad()
    def evaluate(self, model, split: str, accelerator: Accelerator) -> dict[str, float]:
        model.eval()
        ranks, targets, top = [], [], []
        with accelerator.autocast():
            table = model.item_table()  # once per evaluation: unified items recompute it from the tokenizer
        for batch in eval_batches(self, split, self.eval_batch_size, accelerator):
            with accelerator.autocast():
                scores = self.scores(model, batch, table)
            ranks.append(accelerator.gather_for_metrics(target_ranks_from_scores(scores, batch["target"])))
            targets.append(accelerator.gather_for_metrics(batch["target"]))
            top.append(accelerator.gather_for_metrics(scores.topk(min(10, scores.shape[1]), -1).indices))
        model.train()
        metrics = protocol_metrics(torch.cat(ranks), torch.cat(targets), torch.cat(top), self.known, model.num_items)
        if split != "valid":
            metrics |= {"text_view_weight": self.text_view_weight} if self.text_view_weights else {}
            metrics |= {"new_item_offset": self.new_item_offset} if self.new_item_offset else {}
        return metrics


def text_neighbour_metrics(vectors: np.ndarray, split: Split, known: int | None = None) -> dict[str, float]:
    """Rank every item by the cosine of its text vector to the last history item's (the item itself last): a
    content-only baseline that needs no training, and so knows new items as well as old ones."""
    unit = torch.nn.functional.normalize(torch.tensor(np.asarray(vectors), dtype=torch.float32), dim=-1)
    last = torch.from_numpy(split.history[:, -1])
    targets = torch.from_numpy(split.target)
    ranks, top = [], []
    for rows in torch.arange(len(targets)).split(2048):
        scores = unit[last[rows]] @ unit.T
        scores[torch.arange(len(rows)), last[rows]] = -2.0  # below any cosine, finite (non-finite scores raise)
        ranks.append(target_ranks_from_scores(scores, targets[rows]))
        top.append(scores.topk(min(10, len(unit)), -1).indices)
    return protocol_metrics(torch.cat(ranks), targets, torch.cat(top), known, len(unit))


@dataclass
class UnifiedConfig:
    """sasrec_unified: `[ID(items.id_dim) ‖ quantized semantic vector]` items."""
    train_tokenizer: bool = True  # the paper's setting: the tokenizer learns with the model (+ its RQ-VAE losses)
    rq_weight: float = 1.0
    tokenizer_lr_scale: float = 1.0  # the tokenizer's learning rate as a fraction of train.lr
    rq_sample: int = 0  # items decoded per step for the reconstruction loss (uniform draw); 0 = every item


def _sasrec_train() -> TrainConfig:
    return TrainConfig(epochs=100, batch_size=256, lr=1e-3, weight_decay=0.0, warmup_steps=100, eval_every=1,
                       patience=5, monitor="ndcg@10")


@dataclass
class BaselineRunConfig(RunConfig):
    name: str = "beauty_baselines"
    models: list[str] = field(default_factory=lambda: ["sasrec_id"])  # sasrec_id | sasrec_unified | text_neighbours
    eval_batch_size: int = 1024
    data: DataConfig = field(default_factory=DataConfig)
    sasrec: SasRecConfig = field(default_factory=SasRecConfig)
    tokenizer: TokenizerFitConfig = field(default_factory=TokenizerFitConfig)  # for sasrec_unified
    items: ItemInputConfig = field(default_factory=ItemInputConfig)
    unified: UnifiedConfig = field(default_factory=UnifiedConfig)
    train: TrainConfig = field(default_factory=_sasrec_train)
    # the text view (genrec.models.text_view) added to SASRec's scores after training, its weight chosen on validation
    # among these; empty: off
    text_view_weights: list[float] = field(default_factory=list)

def unified_items(cfg: BaselineRunConfig, embeddings: np.ndarray, seed: int, run_dir: Path, accelerator) -> ItemEmbedding:
    """The stage-one tokenizer of this seed (the same fit the generative path uses), then either kept
    inside the model to train on (the paper's end-to-end setting) or frozen into a semantic table."""
    tok_cfg = seeded(cfg.tokenizer, seed)
    if cfg.unified.train_tokenizer:
        tokenizer = pretrained_tokenizer(tok_cfg, embeddings, run_dir, accelerator)
        return cfg.items.embedding(None, cfg.sasrec.d_model, embeddings, tokenizer)
    table = semantic_table(tok_cfg, embeddings, run_dir, accelerator)
    return cfg.items.embedding(table.semantic, cfg.sasrec.d_model, embeddings)


def sasrec_task(cfg: BaselineRunConfig, splits: LeaveOneOut, num_items: int, item_embedding: ItemEmbedding | None,
                text: np.ndarray | None = None) -> SasRecTask:
    """The one builder for training and for reloading a fit, so a reloaded model scores exactly as trained; `text`: the
    item text vectors, for the text view."""
    vectors = None if text is None else torch.tensor(np.asarray(text), dtype=torch.float32)
    return SasRecTask(splits, num_items, replace(cfg.sasrec, max_history=cfg.data.max_history), cfg.eval_batch_size,
                      item_embedding, cfg.unified.tokenizer_lr_scale, cfg.unified.rq_weight, cfg.unified.rq_sample,
                      vectors, cfg.text_view_weights)


@dataclass
class SavedBaseline:
    cfg: BaselineRunConfig
    model_name: str
    task: SasRecTask  # its model holds the fit's best weights, in eval mode


def load_baseline(folder: str | Path) -> SavedBaseline:
    """A finished baseline fit (`runs/<name>/<model>_seed_<s>/`) with its best weights, for re-evaluation.
    A jointly trained tokenizer comes back from the state dict; only the item-text vectors are read again."""
    folder = Path(folder)
    if not (folder / "run_config.yaml").exists() or not (folder / BEST).exists():
        raise MissingFileError(f"{folder} is not a finished baseline fit (no run_config.yaml or {BEST}); "
                                "point at runs/<name>/<model>_seed_<s>")
    cfg = load_config(BaselineRunConfig, folder / "run_config.yaml")
    model_name = folder.name.rsplit("_seed_", 1)[0]
    if model_name not in MODELS:
        raise ValueError(f"{folder.name}: expected a folder named <model>_seed_<s> with a model in {MODELS}")
    data, splits = load_data(cfg.data)
    items = None
    if model_name == "sasrec_unified":  # the semantic table (frozen, or the live tokenizer's cache) is in the state dict
        semantic = torch.zeros(data.num_items, cfg.tokenizer.latent_dim)  # placeholders until the weights load
        text = (item_vectors(data, splits, cfg.data, progress=False)
                if cfg.unified.train_tokenizer or cfg.items.text else None)
        tokenizer = SemanticTokenizer(text.shape[1], cfg.tokenizer) if cfg.unified.train_tokenizer else None
        items = cfg.items.embedding(semantic, cfg.sasrec.d_model, text, tokenizer)
    task = sasrec_task(cfg, splits, data.num_items, items)
    load_weights(task.model, folder / BEST)
    task.add_new_items(task.model)  # the cold-start protocol's new items, as the fit's test saw them
    task.model.eval()
    return SavedBaseline(cfg, model_name, task)


def merge_baseline_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine baseline result files of one dataset (e.g. one per model and seed, trained side by side)."""
    merged = dict(results[0])
    per_model: dict[str, list[dict[str, Any]]] = {}
    for res in results:
        for name, entry in res["models"].items():
            if name != "popularity":
                per_model.setdefault(name, []).extend(entry["per_seed"])
    models = {"popularity": results[0]["models"]["popularity"]}
    for name, per_seed in per_model.items():
        mean, std = summarize(per_seed)
        models[name] = {"metrics": mean, "metrics_std": std, "per_seed": per_seed}
    merged.update(models=models, seeds=sorted({r["seed"] for rows in per_model.values() for r in rows}),
                  wall_seconds=max(r["wall_seconds"] for r in results), commands=[r["command"] for r in results])
    return merged


def run_baselines(cfg: BaselineRunConfig, command: str | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    accelerator = make_accelerator(cfg.train)
    with holding(accelerator, Path(cfg.output_dir) / cfg.name):
        return _run_baselines(cfg, command, accelerator, start)


def _run_baselines(cfg: BaselineRunConfig, command: str | None, accelerator, start: float) -> dict[str, Any]:
    log(accelerator, f"{hardware()}; mixed precision {accelerator.mixed_precision}")
    data, splits = load_data(cfg.data)
    unknown = set(cfg.models) - set(MODELS) - set(UNTRAINED)
    if unknown:
        raise ValueError(f"unknown baseline model(s) {sorted(unknown)}; choose from {MODELS + UNTRAINED}")
    embeddings = (item_vectors(data, splits, cfg.data, progress=accelerator.is_main_process)
                  if {"sasrec_unified", "text_neighbours"} & set(cfg.models) or cfg.text_view_weights else None)
    known = splits.known
    models: dict[str, dict[str, Any]] = {"popularity": {"metrics": popularity_metrics(popularity(data, known), splits.test, known)}}
    if "text_neighbours" in cfg.models:
        models["text_neighbours"] = {"metrics": text_neighbour_metrics(embeddings, splits.test, known)}
    for model_name in (m for m in cfg.models if m in MODELS):
        per_seed = []
        for seed in cfg.seeds:
            run_dir = Path(cfg.output_dir) / cfg.name / f"{model_name}_seed_{seed}"
            start_fit(cfg, run_dir, accelerator)
            torch.manual_seed(seed)
            items = unified_items(cfg, embeddings, seed, run_dir, accelerator) if model_name == "sasrec_unified" else None
            _, record = fit_and_test(sasrec_task(cfg, splits, data.num_items, items, embeddings), cfg.train, seed, run_dir,
                                     accelerator, model_name)
            per_seed.append(record)
        mean, std = summarize(per_seed)
        models[model_name] = {"metrics": mean, "metrics_std": std, "per_seed": per_seed}
    result = {
        **run_record(cfg, command, accelerator, start),
        "dataset": {k: v for k, v in data.stats().items() if k != "sequence_length"},
        "protocol": f"leave-one-out, history<={cfg.data.max_history}, full ranking over {data.num_items} items "
                    "(score ties broken by item index)" + cold_start_note(splits),
        "models": models,
    }
    if accelerator.is_main_process:
        write_result(result, cfg.results_dir, [f"{name}: {format_metrics(entry['metrics'])}" for name, entry in result["models"].items()])
    return result
