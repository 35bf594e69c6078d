"""Re-evaluate finished baseline fits on their test users with fp32 scores, and with the same scores
rounded to bf16: what a bf16 autocast evaluation did before scores were kept in fp32. Measures how far
the tie rule, rather than the model, decided the earlier bf16-scored numbers.

For a jointly trained tokenizer (`sasrec_unified`) it also counts the items whose code tuple changes
when the tokenizer's encoder runs under bf16 autocast, as it does during training and the training
process's evaluation, and scores with that bf16-built item table: the quantizer itself is fp32, but
a discrete code choice amplifies the encoder's rounding.

    python tools/rescore_baseline.py runs/sports_baselines_cpu_sasrec_id_s1/sasrec_id_seed_1 ... \
        --out results/score_precision_sports.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from genrec.baselines import load_baseline
from genrec.evaluation.ranking import metrics_from_ranks, target_ranks_from_scores
from genrec.quantize import SemanticTokenizer


def _bf16(device: torch.device) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16)


@torch.no_grad()
def code_flips(tokenizer: SemanticTokenizer, item_text: torch.Tensor) -> dict:
    """Items whose code tuple differs between an fp32 and a bf16-autocast encoder."""
    fp32 = tokenizer.quantizer(tokenizer.encode(item_text)).codes
    with _bf16(item_text.device):
        bf16 = tokenizer.quantizer(tokenizer.encode(item_text)).codes
    changed = fp32 != bf16
    return {"items": len(fp32), "changed": changed.any(1).sum().item(), "changed_per_level": changed.sum(0).tolist()}


@torch.no_grad()
def rescore(folder: str, batch_size: int = 1024) -> dict:
    saved = load_baseline(folder)
    model, test = saved.task.model, saved.task.data["test"]
    history, targets = test["history"], test["target"]
    table = model.item_table()
    joint_tokenizer = model.unified is not None and model.unified.tokenizer is not None
    if joint_tokenizer:  # the item table as the training process built it for its own evaluation
        with _bf16(table.device):
            bf16_table = model.item_table().float()
    ranks = {"fp32": [], "bf16": []} | ({"bf16_table": []} if joint_tokenizer else {})
    ties = []
    for rows in torch.arange(len(targets)).split(batch_size):
        scores, target = model(history[rows], table), targets[rows]
        rounded = scores.bfloat16().float()
        ranks["fp32"].append(target_ranks_from_scores(scores, target))
        ranks["bf16"].append(target_ranks_from_scores(rounded, target))
        ties.append((rounded == rounded.gather(1, target.unsqueeze(1))).sum(1) - 1)  # other items tied with the target
        if joint_tokenizer:
            ranks["bf16_table"].append(target_ranks_from_scores(model(history[rows], bf16_table), target))
    out = {name: metrics_from_ranks(torch.cat(r)) for name, r in ranks.items()}
    ties = torch.cat(ties).float()
    row = {"run": str(folder), "model": saved.model_name, "dataset": saved.cfg.data.dataset, "users": len(targets),
           "metrics_fp32": out["fp32"], "metrics_bf16_scores": out["bf16"],
           "bf16_items_tied_with_target": {"mean": ties.mean().item(), "median": ties.median().item()}}
    if joint_tokenizer:
        row["metrics_bf16_item_table"] = out["bf16_table"]
        row["codes_changed_by_bf16_encoder"] = code_flips(model.unified.tokenizer, model.unified.item_text)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="finished fits: runs/<name>/<model>_seed_<s>")
    parser.add_argument("--out", help="write the comparison as JSON")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = []
    for folder in args.runs:
        row = rescore(folder)
        rows.append(row)
        a, b = row["metrics_fp32"], row["metrics_bf16_scores"]
        print(f"{folder}: " + " ".join(f"{k} {a[k]:.4f}->{b[k]:.4f}" for k in a)
              + f" (bf16 ties with the target: mean {row['bf16_items_tied_with_target']['mean']:.1f} items)", flush=True)
        if "codes_changed_by_bf16_encoder" in row:
            c, t = row["codes_changed_by_bf16_encoder"], row["metrics_bf16_item_table"]
            print(f"  bf16 encoder: {c['changed']} of {c['items']} items change code tuple (per level "
                  f"{c['changed_per_level']}); scored with that table: " + " ".join(f"{k} {t[k]:.4f}" for k in t),
                  flush=True)
    if args.out:
        record = {"command": "python tools/rescore_baseline.py " + " ".join(args.runs) + f" --out {args.out}",
                  "seconds": time.perf_counter() - start, "rows": rows}
        Path(args.out).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
