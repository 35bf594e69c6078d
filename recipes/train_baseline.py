"""Popularity and SASRec-CE under the exact protocol of train_seq.py: plain ID embeddings
(`sasrec_id`), or unified `[ID ‖ semantic]` items whose tokenizer trains with the model (`sasrec_unified`).

    accelerate launch recipes/train_baseline.py                                  # Beauty, seed 42
    accelerate launch recipes/train_baseline.py data.dataset=sports name=sports_baselines seeds=[1,2,3] \
        'models=[sasrec_id,sasrec_unified]'

Writes results/<name>.json with one entry per model.
"""
from __future__ import annotations

from genrec.config import recipe_cli
from genrec.errors import cli
from genrec.experiments.baselines import BaselineRunConfig, run_baselines


def main() -> None:
    cfg, command = recipe_cli(BaselineRunConfig, __doc__, "recipes/train_baseline.py")
    run_baselines(cfg, command=command)


if __name__ == "__main__":
    cli(main)
