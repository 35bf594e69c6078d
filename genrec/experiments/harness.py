"""What every experiment shares: data loading, one fit -> test sequence, result records and seed merging."""
from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from accelerate import Accelerator

from genrec.config import check, check_run, save_config, to_dict
from genrec.data import InteractionTable, LeaveOneOut, SequenceData, item_embeddings, leave_one_out, load_dataset
from genrec.data.coldstart import cold_start
from genrec.data.loaders import MIN_LENGTH
from genrec.data.splits import Split
from genrec.errors import RunFolderError
from genrec.evaluation.ranking import cold_warm_metrics, metrics_from_ranks, target_ranks_from_scores
from genrec.files import run_lock, write_atomic
from genrec.hardware import PRECISIONS
from genrec.hardware import describe as hardware  # every results file names its machine with this
from genrec.training import Task, TrainConfig, Trainer


@dataclass
class RunConfig:
    """What every run's config starts with: the name of its folder and results file, where they go, and
    its seeds. Subclasses add their sections (and may redeclare a default)."""

    name: str = "run"
    output_dir: str = "runs"
    results_dir: str = "results"
    seeds: list[int] = field(default_factory=lambda: [42])

    def validate(self) -> None:
        check_run(self.name, self.seeds)


@dataclass
class DataConfig:
    dataset: str = "beauty"  # a name (beauty, sports, scientific), a folder, or an interaction table file
    table: InteractionTable = field(default_factory=InteractionTable)  # how to read an interaction table
    min_length: int = MIN_LENGTH  # users with fewer interactions are left out (leave-one-out needs 3)
    max_history: int = 20
    on_error: str = "raise"
    max_users: int = 0  # keep only the first N users (smoke tests and demos); 0 = all, the protocol
    # the text encoder's precision: auto = the vectors shipped with a built-in dataset, else bf16 where the hardware
    # has it natively; fp32; or bf16 (computed, never the shipped fp32 vectors)
    embedding_precision: str = "auto"
    # the cold-start protocol (genrec.data.coldstart): this share of the items is new, unseen in training and
    # validation, drawn by `new_items_seed` (the same items for every model and training seed); 0 = the standard one
    new_items: float = 0.0
    new_items_seed: int = 0

    def validate(self) -> None:
        check(self.min_length >= MIN_LENGTH, f"min_length must be at least {MIN_LENGTH} (a training, a validation "
                                             f"and a test item), got {self.min_length}")
        check(self.max_history >= 1, f"max_history must be at least 1, got {self.max_history}")
        check(self.max_users >= 0, f"max_users must be 0 (all users) or a positive count, got {self.max_users}")
        check(self.on_error in ("raise", "drop"), f"on_error must be raise or drop, got {self.on_error!r}")
        check(0 <= self.new_items < 1, f"new_items must be a share in [0, 1), got {self.new_items}")
        check(self.embedding_precision in PRECISIONS,
              f"embedding_precision must be one of {', '.join(PRECISIONS)}, got {self.embedding_precision!r}")


def load_data(cfg: DataConfig) -> tuple[SequenceData, LeaveOneOut]:
    """The dataset and its splits: leave-one-out, or the cold-start protocol (`new_items` > 0), whose data holds
    the new items last."""
    data = load_dataset(cfg.dataset, on_error=cfg.on_error, min_length=cfg.min_length, table=cfg.table)
    if cfg.max_users:
        data = replace(data, user_ids=data.user_ids[: cfg.max_users], sequences=data.sequences[: cfg.max_users])
    if cfg.new_items:
        return cold_start(data, cfg.new_items, cfg.new_items_seed, cfg.max_history)
    return data, leave_one_out(data, cfg.max_history)


def item_vectors(data: SequenceData, splits: LeaveOneOut, cfg: DataConfig, progress: bool = True) -> np.ndarray:
    """Every item's text vector, in the data's item order. Under the cold-start protocol they are computed (or
    found in the cache, or shipped) for the source catalogue and reordered, so both protocols read the same vectors."""
    catalog = data.catalog if splits.cold is None else splits.cold.source
    vectors = item_embeddings(catalog, progress=progress, precision=cfg.embedding_precision)
    return vectors if splits.cold is None else splits.cold.reorder(vectors)


def cold_start_note(splits: LeaveOneOut) -> str:
    """The protocol line's cold-start part (empty under the standard protocol)."""
    cold = splits.cold
    if cold is None:
        return ""
    return (f"; cold start: {cold.num_new} new items ({cold.share:g} of the catalogue, drawn by seed {cold.seed}) "
            "left out of training and validation, the tokenizer fitted without their text; test over every user, "
            "also over cold targets (new items) and warm ones; counts: "
            + ", ".join(f"{k} {v}" for k, v in cold.counts.items()))


