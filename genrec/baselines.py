"""Discriminative baselines in the generative path's harness: popularity and SASRec-CE.

Same data, splits, loop, early stopping, checkpoints and metric code as `genrec.pipeline`.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from genrec.config import save_config, to_dict
from genrec.data import leave_one_out, load_dataset, popularity
from genrec.models.sasrec import SasRecConfig
from genrec.pipeline import DataConfig, hardware, summarize
from genrec.tasks import SasRecTask, popularity_metrics
from genrec.training.loop import TrainConfig, Trainer, make_accelerator


def _sasrec_train() -> TrainConfig:
    return TrainConfig(epochs=100, batch_size=256, lr=1e-3, weight_decay=0.0, warmup_steps=100, eval_every=1,
                       patience=5, monitor="ndcg@10")


@dataclass
class BaselineRunConfig:
    name: str = "beauty_baselines"
    output_dir: str = "runs"
    results_dir: str = "results"
    seeds: list[int] = field(default_factory=lambda: [42])
    eval_batch_size: int = 1024
    data: DataConfig = field(default_factory=DataConfig)
    sasrec: SasRecConfig = field(default_factory=SasRecConfig)
    train: TrainConfig = field(default_factory=_sasrec_train)


def run_baselines(cfg: BaselineRunConfig, command: str | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    accelerator = make_accelerator(cfg.train)
    data = load_dataset(cfg.data.dataset, on_error=cfg.data.on_error)
    if cfg.data.max_users:
        data = replace(data, user_ids=data.user_ids[: cfg.data.max_users], sequences=data.sequences[: cfg.data.max_users])
    splits = leave_one_out(data, cfg.data.max_history)
    sasrec_cfg = replace(cfg.sasrec, max_history=cfg.data.max_history)
    per_seed = []
    for seed in cfg.seeds:
        run_dir = Path(cfg.output_dir) / cfg.name / f"sasrec_id_seed_{seed}"
        torch.manual_seed(seed)
        task = SasRecTask(splits, data.num_items, sasrec_cfg, cfg.eval_batch_size)
        fit = Trainer(replace(cfg.train, seed=seed), run_dir, accelerator.mixed_precision).fit(task)
        model = fit.pop("model")
        test = task.evaluate(model, "test", accelerator)
        if accelerator.is_main_process:
            print(f"[genrec] sasrec_id seed {seed} test: " + " ".join(f"{k}={v:.4f}" for k, v in test.items()), flush=True)
            save_config(cfg, run_dir / "run_config.yaml")
        per_seed.append({"seed": seed, "test": test, **fit})
    mean, std = summarize(per_seed)
    result = {
        "name": cfg.name,
        "command": command or "python " + " ".join(sys.argv),
        "protocol": f"leave-one-out, history<={cfg.data.max_history}, full ranking over {data.num_items} items "
                    "(score ties broken by item index)",
        "seeds": cfg.seeds,
        "models": {
            "popularity": {"metrics": popularity_metrics(popularity(data), splits.test)},
            "sasrec_id": {"metrics": mean, "metrics_std": std, "per_seed": per_seed},
        },
        "hardware": hardware(),
        "processes": accelerator.num_processes,
        "wall_seconds": time.perf_counter() - start,
        "config": to_dict(cfg),
    }
    if accelerator.is_main_process:
        out = Path(cfg.results_dir) / f"{cfg.name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, default=float))
        for model_name, entry in result["models"].items():
            print(f"[genrec] {model_name}: " + " ".join(f"{k}={v:.4f}" for k, v in entry["metrics"].items()))
        print(f"[genrec] wrote {out}")
    return result
