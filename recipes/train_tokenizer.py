"""Train a semantic-ID tokenizer on a dataset's item embeddings and save its table.

    python recipes/train_tokenizer.py --dataset beauty                      # -> runs/tokenizer_beauty/
    python recipes/train_tokenizer.py --dataset scientific distances=euclidean collision=reassign

The saved folder (semantic_ids.safetensors + semantic_ids.json) can be given to train_seq.py as
`tokenizer_path=...`. Overrides are TokenizerFitConfig keys (the architecture, plus `train.*` and `revive_dead_codes`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from genrec.config import load_config
from genrec.data import item_embeddings, load_dataset
from genrec.errors import cli
from genrec.evaluation.codes import code_report
from genrec.experiments.tokenizer import TokenizerFitConfig, fit_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--config", default=None, help="YAML with TokenizerFitConfig keys")
    parser.add_argument("--out", default=None, help="output folder (default runs/tokenizer_<dataset>)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    cfg = load_config(TokenizerFitConfig, args.config, ["train.progress=true", *args.overrides])
    data = load_dataset(args.dataset)
    x = item_embeddings(data.catalog)
    out = Path(args.out or f"runs/tokenizer_{args.dataset}")
    tokenizer, table, _ = fit_tokenizer(x, cfg, out / "train")
    table.save(out)
    report = code_report(tokenizer.codes(torch.as_tensor(x)).numpy(), cfg.codebook_size)
    report.update(levels_after_dedup=table.num_levels, level_sizes=table.meta.level_sizes, distances=table.meta.distances)
    print(json.dumps(report, indent=1))
    print(f"saved {out}/semantic_ids.safetensors and semantic_ids.json")


if __name__ == "__main__":
    cli(main)
