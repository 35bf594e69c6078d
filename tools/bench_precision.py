"""Training speed of each benchmark model in fp32 and under bf16 autocast on this CPU, one thread.

    python tools/bench_precision.py --steps 20 --out results/precision_cpu.json

Times `--steps` optimizer steps (after two warm-up steps) of SASRec-CE (`sasrec_id`), the sliding-window
generative model and the every-position one, on the Beauty catalogue and its real training examples, with
the settings `tools/bench_budget.py` uses. The item codes are a random unique assignment with the real
level sizes: speed does not depend on which item holds which code (nearly: below the root the "mass" node
head scores the items under each prefix, up to ~200 under a first-level code on the real codes, ~60 here).
bf16 pays off only where matrices are large enough for the AMX units to beat the casts autocast adds.
The every-position model is timed with `d_ff` 256, the CPU config's; the benchmark now trains 128
(docs/results/budget.md), whose steps are a few percent faster.
`--compile` adds fp32 steps under `torch.compile` (what `train.compile=true` does) with their warm-up time.
`--models`, `--rows` (every-position rows per step) and `--item-score-precision` time one setting of one model
(the defaults are the benchmark's):

    python tools/bench_precision.py --steps 20 --models genrec_every_position --rows 128 \
        --item-score-precision fp32 --out results/precision_cpu_rows128_fp32_scores.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from genrec.data import leave_one_out, load_dataset
from genrec.data.splits import training_rows
from genrec.experiments.baselines import SasRecTask
from genrec.experiments.harness import hardware
from genrec.experiments.seq import DecodeConfig
from genrec.experiments.seq.tasks import GenerativeTask
from genrec.models.item_embedding import ItemEmbedding
from genrec.models.recommender import GenerativeRecommender
from genrec.models.sasrec import SasRecConfig
from genrec.models.seq2seq import Seq2SeqConfig

CPU_T5 = Seq2SeqConfig()  # the shipped model's size (d_ff 256)


def tasks(data, batch: dict[str, int], item_score_precision: str = "auto") -> dict[str, tuple]:
    splits = leave_one_out(data, 20)
    n = data.num_items
    index = np.random.default_rng(0).permutation(n)  # a unique (level 1, level 2, suffix) per item
    codes = torch.from_numpy(np.stack([index % 256, (index // 256) % 256, index % 7, np.zeros(n, np.int64)], 1))

    def generative(every_position: bool) -> GenerativeTask:
        torch.manual_seed(0)
        items = ItemEmbedding(torch.randn(n, 32), 16, CPU_T5.d_model)
        # the every-position model with the item-table decoder; the sliding window with TIGER's
        extra = ({"item_score_precision": item_score_precision} if every_position else {"decoder": "tiger", "dropout": 0.1})
        cfg = Seq2SeqConfig(**{**CPU_T5.__dict__, **extra})
        model = GenerativeRecommender(codes, [256] * 4, cfg, 20, items, causal=every_position)
        rows = training_rows(data, 20) if every_position else None
        # and with the distillation loss tools/bench_budget.py trains it with
        return GenerativeTask(model, splits, DecodeConfig(), 0, rows, distill_weight=1.0 if every_position else 0.0)

    torch.manual_seed(0)
    return {"sasrec_id": (SasRecTask(splits, n, SasRecConfig()), batch["sasrec_id"]),
            "genrec_window": (generative(False), batch["genrec_window"]),
            "genrec_every_position": (generative(True), batch["genrec_every_position"])}


def fixed_batches(task, rows: int, count: int) -> list[torch.Tensor]:
    """`count` batches of `rows` training-example indices, the same in every run and tool (a seeded permutation)."""
    order = torch.randperm(task.num_train_examples(), generator=torch.Generator().manual_seed(0))
    return [order[i * rows : (i + 1) * rows] for i in range(count)]


def time_steps(task, batch_size: int, steps: int, bf16: bool, compiled: bool = False) -> dict[str, float]:
    """Seconds per optimizer step after the warm-up steps (2; 20 compiled, as each new batch shape recompiles
    at first), whose time is reported too: what a compiled run pays before its steps get faster."""
    model = task.model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loss_fn = torch.compile(task.loss, dynamic=True) if compiled else task.loss  # as `train.compile` does
    warmup = 20 if compiled else 2
    targets, begin, start = 0, time.perf_counter(), 0.0
    for i, indices in enumerate(fixed_batches(task, batch_size, steps + warmup)):
        if i == warmup:
            start, targets = time.perf_counter(), 0
        batch = task.batch(indices, torch.device("cpu"))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = loss_fn(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        targets += task.targets_in(indices)
    seconds = time.perf_counter() - start
    return {"seconds_per_step": seconds / steps, "targets_per_second": targets / seconds,
            "warmup_steps": warmup, "warmup_seconds": start - begin}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default="results/precision_cpu.json")
    parser.add_argument("--models", nargs="+", default=["sasrec_id", "genrec_window", "genrec_every_position"])
    parser.add_argument("--rows", type=int, default=64, help="every-position rows per step (the benchmark's batch)")
    parser.add_argument("--item-score-precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="the dense head's matmul (in the fp32 timing too; auto: bf16 where native)")
    parser.add_argument("--compile", action="store_true", help="also time fp32 steps under torch.compile (train.compile)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    batch = {"sasrec_id": 256, "genrec_window": 256, "genrec_every_position": args.rows}
    rows = {}
    for name, (task, batch_size) in tasks(load_dataset("beauty"), batch, args.item_score_precision).items():
        if name not in args.models:
            continue
        rows[name] = {"batch_size": batch_size, "fp32": time_steps(task, batch_size, args.steps, False),
                      "bf16": time_steps(task, batch_size, args.steps, True)}
        fp32, bf16 = rows[name]["fp32"]["targets_per_second"], rows[name]["bf16"]["targets_per_second"]
        rows[name]["fastest"] = "bf16" if bf16 > fp32 else "fp32"
        print(f"{name:22s} fp32 {fp32:6.0f} targets/s  bf16 {bf16:6.0f} targets/s  -> {rows[name]['fastest']}", flush=True)
        if args.compile:
            rows[name]["compiled_fp32"] = compiled = time_steps(task, batch_size, args.steps, False, compiled=True)
            print(f"{name:22s} compiled fp32 {compiled['targets_per_second']:6.0f} targets/s after "
                  f"{compiled['warmup_seconds']:.0f} s of warm-up", flush=True)
    command = f"python tools/bench_precision.py --steps {args.steps} --models {' '.join(args.models)} --rows {args.rows} "
    command += f"--item-score-precision {args.item_score_precision}"
    command += " --compile" * args.compile
    record = {"command": command + f" --out {args.out}",
              "hardware": hardware(), "dataset": "beauty", "models": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
