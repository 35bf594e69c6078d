"""The generative-recommendation pipeline behind `recipes/train_seq.py`: tokenizer -> seq2seq -> evaluation."""
from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genrec.config import save_config, to_dict
from genrec.data import LeaveOneOut, SequenceData, item_embeddings, leave_one_out, load_dataset, popularity
from genrec.quantize import SemanticIdTable, SemanticTokenizer, TokenizerConfig, fit_tokenizer
from genrec.models.joint import JointConfig
from genrec.models.seq2seq import Seq2SeqConfig
from genrec.tasks import DecodeConfig, GenerativeTask, popularity_metrics
from genrec.training.loop import TrainConfig, Trainer, make_accelerator


@dataclass
class DataConfig:
    dataset: str = "beauty"
    max_history: int = 20
    on_error: str = "raise"
    max_users: int = 0  # keep only the first N users (smoke tests and demos); 0 = all, the protocol


@dataclass
class SeqRunConfig:
    name: str = "beauty_seq"
    output_dir: str = "runs"
    results_dir: str = "results"
    seeds: list[int] = field(default_factory=lambda: [42])
    tokenizer_path: str = ""  # a saved semantic-ID table folder; empty = train one per seed
    # two_stage: TIGER (tokenizer, then a recommender over code tokens on fixed codes);
    # unified: history items enter as [ID embedding ‖ quantized vector], the stage-one tokenizer stays fixed;
    # joint: the unified input, and the tokenizer keeps learning from the recommendation loss (`joint` section)
    mode: str = "two_stage"
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: Seq2SeqConfig = field(default_factory=Seq2SeqConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    joint: JointConfig = field(default_factory=JointConfig)  # used when mode is unified or joint


MODES = ("two_stage", "unified", "joint")


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    return f"CPU {platform.machine()}, {torch.get_num_threads()} threads (torch {torch.__version__})"


def semantic_table(tok_cfg: TokenizerConfig, embeddings: np.ndarray, run_dir: Path, accelerator) -> SemanticIdTable:
    """Train a tokenizer into `run_dir/semantic_ids`, or reload it there (a resumed run keeps its codes)."""
    saved = run_dir / "semantic_ids"
    if (saved / "semantic_ids.json").exists():
        return SemanticIdTable.load(saved)
    _, table, _ = fit_tokenizer(embeddings, tok_cfg, run_dir / "tokenizer", accelerator.mixed_precision)
    if accelerator.is_main_process:
        table.save(saved)
    return table


def pretrained_tokenizer(tok_cfg: TokenizerConfig, embeddings: np.ndarray, run_dir: Path, accelerator) -> SemanticTokenizer:
    """The stage-one tokenizer the joint model starts from: the same fit two-stage training uses, reloaded
    from its best checkpoint when a run resumes."""
    checkpoint = run_dir / "tokenizer" / "best_model.pt"
    if not checkpoint.exists():
        semantic_table(tok_cfg, embeddings, run_dir, accelerator)
    tokenizer = SemanticTokenizer(embeddings.shape[1], tok_cfg)
    tokenizer.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return tokenizer


def run_seed(cfg: SeqRunConfig, seed: int, data, splits, embeddings, accelerator) -> dict[str, Any]:
    run_dir = Path(cfg.output_dir) / cfg.name / f"seed_{seed}"
    torch.manual_seed(seed)
    if cfg.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {cfg.mode!r}")
    if cfg.mode in ("unified", "joint"):
        return run_joint_seed(cfg, seed, splits, embeddings, accelerator, run_dir)
    if cfg.tokenizer_path:
        table = SemanticIdTable.load(cfg.tokenizer_path)
    else:
        table = semantic_table(replace(cfg.tokenizer, train=replace(cfg.tokenizer.train, seed=seed)), embeddings, run_dir, accelerator)
    log = (lambda m: print(f"[genrec] {m}", flush=True)) if accelerator.is_main_process else (lambda m: None)
    log(f"seed {seed}: semantic IDs {table.num_items} items x {table.num_levels} levels "
        f"(unique before dedup {table.meta.unique_rate_before_dedup:.4f}, level sizes {table.meta.level_sizes})")
    task = GenerativeTask(splits, table, cfg.model, cfg.decode, seed)
    trainer = Trainer(replace(cfg.train, seed=seed), run_dir, accelerator.mixed_precision)
    fit = trainer.fit(task)
    model = fit.pop("model")
    test = task.evaluate(model, "test", accelerator)
    log(f"seed {seed} test: " + " ".join(f"{k}={v:.4f}" for k, v in test.items()))
    if accelerator.is_main_process:
        model.save_pretrained(run_dir / "model")
        save_config(cfg, run_dir / "run_config.yaml")
    return {"seed": seed, "test": test, **fit}


def run_joint_seed(cfg: SeqRunConfig, seed: int, splits, embeddings, accelerator, run_dir: Path) -> dict[str, Any]:
    from genrec.joint import JointTask

    tok_cfg = replace(cfg.tokenizer, train=replace(cfg.tokenizer.train, seed=seed))
    tokenizer = pretrained_tokenizer(tok_cfg, embeddings, run_dir, accelerator)
    joint = cfg.joint if cfg.mode == "joint" else replace(cfg.joint, cycles=0)  # unified: never a tokenizer epoch
    task = JointTask(splits, tokenizer, torch.as_tensor(embeddings), tok_cfg, cfg.model, joint, cfg.decode, seed,
                     cfg.train.epochs)
    if accelerator.is_main_process:
        print(f"[genrec] seed {seed}: {cfg.mode} item input, epochs {' '.join(map(str, task.phases))}", flush=True)
    fit = Trainer(replace(cfg.train, seed=seed), run_dir, accelerator.mixed_precision).fit(task)
    model = fit.pop("model")
    test = task.evaluate(model, "test", accelerator)
    if accelerator.is_main_process:
        print(f"[genrec] seed {seed} test: {format_metrics(test)}", flush=True)
        save_config(cfg, run_dir / "run_config.yaml")  # best_model.pt holds the weights with their codes
    return {"seed": seed, "test": test, "mode": cfg.mode, **fit}


def summarize(per_seed: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
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


def load_data(cfg: DataConfig) -> tuple[SequenceData, LeaveOneOut]:
    data = load_dataset(cfg.dataset, on_error=cfg.on_error)
    if cfg.max_users:
        data = replace(data, user_ids=data.user_ids[: cfg.max_users], sequences=data.sequences[: cfg.max_users])
    return data, leave_one_out(data, cfg.max_history)


def run_record(cfg: Any, command: str | None, accelerator, start: float) -> dict[str, Any]:
    """The fields every results file shares."""
    return {"name": cfg.name, "command": command or "python " + " ".join(sys.argv), "seeds": cfg.seeds,
            "hardware": hardware(), "processes": accelerator.num_processes,
            "wall_seconds": time.perf_counter() - start, "config": to_dict(cfg)}


def write_result(result: dict[str, Any], results_dir: str, lines: list[str]) -> Path:
    out = Path(results_dir) / f"{result['name']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float))
    for line in [*lines, f"wrote {out}"]:
        print(f"[genrec] {line}", flush=True)
    return out


def format_metrics(metrics: dict[str, float], std: dict[str, float] | None = None) -> str:
    return " ".join(f"{k}={v:.4f}" + (f"±{std[k]:.4f}" if std else "") for k, v in metrics.items())


def run(cfg: SeqRunConfig, command: str | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    accelerator = make_accelerator(cfg.train, Path(cfg.output_dir) / cfg.name)
    data, splits = load_data(cfg.data)
    embeddings = item_embeddings(data.catalog, progress=accelerator.is_main_process)
    pop = popularity_metrics(popularity(data), splits.test)
    per_seed = [run_seed(cfg, seed, data, splits, embeddings, accelerator) for seed in cfg.seeds]
    mean, std = summarize(per_seed)
    result = {
        **run_record(cfg, command, accelerator, start),
        "mode": cfg.mode,
        "dataset": {k: v for k, v in data.stats().items() if k != "sequence_length"},
        "protocol": "leave-one-out, history<=%d, full ranking over %d items, beam=%d, top-%d" % (
            cfg.data.max_history, data.num_items, cfg.decode.beam, cfg.decode.topk),
        "metrics": mean,
        "metrics_std": std,
        "popularity": pop,
        "per_seed": per_seed,
    }
    if accelerator.is_main_process:
        write_result(result, cfg.results_dir, [f"popularity baseline: {format_metrics(pop)}",
                                               f"{cfg.name} test over {len(cfg.seeds)} seed(s): {format_metrics(mean, std)}"])
    return result
