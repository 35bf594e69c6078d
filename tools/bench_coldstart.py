"""Cold start: how well each model recommends items nobody interacted with in training, beside how it does on the
rest, each model trained for the same `train.max_minutes` on one thread (as tools/bench_budget.py does).

    python tools/bench_coldstart.py --dataset beauty --minutes 20 --seeds 1 2 3 --jobs 2

The protocol (`data.new_items`, genrec/data/coldstart.py): a seeded 5% of the items are new; every interaction
with them is left out of training and validation, the tokenizer is fitted without their text and then encodes them,
and the test covers every user, reported over cold targets (a new item), warm ones and all, with the share of new
items among each model's top 10. Models: SASRec-CE (its run also reports popularity and the text neighbours of
the last history item, which need no training), and genrec with the item text in its item table, with
the text view and the new items' score offset chosen on validation (genrec/models/text_view.py, new_items.py), and
SASRec-CE scored again with the same view and offset (`--sasrec-rescored`). Fits resume and are kept under `--fits`
as in tools/bench_budget.py. Writes results/coldstart_<dataset>.json and
results/plots/coldstart_<dataset>.png.
"""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the tools are scripts, not a package
from bench_budget import MODELS, fit_arguments, run_fit, save_figure  # noqa: E402

# variant -> (bench_budget model, extra overrides)
VARIANTS = {
    "sasrec_id": ("sasrec_id", ["models=[sasrec_id,text_neighbours]"]),
    "genrec_text": ("genrec_every_position", ["items.text=true", "decode.text_view_weights=[0,2,4,8,16]"]),  # = genrec_every_position_text
}
GROUPS = ("", "cold_", "warm_")
METRICS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")
SHARE = "new_share@10"


def fit_name(dataset: str, variant: str, seed: int, minutes: float, share: float) -> str:
    return f"coldstart_{dataset}_{variant}_{share:g}new_{minutes:g}min_s{seed}"


def fit_command(args: argparse.Namespace, variant: str, seed: int) -> list[str]:
    model, extra = VARIANTS[variant]
    script, config = MODELS[model]
    return [sys.executable, script, "--config", config, f"data.dataset={args.dataset}", f"data.new_items={args.new_items}",
            f"seeds=[{seed}]", f"name={fit_name(args.dataset, variant, seed, args.minutes, args.new_items)}",
            f"output_dir={args.runs}", f"results_dir={args.fits}", f"train.max_minutes={args.minutes}",
            "train.epochs=1000", "train.patience=0", "train.progress=false", *extra]


def pick(metrics: dict, prefix: str = "") -> dict[str, float]:
    """One ranking's report: every group's metrics and the new items' share (`prefix`: dense_ or hybrid_)."""
    return {f"{g}{k}": metrics[f"{prefix}{g}{k}"] for g in GROUPS for k in METRICS} | {SHARE: metrics.get(f"{prefix}{SHARE}", 0.0)}


def rows_of(variant: str, result: dict) -> dict[str, dict]:
    """Benchmark rows {row: {"seed", "test"}} from one fit's result file."""
    if variant == "sasrec_id":
        entry = result["models"]["sasrec_id"]["per_seed"][0]
        rows = {"sasrec_id": {"seed": entry["seed"], "test": pick(entry["test"]), "best_epoch": entry["best_epoch"]}}
        for untrained in ("popularity", "text_neighbours"):
            metrics = result["models"][untrained]["metrics"]
            rows[untrained] = {"seed": entry["seed"], "test": pick(metrics | {SHARE: metrics.get(SHARE, 0.0)})}
        return rows
    record = result["per_seed"][0]
    return {f"{variant}_{ranking}": {"seed": record["seed"], "test": pick(record["test"], prefix),
                                     "best_epoch": record["best_epoch"]}
            for ranking, prefix in (("beam", ""), ("dense", "dense_"))}


