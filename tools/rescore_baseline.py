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

from genrec.experiments.score_precision import rescore


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
