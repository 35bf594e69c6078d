"""Load a dataset, print its statistics as JSON, and (optionally) embed and cache its item text.

    python tools/prepare_data.py --dataset beauty --stats
    python tools/prepare_data.py --dataset beauty --embed      # fills the embedding cache
    python tools/prepare_data.py --dataset ratings.csv table.columns.user=userId table.min_rating=4 --stats

Overrides are the run config's `data.*` keys without the `data.` prefix (`table.*`, `min_length`, `on_error`).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from genrec.config import load_config
from genrec.data import item_embeddings, load_dataset
from genrec.data.embeddings import cache_dir, resolve_precision
from genrec.errors import cli
from genrec.experiments.harness import DataConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="beauty", help="beauty | sports | scientific | a path")
    parser.add_argument("--stats", action="store_true", help="print dataset statistics as JSON")
    parser.add_argument("--embed", action="store_true", help="compute (or reload) item text embeddings")
    parser.add_argument("--refresh", action="store_true", help="recompute embeddings even if cached")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="the text encoder's precision (auto: bf16 where the hardware has it natively)")
    parser.add_argument("--on-error", default="raise", choices=["raise", "drop"])
    parser.add_argument("--out", default=None, help="also write the embedding timing JSON here")
    parser.add_argument("overrides", nargs="*", help="data config keys, e.g. table.columns.user=userId")
    args = parser.parse_args()

    cfg = load_config(DataConfig, None, [f"dataset={args.dataset}", f"on_error={args.on_error}", *args.overrides])
    data = load_dataset(cfg.dataset, on_error=cfg.on_error, min_length=cfg.min_length, table=cfg.table)
    if args.stats or not args.embed:
        print(json.dumps(data.stats(), indent=2))
    if args.embed:
        start = time.perf_counter()
        vectors = item_embeddings(data.catalog, refresh=args.refresh, precision=args.precision)
        report = {"dataset": args.dataset, "embeddings": list(vectors.shape), "refresh": args.refresh,
                  "precision": resolve_precision(args.precision, "cuda" if torch.cuda.is_available() else "cpu"),
                  "seconds": round(time.perf_counter() - start, 2), "threads": torch.get_num_threads(),
                  "device": "cuda" if torch.cuda.is_available() else "cpu", "cache": str(cache_dir() / "embeddings")}
        print(json.dumps(report))
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    cli(main)