def collect(args: argparse.Namespace) -> dict:
    from genrec.experiments.harness import hardware

    models: dict[str, dict] = {}
    missing, protocol = [], ""
    for variant in args.variants:
        for seed in args.seeds:
            path = Path(args.fits) / f"{fit_name(args.dataset, variant, seed, args.minutes, args.new_items)}.json"
            if not path.exists():
                missing.append(path.stem)
                continue
            result = json.loads(path.read_text())
            protocol = protocol or result["protocol"]
            for row, record in rows_of(variant, result).items():
                entry = models.setdefault(row, {"fit": variant, "command": result["command"], "per_seed": []})
                entry["per_seed"].append(record)
            rescored = Path(args.sasrec_rescored.format(seed=seed)) if variant == "sasrec_id" and args.sasrec_rescored else None
            if rescored is not None:
                if not rescored.exists():
                    missing.append(rescored.stem)
                    continue
                again = json.loads(rescored.read_text())
                entry = models.setdefault("sasrec_id_text_view", {"fit": variant, "command": again["command"], "per_seed": []})
                entry["per_seed"].append({"seed": seed, "test": pick(again["test"]),
                                          "text_view_weight": again["test"].get("text_view_weight"),
                                          "new_item_offset": again["test"].get("new_item_offset")})
    for entry in models.values():
        per_seed = entry["per_seed"]
        entry["seeds"] = [r["seed"] for r in per_seed]
        keys = per_seed[0]["test"].keys()
        entry["metrics"] = {k: float(np.mean([r["test"][k] for r in per_seed])) for k in keys}
        entry["metrics_std"] = {k: float(np.std([r["test"][k] for r in per_seed])) for k in keys}
    return {"name": f"coldstart_{args.dataset}", "command": "python tools/bench_coldstart.py " + " ".join(sys.argv[1:]),
            "budget_minutes": args.minutes, "new_items": args.new_items,
            "hardware": hardware(threads=False) + ", each fit on 1 thread",
            "schedule": f"{args.jobs} fit(s) side by side, one thread each", "seeds": args.seeds,
            "protocol": protocol + "; generative models: beam 20, top-10", "models": models, "missing_fits": missing,
            **({"note": args.note} if args.note else {})}


def markdown(result: dict) -> str:
    """The report's table: each row's mean ± std over seeds, all / cold / warm R@10 and N@10, and the new items' share."""
    lines = ["| model | all R@10 | all N@10 | cold R@10 | cold N@10 | warm R@10 | warm N@10 | new items in top 10 | seeds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row, entry in result["models"].items():
        m, s = entry["metrics"], entry["metrics_std"]
        cells = [f"{m[f'{g}{k}']:.4f}±{s[f'{g}{k}']:.4f}".replace("0.", ".") for g in GROUPS for k in ("recall@10", "ndcg@10")]
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {m[SHARE]:.1%} | {', '.join(map(str, entry['seeds']))} |")
    return "\n".join(lines)


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(result["models"])
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows)), 4.2))
    width = 0.27
    for j, (group, label) in enumerate((("", "all"), ("cold_", "cold targets"), ("warm_", "warm targets"))):
        means = [result["models"][r]["metrics"][f"{group}recall@10"] for r in rows]
        stds = [result["models"][r]["metrics_std"][f"{group}recall@10"] for r in rows]
        ax.bar(np.arange(len(rows)) + (j - 1) * width, means, width, yerr=stds, label=label, color=f"C{j}")
    ax.set_xticks(np.arange(len(rows)))
    ax.set_xticklabels(rows, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("test R@10")
    ax.set_title(f"{result['name']}: {result['new_items']:g} of the items new, {result['budget_minutes']:g}-minute fits")
    ax.grid(alpha=0.3, axis="y")
    save_figure(fig, ax, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fit_arguments(parser, "runs/coldstart", "results/coldstart_fits")
    parser.add_argument("--new-items", type=float, default=0.05, help="the share of the catalogue that is new")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--sasrec-rescored", default="", help="with a {seed}: each SASRec-CE fit scored again by "
                        "tools/evaluate_baseline.py --text-view ... --calibrate-new-items (adds the sasrec_id_text_view row)")
    args = parser.parse_args()

    if not args.collect:
        fits = [(variant, seed) for seed in args.seeds for variant in args.variants]
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda fit: run_fit(args, fit_name(args.dataset, *fit, args.minutes, args.new_items),
                                              fit_command(args, *fit)), fits))
    result = collect(args)
    out = Path(args.results) / f"coldstart_{args.dataset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    if result["models"]:
        plot(result, Path(args.results) / "plots" / f"coldstart_{args.dataset}.png")
    print(f"{'':28s}" + "".join(f"{g or 'all_'}R@10  " for g in GROUPS) + "cold_N@10  new share")
    for row, entry in result["models"].items():
        m = entry["metrics"]
        print(f"{row:28s}" + "".join(f"{m[f'{g}recall@10']:.4f}     " for g in GROUPS)
              + f"{m['cold_ndcg@10']:.4f}     {m[SHARE]:.3f}  (seeds {entry['seeds']})")
    if result["missing_fits"]:
        print(f"missing: {', '.join(result['missing_fits'])}")
    print(markdown(result))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
