"""Where a cold-start run's new items stand: the dense head's rank of each cold test target among all items and among
the new items only, and the beam's share of new items in its top 10, with the run's own setting, with the new items'
score offset at zero, and with the text view off.

    python tools/analyze_coldstart.py --run runs/<cold-start run>/seed_42 --out results/coldstart_probe/analysis.json

A run trained with `data.new_items` saves its model with the new items added; this reads it back with the same data
and splits (`SavedRun`) and scores the test users again. Separates the two things a cold target needs: a good rank
among the new items (the content) and a place among the known ones (the offset).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from genrec.errors import GenrecError, cli
from genrec.evaluation.ranking import new_item_share, target_ranks_from_scores
from genrec.experiments.harness import hardware
from genrec.experiments.seq import SavedRun


@torch.no_grad()
def dense_ranks(model, history: torch.Tensor, target: torch.Tensor, known: int, batch: int = 1024) -> dict[str, float]:
    """Recall@10 of cold targets by the dense head, among all items and among the new items only."""
    among_all, among_new = [], []
    table = model.items.table()
    for rows in torch.arange(len(target)).split(batch):
        scores = model.dense_scores(history[rows], None, table)
        among_all.append(target_ranks_from_scores(scores, target[rows]))
        among_new.append(target_ranks_from_scores(scores[:, known:], target[rows] - known))
    return {"dense_cold_recall@10_among_all_items": (torch.cat(among_all) < 10).float().mean().item(),
            "dense_cold_recall@10_among_new_items": (torch.cat(among_new) < 10).float().mean().item()}


@torch.no_grad()
def beam_share(model, history: torch.Tensor, beam: int, topk: int, known: int, batch: int = 512) -> float:
    found = torch.cat([model.generate(history[rows], None, beam, topk)[0] for rows in torch.arange(len(history)).split(batch)])
    return new_item_share(found, known)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="runs/<name>/seed_<s> of a run with data.new_items")
    parser.add_argument("--users", type=int, default=2000, help="test users for the beam's new-item share (0 = all)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    run = SavedRun.load(args.run)
    known, model = run.splits.known, run.model
    if known is None or model.new_from is None:
        raise GenrecError(f"{args.run} is not a cold-start run with its new items added (data.new_items)")
    test = run.splits.test
    history, target = torch.from_numpy(test.history), torch.from_numpy(test.target)
    cold = target >= known
    sample = torch.arange(len(target))[: args.users or len(target)]
    decode = run.cfg.decode
    settings = {"as run": (model.new_item_bias, model.text_view_weight), "offset 0": (0.0, model.text_view_weight),
                "text view off": (model.new_item_bias, 0.0), "both off": (0.0, 0.0)}
    rows = {}
    for name, (bias, weight) in settings.items():
        model.new_item_bias, model.text_view_weight = bias, weight
        rows[name] = {"new_item_bias": bias, "text_view_weight": weight,
                      **dense_ranks(model, history[cold], target[cold], known),
                      f"beam_new_share@{decode.topk}": beam_share(model, history[sample], decode.beam, decode.topk, known)}
        print(f"{name:14s} " + " ".join(f"{k} {v:.4f}" for k, v in rows[name].items()), flush=True)
    if args.out:
        result = {"name": Path(args.out).stem, "command": "python tools/analyze_coldstart.py " + " ".join(sys.argv[1:]),
                  "run": args.run, "hardware": hardware(), "seconds": round(time.perf_counter() - start, 1),
                  "cold_targets": int(cold.sum()), "new_items": model.num_items - known, "settings": rows}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    cli(main)
