"""CTR with Mixture-of-Codes: the grid of backbone x representation x scaling factor x fusion, by AUC.

    accelerate launch recipes/train_ctr.py                                   # Beauty, full grid, 3 seeds
    accelerate launch recipes/train_ctr.py --config recipes/configs/ctr_sports.yaml
    accelerate launch recipes/train_ctr.py 'grid.backbones=[deepfm]' 'grid.scales=[1]' seeds=[42]

Writes results/<name>.json with one row per (backbone, representation, scale, fusion): mean and std
of test AUC and logloss over the seeds. Finished fits are kept under runs/<name>/ and skipped on a re-run.
"""
from __future__ import annotations

from genrec.config import recipe_cli
from genrec.errors import cli
from genrec.experiments.ctr.grid import CtrRunConfig, run_ctr


def main() -> None:
    cfg, command = recipe_cli(CtrRunConfig, __doc__, "recipes/train_ctr.py")
    run_ctr(cfg, command=command)


if __name__ == "__main__":
    cli(main)
