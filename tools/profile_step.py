"""Where a training step of the shipped model spends its time, on this CPU (`torch.profiler`).

    python tools/profile_step.py --out results/profile_step_cpu.json
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python tools/profile_step.py --out results/profile_step_avx2.json

Profiles `--steps` optimizer steps (after two warm-up steps) of the shipped model (`SeqRunConfig()`: every position,
the item-table decoder, 128 rows a step) on real Beauty training rows, with the item codes a random unique
assignment with the real level sizes (as in `tools/bench_precision.py`). Reports the forward's parts (encoder, dense
head, decoder, code head), the backward, the optimizer step, and the ops with the most time of their own. The
second command approximates an AVX2-only CPU on one with AVX-512/AMX: no native bf16, so `auto` runs in fp32.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from bench_precision import fixed_batches, tasks
from genrec.data import load_dataset
from genrec.experiments.harness import hardware
from genrec.experiments.seq import SeqRunConfig

PARTS = ("encoder", "dense head", "decoder", "code head", "backward", "optimizer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="results/profile_step_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = SeqRunConfig()
    rows = cfg.train.batch_size
    task, _ = tasks(load_dataset("beauty"), {"sasrec_id": 256, "genrec_window": 256, "genrec_every_position": rows},
                    cfg.model.item_score_precision)["genrec_every_position"]
    task.distill_weight = cfg.objective.distill_weight  # the main job's objective (bench_precision times the benchmark's)
    model = task.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = fixed_batches(task, rows, args.steps + 2)

    def step(indices: torch.Tensor) -> None:
        loss, _ = task.loss(model, task.batch(indices, torch.device("cpu")))
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    for indices in batches[:2]:  # warm-up
        step(indices)
    targets = sum(task.targets_in(indices) for indices in batches[2:])
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for indices in batches[2:]:
            step(indices)
    seconds = time.perf_counter() - start
    events = prof.key_averages()
    total_us = sum(e.self_cpu_time_total for e in events)
    parts = {p: next((e.cpu_time_total for e in events if e.key == p), 0.0) / total_us for p in PARTS}
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]
    record = {
        "command": "python tools/profile_step.py " + f"--steps {args.steps} --threads {args.threads} --out {args.out}",
        "hardware": hardware(), "model": "SeqRunConfig() (the shipped model), item codes random with real level sizes",
        "rows_per_step": rows, "steps": args.steps, "targets_per_second_under_profiler": targets / seconds,
        "share_of_step": {p: round(v, 3) for p, v in parts.items()},
        "top_ops_by_own_time": [{"op": e.key, "share": round(e.self_cpu_time_total / total_us, 3), "calls": e.count}
                                for e in top],
    }
    print(json.dumps(record, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
