"""Quality per CPU minute: SASRec-CE, the sliding-window generative model and the every-position generative
model, each trained for the same `train.max_minutes` of training time on one thread, evaluated on the same
users with the same metric code.

    python tools/bench_budget.py --dataset beauty --minutes 20 --seeds 1 2 3 --jobs 2

Each fit is its own process (`GENREC_NUM_THREADS=1`), `--jobs` of them side by side, so every model trains
under the same machine load. A fit whose result file exists is skipped, and a fit that was stopped resumes
from its last checkpoint, so the benchmark can be run in parts (each fit's result file is kept under
`results/budget_fits/`, so a later session can add seeds). `--collect` only gathers finished fits.
Writes results/budget_<dataset>.json and results/plots/budget_<dataset>.png (validation R@10 against
training seconds).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# Each model is a config file under recipes/configs/budget/ (SASRec-CE: recipes/train_baseline.py's settings; the
# sliding window: TIGER's formulation; every position: the shipped model with distillation), at its fastest precision
# on the machine (`auto`), and no early stopping for any: every model trains for the whole budget, the best
# validation epoch kept.
MODELS = {
    "sasrec_id": ("recipes/train_baseline.py", "recipes/configs/budget/sasrec.yaml"),
    "genrec_window": ("recipes/train_seq.py", "recipes/configs/budget/window.yaml"),
    "genrec_every_position": ("recipes/train_seq.py", "recipes/configs/budget/every_position.yaml"),
    "genrec_every_position_text": ("recipes/train_seq.py", "recipes/configs/budget/every_position_text.yaml"),
}
# the every-position fit reports three rankings; each becomes a row of the benchmark
RANKINGS = {"genrec_beam": "", "genrec_hybrid": "hybrid_", "genrec_dense": "dense_"}
HYBRIDS = {"re-scored": "the plain beam's 20 candidates re-scored by the mix",
           "guided": "beam search guided by the dense head's prefix mass"}
METRICS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")


def fit_name(dataset: str, model: str, seed: int, minutes: float) -> str:
    return f"budget_{dataset}_{model}_{minutes:g}min_s{seed}"


def fit_command(args: argparse.Namespace, model: str, seed: int) -> list[str]:
    script, config = MODELS[model]
    name = fit_name(args.dataset, model, seed, args.minutes)
    return [sys.executable, script, "--config", config, f"data.dataset={args.dataset}", f"seeds=[{seed}]", f"name={name}",
            f"output_dir={args.runs}", f"results_dir={args.fits}", f"train.max_minutes={args.minutes}",
            "train.epochs=1000", "train.patience=0", "train.progress=false", *args.fit_overrides[model]]


def overrides_for(overrides: list[str], model: str) -> list[str]:
    """`key=value` applies to every fit, `model:key=value` only to that model's (the configs differ)."""
    picked = []
    for override in overrides:
        target, sep, setting = override.partition(":")
        if not sep or "=" in target:
            picked.append(override)
        elif target not in MODELS:
            raise SystemExit(f"override {override!r}: unknown model {target!r}; models are {sorted(MODELS)}")
        elif target == model:
            picked.append(setting)
    return picked


