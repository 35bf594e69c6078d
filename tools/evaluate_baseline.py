"""Evaluate finished SASRec-CE fits again, with the text view added to their scores (each item's cosine to the last
history item's text, times a weight chosen on validation): is the generative model with the view more than SASRec-CE
with the same view? For a cold-start fit, `--calibrate-new-items` also gives the new items the score offset the
generative model's search gets (their share of the catalogue in the validation top 10).

    python tools/evaluate_baseline.py --run runs/budget/budget_beauty_sasrec_id_20min_s1/sasrec_id_seed_1 \
        --text-view 0 2 4 8 16 --out results/text_view/beauty_sasrec_s1.json

Training is untouched; the fit's best weights score the validation users once per weight and the test users once.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator

from genrec.errors import cli
from genrec.experiments.baselines import load_baseline
from genrec.experiments.harness import format_metrics, hardware, item_vectors, load_data
from genrec.files import write_atomic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="runs/<name>/<model>_seed_<s>")
    parser.add_argument("--text-view", type=float, nargs="+", required=True, help="weights to choose from on validation")
    parser.add_argument("--calibrate-new-items", action="store_true", help="a cold-start fit: set the new items' "
                        "score offset on validation, as the generative model's search gets it")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    saved = load_baseline(args.run)
    data, splits = load_data(saved.cfg.data)
    task, accelerator = saved.task, Accelerator(cpu=True)
    task.text = torch.tensor(item_vectors(data, splits, saved.cfg.data, progress=False), dtype=torch.float32)
    task.text_view_weights = args.text_view
    task.before_test(task.model, accelerator)  # chooses the weight on validation
    if args.calibrate_new_items:
        print(f"new items' score offset {task.calibrate(task.model, accelerator):.3f}")
    test = task.evaluate(task.model, "test", accelerator)
    by_weight = ", ".join(f"{w:g} {m['ndcg@10']:.4f}" for w, m in task.text_view_metrics.items())
    print(f"{args.run}: text view weight {task.text_view_weight:g} chosen on validation (N@10 by weight: {by_weight})\n"
          f"test: {format_metrics(test)}")
    if args.out:
        result = {"name": Path(args.out).stem, "command": "python tools/evaluate_baseline.py " + " ".join(sys.argv[1:]),
                  "run": args.run, "model": saved.model_name, "hardware": hardware(),
                  "seconds": round(time.perf_counter() - start, 1), "test": test,
                  "valid_by_text_view_weight": {str(w): m for w, m in task.text_view_metrics.items()}}
        print(f"wrote {write_atomic(args.out, json.dumps(result, indent=1))}")


if __name__ == "__main__":
    cli(main)
