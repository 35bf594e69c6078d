"""Joint vs two-stage training in one comparison: same data, seeds, epochs and stage-one tokenizer.

    python tools/compare_joint.py --seeds 42 43 44 \\
        --ablation-seeds 42 --out results/beauty_joint.json

Variants (each a normal `train_seq.py` run under runs/<name>_<variant>/, so each resumes on its own):
  two_stage          TIGER: tokenizer, then the recommender on fixed codes (code-token encoder input)
  joint              the default joint schedule (`JointConfig`): unified [ID ‖ quantized] input, the tokenizer
                     and the recommender learn together in a window with the targets fixed, then a fine-tune
  unified_frozen     unified input, tokenizer never trained further (separates representation from joint training)
  joint_no_id        ablation: no ID embedding
  joint_euclidean    ablation: Euclidean distance at every level
  joint_alternating  ablation: ETEGRec-style alternating rec/tok epochs with a code refresh after each tok epoch
  joint_simultaneous ablation: both parts learn every epoch, codes refreshed after each
  joint_slow_tokenizer  alternating, with the tokenizer at 1/1000 of the recommender's learning rate
  target_freeze_refresh the default window, with the codes re-assigned at its end (targets move once)
`metrics` holds the joint run and `baseline_metrics` the two-stage run (means over --seeds).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from genrec.config import load_config, to_dict
from genrec.experiments.harness import hardware
from genrec.experiments.seq import SeqRunConfig, run
from genrec.models.item_embedding import table_sizes

# the settings the alternating and refreshing schedules need: a slow tokenizer (codes sit on boundaries, so a refresh
# after a full-rate update moves most of them) and the alignment term that steers the refreshed codes
REFRESHING = ["joint.tok_lr_scale=0.01", "joint.align_weight=0.1"]
ALTERNATING = ["mode=joint", "joint.schedule=alternating", "joint.rec_epochs=1", *REFRESHING]
VARIANTS = {
    "two_stage": ["mode=two_stage", "objective.kind=window", "model.decoder=tiger"],  # code tokens in: TIGER's form
    "joint": ["mode=joint"],
    "unified_frozen": ["mode=unified"],
    "joint_no_id": ["mode=joint", "items.id_dim=0"],
    "joint_euclidean": ["mode=joint", "tokenizer.distances=euclidean"],
    "joint_alternating": ALTERNATING,
    "joint_simultaneous": ["mode=joint", "joint.schedule=simultaneous", *REFRESHING],
    "joint_slow_tokenizer": [*ALTERNATING, "joint.tok_lr_scale=0.001"],  # the later override wins
    "target_freeze_refresh": ["mode=joint", "joint.window_refresh=true", *REFRESHING],
}
MAIN = ("two_stage", "joint")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="YAML config (default: the shipped model's defaults)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--ablation-seeds", type=int, nargs="*", default=[42])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default="results/beauty_joint.json")
    parser.add_argument("overrides", nargs="*", help="applied to every variant, e.g. train.epochs=4")
    args = parser.parse_args()

    base = load_config(SeqRunConfig, args.config, args.overrides)
    results = earlier_variants(Path(args.out), base, args)
    for variant in args.variants:
        seeds = args.seeds if variant in MAIN else args.ablation_seeds
        if not seeds:
            continue
        cfg = load_config(SeqRunConfig, args.config, [*args.overrides, *VARIANTS[variant], f"name={base.name}_{variant}",
                                                      f"seeds={seeds}", f"results_dir={base.output_dir}/{base.name}_compare"])
        out = run(cfg, command=f"python tools/compare_joint.py {' '.join(sys.argv[1:])}  # variant {variant}")
        results[variant] = {"command": out["command"], "seeds": seeds, "wall_seconds": out["wall_seconds"],
                            "metrics": out["metrics"],
                            "metrics_std": out["metrics_std"],
                            "per_seed": [{k: r[k] for k in ("seed", "test", "best_epoch", "train_seconds", "fit_seconds",
                                                            "train_sequences_per_second", "history")}
                                         for r in out["per_seed"]]}
        write_summary(args, base, results)  # after every variant, so an interrupted comparison keeps what finished
    for variant, r in results.items():
        print(f"{variant:20s} " + " ".join(f"{k}={v:.4f}±{r['metrics_std'][k]:.4f}" for k, v in r["metrics"].items()
                                          if k.startswith(("recall", "ndcg"))))
    print(f"wrote {args.out}")


def earlier_variants(out: Path, base: SeqRunConfig, args: argparse.Namespace) -> dict:
    """Variants an earlier invocation wrote to the same file under the same config and seeds, kept unless
    re-run now: a comparison can be finished, or extended, by running the missing variants."""
    if not out.exists():
        return {}
    earlier = json.loads(out.read_text())
    same = (earlier.get("config") == to_dict(base) and earlier.get("seeds") == args.seeds
            and earlier.get("ablation_seeds") == args.ablation_seeds)
    if not same:
        print(f"{out} holds a comparison with another config or seeds; it will be replaced")
        return {}
    kept = {k: v for k, v in earlier.get("variants", {}).items() if k not in args.variants}
    if kept:
        print(f"keeping {', '.join(kept)} from {out}")
    return kept


def write_summary(args: argparse.Namespace, base: SeqRunConfig, results: dict) -> None:
    from genrec.data import load_dataset

    tok, model = base.tokenizer, base.model
    num_items = load_dataset(base.data.dataset).num_items
    summary = {
        "name": Path(args.out).stem,
        "command": "python tools/compare_joint.py " + " ".join(sys.argv[1:]),
        "hardware": hardware(),
        "config": to_dict(base),
        "seeds": args.seeds,
        "ablation_seeds": args.ablation_seeds,
        "variants": results,
        "table_sizes": table_sizes(num_items, base.items.id_dim, tok.codebook_size, tok.num_levels, tok.latent_dim,
                                   model.d_model),
    }
    if all(v in results for v in MAIN):
        summary["metrics"] = results["joint"]["metrics"]
        summary["metrics_std"] = results["joint"]["metrics_std"]
        summary["baseline_metrics"] = results["two_stage"]["metrics"]
        summary["baseline_metrics_std"] = results["two_stage"]["metrics_std"]
        summary["relative_gain"] = {k: summary["metrics"][k] / summary["baseline_metrics"][k] - 1
                                    for k in ("recall@5", "recall@10", "ndcg@5", "ndcg@10") if summary["baseline_metrics"][k]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1, default=float))


if __name__ == "__main__":
    main()
