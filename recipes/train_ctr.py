"""CTR with Mixture-of-Codes: the grid of backbone x representation x scaling factor x fusion, by AUC.

    accelerate launch recipes/train_ctr.py                                   # Beauty, full grid, 3 seeds
    accelerate launch recipes/train_ctr.py --config recipes/configs/ctr_sports.yaml
    accelerate launch recipes/train_ctr.py 'grid.backbones=[deepfm]' 'grid.scales=[1]' seeds=[42]

Writes results/<name>.json with one row per (backbone, representation, scale, fusion): mean and std
of test AUC and logloss over the seeds. Finished fits are kept under runs/<name>/ and skipped on a re-run.
"""
from __future__ import annotations

import argparse
import sys

from genrec.config import load_config
from genrec.ctr import CtrRunConfig, run_ctr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    cfg = load_config(CtrRunConfig, args.config, args.overrides)
    run_ctr(cfg, command="accelerate launch recipes/train_ctr.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
