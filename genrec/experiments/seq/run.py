"""The generative run behind `recipes/train_seq.py`: per seed, tokenizer -> recommender -> test -> saved model."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from genrec.data import popularity
from genrec.experiments.harness import (cold_start_note, fit_and_test, format_metrics, hardware, holding, item_vectors,
                                        load_data, log,
                                        popularity_metrics, run_record, start_fit, summarize, write_result)
from genrec.experiments.seq.config import SeqRunConfig
from genrec.experiments.seq.modes import SeedContext, build_task
from genrec.hardware import use_bf16
from genrec.training import make_accelerator

# how the hybrid ranking is made, recorded in each result (fits before this definition re-scored the plain beam's
# candidates instead)
HYBRID = "; hybrid: beam search guided by the dense head (prefix log-mass), alpha chosen on validation"


def run(cfg: SeqRunConfig, command: str | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    accelerator = make_accelerator(cfg.train, Path(cfg.output_dir) / cfg.name)
    with holding(accelerator, Path(cfg.output_dir) / cfg.name):
        return _run(cfg, command, accelerator, start)


def _run(cfg: SeqRunConfig, command: str | None, accelerator, start: float) -> dict[str, Any]:
    device = accelerator.device
    log(accelerator, f"{hardware()}; mixed precision {accelerator.mixed_precision}, dense head's matmul in training "
                     f"{'bf16' if use_bf16(cfg.model.item_score_precision, device, 'model.item_score_precision') else 'fp32'}")
    data, splits = load_data(cfg.data)
    embeddings = item_vectors(data, splits, cfg.data, progress=accelerator.is_main_process)
    pop = popularity_metrics(popularity(data, splits.known), splits.test, splits.known)
    per_seed = []
    for seed in cfg.seeds:
        run_dir = Path(cfg.output_dir) / cfg.name / f"seed_{seed}"
        start_fit(cfg, run_dir, accelerator)
        torch.manual_seed(seed)
        context = SeedContext(cfg, seed, data, splits, embeddings, run_dir, accelerator)
        task = build_task(context)
        model, record = fit_and_test(task, cfg.train, seed, run_dir, accelerator, cfg.mode)
        context.keep_tokenizer(model)
        if accelerator.is_main_process:
            model.save_pretrained(run_dir / "model")
        per_seed.append({**record, "mode": cfg.mode})
    mean, std = summarize(per_seed)
    result = {
        **run_record(cfg, command, accelerator, start),
        "mode": cfg.mode,
        "dataset": {k: v for k, v in data.stats().items() if k != "sequence_length"},
        "protocol": "leave-one-out, history<=%d, full ranking over %d items, beam=%d, top-%d" % (
            cfg.data.max_history, data.num_items, cfg.decode.beam, cfg.decode.topk) + (
            HYBRID if cfg.objective.kind == "every_position" else "") + cold_start_note(splits),
        "metrics": mean,
        "metrics_std": std,
        "popularity": pop,
        "per_seed": per_seed,
    }
    if accelerator.is_main_process:
        write_result(result, cfg.results_dir, [f"popularity baseline: {format_metrics(pop)}",
                                               f"{cfg.name} test over {len(cfg.seeds)} seed(s): {format_metrics(mean, std)}"])
    return result