def holding(accelerator: Accelerator, folder: Path):
    """The run folder's lock, held by the main process (the other ranks of a run write under its hold)."""
    return run_lock(folder) if accelerator.is_main_process else contextlib.nullcontext(folder)


# settings a resumed run may change: how long and how often it trains, evaluates and saves, and where results go
MAY_CHANGE_ON_RESUME = ("output_dir", "results_dir", "seeds", "models", "train.epochs", "train.patience", "train.max_minutes",
                        "train.eval_every", "train.checkpoint_every", "train.progress", "train.resume",
                        "decode.batch_size")


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def start_fit(cfg: Any, run_dir: Path, accelerator: Accelerator) -> None:
    """Before a fit trains in `run_dir`: a run folder left by an earlier invocation is continued only under the
    same settings (each changed key named, saved against requested); then this run's config is saved there."""
    saved_path = run_dir / "run_config.yaml"
    if cfg.train.resume and (run_dir / "last").exists() and saved_path.exists():
        saved, now = _flat(yaml.safe_load(saved_path.read_text()) or {}), _flat(to_dict(cfg))
        changed = [k for k in sorted(set(saved) | set(now))
                   if saved.get(k) != now.get(k) and not k.startswith(MAY_CHANGE_ON_RESUME)]
        if changed:
            listed = ", ".join(f"{k}: saved {saved.get(k)!r}, requested {now.get(k)!r}" for k in changed[:8])
            raise RunFolderError(f"{run_dir} holds a run with other settings ({listed}); use a new `name`, set them "
                                 "back to continue it, or train.resume=false to start it over")
    if accelerator.is_main_process:
        save_config(cfg, saved_path)


def log(accelerator: Accelerator, message: str) -> None:
    if accelerator.is_main_process:
        print(f"[genrec] {message}", flush=True)


def fit_and_test(task: Task, train: TrainConfig, seed: int, run_dir: Path, accelerator: Accelerator,
                 label: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train with the shared loop (best validation weights kept), then score the test split once.
    Returns the model and the per-seed record every results file stores."""
    log(accelerator, f"{label} seed {seed}: training")  # a log of many fits says which one the epochs belong to
    fit = Trainer(replace(train, seed=seed), run_dir, accelerator.mixed_precision).fit(task)
    model = fit.pop("model")
    task.before_test(model, accelerator)
    test = task.evaluate(model, "test", accelerator)
    log(accelerator, f"{label} seed {seed} test: {format_metrics(test)}")
    return model, {"seed": seed, "test": test, **fit}


def popularity_metrics(counts: np.ndarray, split: Split, known: int | None = None) -> dict[str, float]:
    """Rank every item by training-part popularity (the same list for every user); with `known` (the cold-start
    protocol) also over cold and warm targets."""
    scores = torch.from_numpy(counts).float().unsqueeze(0)
    targets = torch.from_numpy(split.target)
    ranks = torch.cat([target_ranks_from_scores(scores.expand(len(t), -1), t) for t in targets.split(4096)])
    return metrics_from_ranks(ranks) if known is None else cold_warm_metrics(ranks, targets >= known)


def summarize(per_seed: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and std over seeds of every test metric."""
    keys = per_seed[0]["test"].keys()
    mean = {k: float(np.mean([r["test"][k] for r in per_seed])) for k in keys}
    std = {k: float(np.std([r["test"][k] for r in per_seed])) for k in keys}
    return mean, std


def merge_seed_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine single-seed result files (e.g. seeds trained side by side on one GPU) into one."""
    per_seed = [r for res in results for r in res["per_seed"]]
    mean, std = summarize(per_seed)
    merged = dict(results[0])
    merged.update(seeds=[r["seed"] for r in per_seed], per_seed=per_seed, metrics=mean, metrics_std=std,
                  wall_seconds=max(r["wall_seconds"] for r in results), commands=[r["command"] for r in results])
    return merged


def run_record(cfg: Any, command: str | None, accelerator: Accelerator, start: float) -> dict[str, Any]:
    """The fields every results file shares."""
    return {"name": cfg.name, "command": command or "python " + " ".join(sys.argv), "seeds": cfg.seeds,
            "hardware": hardware(), "processes": accelerator.num_processes,
            "wall_seconds": time.perf_counter() - start, "config": to_dict(cfg)}


def write_result(result: dict[str, Any], results_dir: str, lines: list[str]) -> Path:
    out = write_atomic(Path(results_dir) / f"{result['name']}.json", json.dumps(result, indent=1, default=float))
    for line in [*lines, f"wrote {out}"]:
        print(f"[genrec] {line}", flush=True)
    return out


def format_metrics(metrics: dict[str, float], std: dict[str, float] | None = None) -> str:
    return " ".join(f"{k}={v:.4f}" + (f"±{std[k]:.4f}" if std else "") for k, v in metrics.items())
