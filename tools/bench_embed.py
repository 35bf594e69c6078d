"""Item-text embedding speed and agreement: all-MiniLM-L6-v2 in fp32 against bf16 autocast, measured in one run.

    python tools/bench_embed.py --dataset beauty --items 2000 --out results/embed_precision_beauty.json

Embeds the same `--items` random items (0 = the whole catalogue) in both precisions with the threads torch
has, and reports seconds, items per second, and the cosine between each item's two vectors. `auto` (the
package's default) picks bf16 only where the hardware has native bf16 units.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from genrec.data import item_texts, load_dataset
from genrec.data.embeddings import encode_texts, resolve_precision
from genrec.experiments.harness import hardware


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--items", type=int, default=2000, help="random items to embed (0 = all)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    texts = item_texts(load_dataset(args.dataset).catalog)
    if args.items:
        texts = [texts[i] for i in np.random.default_rng(0).choice(len(texts), min(args.items, len(texts)), replace=False)]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    vectors, rows = {}, {}
    for precision in ("fp32", "bf16"):
        start = time.perf_counter()
        vectors[precision] = encode_texts(texts, device=device, progress=False, precision=precision)
        seconds = time.perf_counter() - start
        rows[precision] = {"seconds": round(seconds, 2), "items_per_second": round(len(texts) / seconds, 1)}
        print(f"{precision}: {seconds:6.1f} s  {len(texts) / seconds:6.1f} items/s", flush=True)
    cosine = (vectors["fp32"] * vectors["bf16"]).sum(1)
    record = {"command": f"python tools/bench_embed.py --dataset {args.dataset} --items {args.items} --threads {args.threads}"
                         + (f" --out {args.out}" if args.out else ""),
              "hardware": hardware(), "threads": torch.get_num_threads(), "dataset": args.dataset, "items": len(texts), "precisions": rows,
              "speedup_bf16": round(rows["fp32"]["seconds"] / rows["bf16"]["seconds"], 2),
              "cosine_fp32_bf16": {"min": float(cosine.min()), "mean": float(cosine.mean())},
              "auto_picks": resolve_precision("auto", device)}
    print(f"bf16 {record['speedup_bf16']}x faster; cosine to fp32 min {cosine.min():.5f} mean {cosine.mean():.6f}; "
          f"auto picks {record['auto_picks']} here")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
