"""Training speed of the every-position model with the dense head's matmul in fp32 and in bf16, side by side.

    python tools/bench_item_scores.py --rounds 4 --out results/bench_item_scores_cpu.json

`model.item_score_precision` fp32 and bf16 are switched on one model (the benchmark's: the item-table decoder,
distillation weight 1, 64 rows a step) and timed in turn, forward and backward on the same fixed batches of real
Beauty training rows, `--rounds` times interleaved, one thread: a machine's speed drifts by ±10% over minutes, so
separate runs cannot resolve a difference of a few percent. Where bf16 is native (AMX) it is the faster; where it
is emulated (AVX2 only) it is several times slower, which is why `auto` picks by the hardware. The item codes are a
random unique assignment with the real level sizes (as in `tools/bench_precision.py`).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench_precision import fixed_batches, tasks
from genrec.data import load_dataset
from genrec.experiments.harness import hardware

SETTINGS = {"fp32": "fp32", "bf16 dense matmul": "bf16"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--out", default="results/bench_item_scores_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    batch = {"sasrec_id": 256, "genrec_window": 256, "genrec_every_position": 64}
    task, rows = tasks(load_dataset("beauty"), batch)["genrec_every_position"]
    model = task.model.train()
    chosen = fixed_batches(task, rows, args.batches)
    batches = [task.batch(indices, torch.device("cpu")) for indices in chosen]
    targets = sum(task.targets_in(indices) for indices in chosen)

    def targets_per_second() -> float:
        start = time.perf_counter()
        for b in batches:
            loss, _ = task.loss(model, b)
            loss.backward()
            model.zero_grad(set_to_none=True)
        return targets / (time.perf_counter() - start)

    targets_per_second()  # warm-up
    speeds: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for _ in range(args.rounds):
        for name, precision in SETTINGS.items():
            model.seq2seq.item_score_precision = precision
            speeds[name].append(targets_per_second())
    base = float(np.median(speeds["fp32"]))
    for name, values in speeds.items():
        print(f"{name:34s} {np.median(values):6.0f} targets/s (median of {args.rounds}; x{np.median(values) / base:.2f})")
    record = {"command": f"python tools/bench_item_scores.py --rounds {args.rounds} --batches {args.batches} --out {args.out}",
              "hardware": hardware(), "dataset": "beauty", "rows_per_step": rows,
              "targets": targets, "what": "forward and backward, no optimizer step",
              "targets_per_second": {name: {"median": float(np.median(v)), "rounds": v} for name, v in speeds.items()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