def run_fit(args: argparse.Namespace, name: str, command: list[str]) -> Path:
    """One fit in its own process on one thread, unless its result file (`args.fits`/<name>.json) exists."""
    out = Path(args.fits) / f"{name}.json"
    if out.exists():
        return out
    log = Path(args.runs) / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GENREC_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    with log.open("a") as f:
        code = subprocess.call(command, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    print(f"{name}: exit {code} (log {log})", flush=True)
    return out


def rows_of(model: str, result: dict) -> dict[str, dict]:
    """Benchmark rows from one fit's result file: {row name: per-seed record}."""
    if model == "sasrec_id":
        entry = result["models"]["sasrec_id"]["per_seed"][0]
        return {"sasrec_id": {**entry, "test": {k: entry["test"][k] for k in METRICS}}}
    record = {**result["per_seed"][0], "protocol": result.get("protocol", "")}
    if model == "genrec_window":
        return {"genrec_window": {**record, "test": {k: record["test"][k] for k in METRICS}}}
    suffix = "_text" if model == "genrec_every_position_text" else ""
    rows = {row + suffix: {**record, "test": {k: record["test"][prefix + k] for k in METRICS}}
            for row, prefix in RANKINGS.items()}
    rows["genrec_hybrid" + suffix]["hybrid_alpha"] = record["test"]["hybrid_alpha"]  # the mix chosen on validation
    return rows


def precision_of(result: dict) -> str:
    """A fit's precision settings and its machine (`auto` is bf16 where that machine has it natively)."""
    config = result.get("config", {})
    mixed = config.get("train", {}).get("mixed_precision", "?")
    scores = config.get("model", {}).get("item_score_precision")
    return (f"train.mixed_precision={mixed}" + (f", model.item_score_precision={scores}" if scores else "")
            + f" on {result.get('hardware', '?')}")


def curve(record: dict, key: str) -> list[list[float]]:
    return [[h["train_seconds"], h[key]] for h in record["history"] if key in h and "train_seconds" in h]


def add_rescored(args: argparse.Namespace, models: dict[str, dict], missing: list[str]) -> None:
    """Rows of fits scored again after training (`tools/evaluate_run.py` for the every-position model,
    `tools/evaluate_baseline.py` for SASRec-CE; e.g. with the text view chosen on validation): each of
    `args.rescored` is `<model>=<path with {seed}>`, and adds `<row>_rescored` rows."""
    for spec in args.rescored:
        model, _, pattern = spec.partition("=")
        if model not in ("sasrec_id", "genrec_every_position"):
            raise SystemExit(f"--rescored {spec!r}: give sasrec_id=<path> or genrec_every_position=<path>, with {{seed}}")
        rankings = {"sasrec_id": ""} if model == "sasrec_id" else RANKINGS
        for seed in args.seeds:
            path = Path(pattern.format(seed=seed))
            if not path.exists():
                missing.append(path.stem)
                continue
            result = json.loads(path.read_text())
            first = "sasrec_id" if model == "sasrec_id" else "genrec_beam"
            fit = next(e for e in models[first]["per_seed"] if e["seed"] == seed)
            for row, prefix in rankings.items():
                record = {**fit, "test": {k: result["test"][prefix + k] for k in METRICS}, "rescored": result["command"]}
                if "text_view_weight" in result["test"]:
                    record["text_view_weight"] = result["test"]["text_view_weight"]
                if row == "genrec_hybrid":
                    record["hybrid_alpha"] = result["test"]["hybrid_alpha"]
                entry = models.setdefault(f"{row}_rescored", {"fit": model, "command": result["command"], "per_seed": [],
                                                               "precision": models[first]["precision"]})
                entry["per_seed"].append(record)


def collect(args: argparse.Namespace) -> dict:
    from genrec.experiments.harness import hardware

    models: dict[str, dict] = {}
    missing = []
    for model in args.models:
        for seed in args.seeds:
            path = Path(args.fits) / f"{fit_name(args.dataset, model, seed, args.minutes)}.json"
            if not path.exists():
                missing.append(path.stem)
                continue
            result = json.loads(path.read_text())
            for row, record in rows_of(model, result).items():
                entry = models.setdefault(row, {"fit": model, "command": result["command"], "per_seed": [],
                                                "precision": precision_of(result)})
                entry["per_seed"].append(record)
    if args.rescored:
        add_rescored(args, models, missing)
    for row, entry in models.items():
        per_seed = entry["per_seed"]
        entry["seeds"] = [r["seed"] for r in per_seed]
        entry["metrics"] = {k: float(np.mean([r["test"][k] for r in per_seed])) for k in METRICS}
        entry["metrics_std"] = {k: float(np.std([r["test"][k] for r in per_seed])) for k in METRICS}
        entry["train_targets_per_second"] = float(np.mean([r["train_sequences_per_second"] for r in per_seed]))
        entry["epochs"] = [len(r["history"]) for r in per_seed]
        entry["best_epoch"] = [r["best_epoch"] for r in per_seed]
        if row.startswith("genrec_hybrid"):
            entry["hybrid_alpha"] = [r["hybrid_alpha"] for r in per_seed]
            # fits record how their hybrid was made; before the guided search it re-scored the beam's candidates
            entry["definition"] = sorted({HYBRIDS["guided" if "guided" in r.get("protocol", "") else "re-scored"]
                                          for r in per_seed})
        base = row.removesuffix("_rescored").removesuffix("_text")
        prefix = "" if base in ("sasrec_id", "genrec_window") else RANKINGS[base]
        entry["valid_recall@10_by_train_seconds"] = [curve(r, f"valid_{prefix}recall@10") for r in per_seed]
        if row.endswith("_rescored"):  # the same fits scored again (tools/evaluate_run.py): no new training curve
            entry["valid_recall@10_by_train_seconds"] = []
        for r in per_seed:
            r.pop("history", None)  # the curves above keep what the plot needs; each fit's file keeps the rest
    return {
        "name": f"budget_{args.dataset}",
        "command": "python tools/bench_budget.py " + " ".join(sys.argv[1:]),
        "budget_minutes": args.minutes,
        "hardware": hardware(threads=False) + ", each fit on 1 thread",
        "schedule": f"{args.jobs} fit(s) side by side, one thread each",
        "seeds": args.seeds,
        "protocol": "leave-one-out, history<=20, full ranking over every item, all test users; generative "
                    "models: beam 20, top-10; hybrid: alpha * sequence log-prob + (1 - alpha) * dense log-prob, "
                    "alpha chosen on validation (how the candidates were found: models.genrec_hybrid.definition)",
        "models": models,
        "missing_fits": missing,
        **({"note": args.note} if args.note else {}),
    }


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (row, entry) in enumerate(result["models"].items()):
        for j, points in enumerate(entry["valid_recall@10_by_train_seconds"]):
            if points:
                x, y = zip(*points)
                ax.plot(x, y, color=f"C{i}", alpha=0.8, label=row if j == 0 else None, marker=".")
    ax.set_xlabel("training seconds (one thread)")
    ax.set_ylabel("validation R@10")
    ax.set_title(f"{result['name']}: {result['budget_minutes']:g}-minute budget")
    ax.grid(alpha=0.3)
    save_figure(fig, ax, out)


def save_figure(fig, ax, out: Path) -> None:
    ax.legend(fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def fit_arguments(parser: argparse.ArgumentParser, runs: str, fits: str) -> None:
    """The arguments every budgeted benchmark takes: what to fit, where, and how to collect."""
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--runs", default=runs, help="checkpoints and logs (not committed)")
    parser.add_argument("--fits", default=fits,
                        help="each fit's result file (committed, so a later session adds seeds or collects)")
    parser.add_argument("--collect", action="store_true", help="train nothing; gather the finished fits")
    parser.add_argument("--results", default="results")
    parser.add_argument("--note", default="", help="what else ran on the machine during the fits, for the record")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fit_arguments(parser, "runs/budget", "results/budget_fits")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--rescored", nargs="*", default=[], help="with --collect: <model>=<path with {seed}>, each seed's "
                        "fit scored again (tools/evaluate_run.py, tools/evaluate_baseline.py): adds the *_rescored rows")
    parser.add_argument("overrides", nargs="*", help="key=value for every fit (e.g. data.max_users=2000), or "
                        "model:key=value for one model's fits (e.g. genrec_every_position:objective.distill_weight=1)")
    args = parser.parse_args()

    if not args.collect:
        args.fit_overrides = {model: overrides_for(args.overrides, model) for model in args.models}  # refused before any fit
        fits = [(model, seed) for seed in args.seeds for model in args.models]
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda fit: run_fit(args, fit_name(args.dataset, *fit, args.minutes), fit_command(args, *fit)), fits))
    result = collect(args)
    out = Path(args.results) / f"budget_{args.dataset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    plot(result, Path(args.results) / "plots" / f"budget_{args.dataset}.png")
    for row, entry in result["models"].items():
        m, s = entry["metrics"], entry["metrics_std"]
        print(f"{row:14s} " + " ".join(f"{k}={m[k]:.4f}±{s[k]:.4f}" for k in METRICS)
              + f"  ({entry['train_targets_per_second']:.0f} targets/s, seeds {entry['seeds']})")
    if result["missing_fits"]:
        print(f"missing: {', '.join(result['missing_fits'])}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
