"""Popularity and SASRec-CE (plain ID embeddings) under the exact protocol of train_seq.py.

    accelerate launch recipes/train_baseline.py                                  # Beauty, seed 42
    accelerate launch recipes/train_baseline.py data.dataset=sports name=sports_baselines seeds=[1,2,3]

Writes results/<name>.json with one entry per model.
"""
from __future__ import annotations

import argparse
import sys

from genrec.baselines import BaselineRunConfig, run_baselines
from genrec.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    cfg = load_config(BaselineRunConfig, args.config, args.overrides)
    run_baselines(cfg, command="accelerate launch recipes/train_baseline.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
