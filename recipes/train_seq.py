"""Train and evaluate the generative recommender (semantic-ID tokenizer + encoder-decoder).

    accelerate launch recipes/train_seq.py                      # beauty_gpu.yaml on CUDA, else the defaults
    accelerate launch recipes/train_seq.py --config recipes/configs/sports_gpu.yaml seeds=[1,2,3]
    python recipes/train_seq.py train.epochs=2 decode.beam=10   # any config key can be overridden

Writes results/<name>.json; checkpoints and the semantic-ID table go under runs/<name>/seed_<s>/,
and an interrupted run resumes from there.
"""
from __future__ import annotations

from pathlib import Path

import torch

from genrec.config import recipe_cli
from genrec.errors import cli
from genrec.experiments.seq import SeqRunConfig, run

CONFIGS = Path(__file__).parent / "configs"


def main() -> None:
    # without a GPU, the dataclass defaults are the shipped CPU model (genrec/experiments/seq/config.py)
    default = CONFIGS / "beauty_gpu.yaml" if torch.cuda.is_available() else None
    cfg, command = recipe_cli(SeqRunConfig, __doc__, "recipes/train_seq.py", default)
    run(cfg, command=command)


if __name__ == "__main__":
    cli(main)
