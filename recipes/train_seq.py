"""Train and evaluate the generative recommender (semantic-ID tokenizer + encoder-decoder).

    accelerate launch recipes/train_seq.py                      # beauty_gpu.yaml on CUDA, else beauty_cpu.yaml
    accelerate launch recipes/train_seq.py --config recipes/configs/sports_gpu.yaml seeds=[1,2,3]
    python recipes/train_seq.py train.epochs=2 decode.beam=10   # any config key can be overridden

Writes results/<name>.json; checkpoints and the semantic-ID table go under runs/<name>/seed_<s>/,
and an interrupted run resumes from there.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from genrec.config import load_config
from genrec.pipeline import SeqRunConfig, run

CONFIGS = Path(__file__).parent / "configs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="YAML config (default: beauty_gpu.yaml with CUDA, else beauty_cpu.yaml)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.epochs=5 seeds=[1,2,3]")
    args = parser.parse_args()
    path = args.config or CONFIGS / ("beauty_gpu.yaml" if torch.cuda.is_available() else "beauty_cpu.yaml")
    cfg = load_config(SeqRunConfig, path, args.overrides)
    run(cfg, command="accelerate launch recipes/train_seq.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
