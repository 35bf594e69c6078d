"""Why every CTR fit scores higher on validation than on test: how well an item's popularity in the training
rows alone ranks each split, beside the grid's own validation-over-test gap.

    python tools/ctr_split_popularity.py --results results/ctr_beauty.json results/ctr_sports.json \
        --out results/ctr_split_popularity.json

The validation positive is each user's second-to-last interaction, the test positive the last, so test items
lie further past the training rows in time. If the items people buy drift, the training rows' popularity
predicts validation better than test, for every model alike; a gap of the same size in every cell of the grid
then says the gap is the split's, not a model's.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from genrec.data import load_dataset
from genrec.data.ctr import SPLITS, CtrSampleConfig, ctr_samples
from genrec.errors import cli


def split_popularity(dataset: str, samples: dict) -> dict:
    """Per split: the positives' mean count among the training positives, the share never seen there, and the
    AUC of that count used as the score."""
    data = load_dataset(dataset)
    splits = ctr_samples(data, CtrSampleConfig(**samples))
    train = splits.train
    count = np.bincount(train.items[train.labels == 1], minlength=splits.num_items)
    out = {}
    for name in SPLITS:
        split = splits.split(name)
        positives = split.items[split.labels == 1]
        out[name] = {"positive_mean_train_count": float(count[positives].mean()),
                     "negative_mean_train_count": float(count[split.items[split.labels == 0]].mean()),
                     "positives_unseen_in_train": float((count[positives] == 0).mean()),
                     "popularity_auc": float(roc_auc_score(split.labels, count[split.items]))}
    return out


def grid_gap(result: dict) -> dict:
    """Mean best validation AUC minus test AUC over every fit of the grid, and its range over cells."""
    per_cell = [np.mean([s["best_valid_auc"] - s["test"]["auc"] for s in row["per_seed"]]) for row in result["rows"]]
    return {"fits": sum(len(row["per_seed"]) for row in result["rows"]), "cells": len(per_cell),
            "mean": float(np.mean(per_cell)), "min": float(np.min(per_cell)), "max": float(np.max(per_cell))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", nargs="+", required=True, help="grid results (their dataset and samples)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    report = {"command": "python tools/ctr_split_popularity.py --results " + " ".join(args.results)
                         + f" --out {args.out}", "datasets": {}}
    for path in args.results:
        result = json.loads(Path(path).read_text())
        dataset = result["config"]["data"]["dataset"]
        pop, gap = split_popularity(dataset, result["config"]["samples"]), grid_gap(result)
        report["datasets"][dataset] = {"results": path, "splits": pop, "grid_valid_minus_test_auc": gap}
        print(f"{dataset}: popularity AUC valid {pop['valid']['popularity_auc']:.4f} test "
              f"{pop['test']['popularity_auc']:.4f}; grid valid - test {gap['mean']:.4f} "
              f"({gap['min']:.4f} to {gap['max']:.4f} over {gap['cells']} cells)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    cli(main)
