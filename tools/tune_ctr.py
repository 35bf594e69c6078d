"""Tune CTR backbones on validation AUC: a sweep of settings, each trained on the same cells and seed.

    python tools/tune_ctr.py --config recipes/configs/ctr_beauty.yaml --backbones deepfm dcnv2 \\
        --sweep train.lr=1e-3,3e-3 model.embedding_l2=0,1e-3,1e-2
    python tools/tune_ctr.py --config recipes/configs/ctr_beauty.yaml ... --collect --out results/ctr_tuning_beauty.json

Every combination of the `--sweep` values is one setting (over the shared `train`/`model` sections: a
backbone's own `backbone.<name>.*` settings are cleared here); each setting trains every backbone on the
`--representations` at `--scale` (fusion off) with one `--seed`, through the grid's own fits. Fits are saved
under runs/<name>_tuning/<setting>/ and reused, and a fit being trained is held by a lock in its folder: the
same command run in several processes side by side shares the sweep, and an interrupted sweep resumes.
`--collect` trains nothing: it reads the finished fits and writes, per backbone, every setting's
validation and test AUC and the setting with the best mean validation AUC over the representations (the
choice never looks at test).
"""
from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from genrec.config import load_config
from genrec.experiments.ctr.grid import CtrRunConfig, TunedBackbones, fit_unless_held, prepare_inputs, saved_cell
from genrec.experiments.harness import hardware
from genrec.files import write_atomic
from genrec.training import make_accelerator


def settings_from(sweep: list[str]) -> list[dict[str, str]]:
    """`["train.lr=1e-3,3e-3", "model.dropout=0.1"]` -> every combination, as override dicts."""
    keys, values = [], []
    for item in sweep:
        key, _, raw = item.partition("=")
        if not raw:
            raise SystemExit(f"--sweep {item!r}: expected key=v1,v2,...")
        keys.append(key)
        values.append(raw.split(","))
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def tag(setting: dict[str, str]) -> str:
    return "_".join(f"{k.split('.')[-1]}={v}" for k, v in setting.items()) or "defaults"


def choose(rows: list[dict[str, Any]], backbones: list[str], representations: int) -> dict[str, Any]:
    """Per backbone, the setting with the best mean validation AUC among those finished on every representation."""
    best: dict[str, Any] = {}
    for backbone in backbones:
        by_setting: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            if r["backbone"] == backbone:
                by_setting.setdefault(tag(r["setting"]), []).append(r)
        complete = {k: v for k, v in by_setting.items() if len(v) == representations}
        if not complete:
            continue
        chosen = max(complete, key=lambda k: np.mean([r["valid_auc"] for r in complete[k]]))
        best[backbone] = {"setting": complete[chosen][0]["setting"],
                          "mean_valid_auc": float(np.mean([r["valid_auc"] for r in complete[chosen]])),
                          "valid_auc": {r["representation"]: r["valid_auc"] for r in complete[chosen]},
                          "test_auc": {r["representation"]: r["test_auc"] for r in complete[chosen]}}
        print(f"best for {backbone}: {chosen} (mean valid auc {best[backbone]['mean_valid_auc']:.4f})")
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="recipes/configs/ctr_beauty.yaml")
    p.add_argument("--backbones", nargs="+", default=["deepfm", "deepim", "autoint+", "dcnv2"])
    p.add_argument("--representations", nargs="+", default=["id", "moc"])
    p.add_argument("--scale", type=int, default=1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--sweep", nargs="*", default=[], help="key=v1,v2,... (config keys, e.g. train.lr=1e-3,3e-3)")
    p.add_argument("--set", nargs="*", default=[], help="fixed overrides for every setting")
    p.add_argument("--collect", action="store_true", help="train nothing; report the finished fits")
    p.add_argument("--out", default=None, help="JSON to write with --collect")
    args = p.parse_args()

    base = load_config(CtrRunConfig, args.config, args.set)
    # fixed training/model overrides are part of every setting's name, so sweeps around different fixed values
    # (e.g. dropout at each backbone's chosen learning rate) never share folders
    fixed = dict(item.split("=", 1) for item in args.set if item.startswith(("train.", "model.")))
    settings = [{**fixed, **s} for s in settings_from(args.sweep)]
    jobs = [(s, b, r) for s in settings for b in args.backbones for r in args.representations]
    accelerator = make_accelerator(base.train)
    inputs = prepare_inputs(base, accelerator, args.representations)  # codes cached under runs/<name>/tokenizers
    rows: list[dict[str, Any]] = []
    for setting, backbone, representation in jobs:
        cfg = load_config(CtrRunConfig, args.config, args.set + [f"{k}={v}" for k, v in setting.items() if k not in fixed])
        # the sweep is over the shared sections: no backbone keeps settings of its own here
        cfg = replace(cfg, name=f"{base.name}_tuning/{tag(setting)}", backbone=TunedBackbones.shared())
        cell = (backbone, representation, args.scale, False)
        fields = inputs.fields(cfg, representation, args.scale)
        if args.collect:
            record = saved_cell(cfg, fields, cell, args.seed)
            if record is None:
                print(f"missing: {backbone} {representation} {tag(setting)}")
                continue
        else:
            record = fit_unless_held(cfg, inputs.samples, fields, cell, args.seed, accelerator)
            if record is None:
                continue  # another process side by side is training it
        rows.append({"backbone": backbone, "representation": representation, "setting": setting,
                     "valid_auc": record["best_valid_auc"], "test_auc": record["test"]["auc"],
                     "test_logloss": record["test"]["logloss"], "best_epoch": record["best_epoch"],
                     "epochs_run": record["epochs_run"], "epoch_seconds": record["epoch_seconds"]})
        print(f"{backbone:9s} {representation:4s} {tag(setting):40s} valid auc {record['best_valid_auc']:.4f} "
              f"test auc {record['test']['auc']:.4f} (best epoch {record['best_epoch']}/{record['epochs_run']})",
              flush=True)
    if not args.collect:
        return
    best = choose(rows, args.backbones, len(args.representations))
    result = {"command": "python tools/tune_ctr.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
              "hardware": hardware(), "seed": args.seed, "scale": args.scale, "fusion": False,
              "selection": "best mean validation AUC over the representations", "rows": rows, "best": best}
    if args.out:
        write_atomic(Path(args.out), json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
