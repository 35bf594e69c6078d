"""Compare distance schedules (and estimators) of the semantic-ID tokenizer on one dataset.

Writes results/tokenizer_<dataset>.json and PNG plots (per-level usage, collision groups, singular
spectrum, code-field correlation) under results/plots/.

    python tools/analyze_codes.py --dataset beauty
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from genrec.config import load_config
from genrec.data import item_embeddings, load_dataset
from genrec.evaluation.codes import code_report, effective_rank, field_correlation, singular_spectrum
from genrec.experiments.tokenizer import TokenizerFitConfig, fit_tokenizer


def category_labels(data) -> list[str] | None:
    cats = data.catalog.text.get("categories")
    if not cats:
        return None
    # the first level below the root ("Beauty > Makeup > ...") is the informative one
    return [c.split(" > ")[1] if c.count(" > ") >= 1 else c for c in cats]


def plot(results: dict, out_dir: Path, dataset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        usage = results[name]["level_usage"]
        axes[0].bar(np.arange(len(usage)) + i * width, usage, width, label=name)
        groups = results[name]["collision_groups"]
        axes[1].bar(np.array([int(k) for k in groups]) + i * width, list(groups.values()), width, label=name)
        axes[2].semilogy(results[name]["spectrum"][:64], label=name)
    levels = len(results[names[0]]["level_usage"])
    axes[0].set_xticks(np.arange(levels) + 0.4 - width / 2, [str(level + 1) for level in range(levels)])
    axes[0].set(title="codeword usage per level", xlabel="level", ylabel="fraction used")
    axes[1].set(title="collision groups (before dedup)", xlabel="items sharing a tuple", ylabel="groups")
    axes[2].set(title="singular spectrum of quantized vectors", xlabel="index", ylabel="share")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / f"tokenizer_{dataset}.png", dpi=90)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5))
    for ax, name in zip(np.atleast_1d(axes), names):
        im = ax.imshow(np.array(results[name]["field_correlation"]), vmin=-1, vmax=1, cmap="coolwarm")
        ax.set_title(f"{name}: field correlation", fontsize=8)
    fig.colorbar(im, ax=axes)
    fig.savefig(out_dir / f"tokenizer_{dataset}_correlation.png", dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--schedules", nargs="+", default=["euclidean", "cosine", "cosine-then-euclidean"])
    parser.add_argument("--estimators", nargs="+", default=["rotation"])
    parser.add_argument("--out", default="results")
    parser.add_argument("overrides", nargs="*", help="tokenizer config overrides, e.g. num_levels=3")
    args = parser.parse_args()

    data = load_dataset(args.dataset)
    x = item_embeddings(data.catalog)
    labels = category_labels(data)
    out_dir = Path(args.out)
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[str, dict]] = {}
    for estimator in args.estimators:
        results = runs.setdefault(estimator, {})
        for schedule in args.schedules:
            cfg = load_config(TokenizerFitConfig, overrides=[f"distances={schedule}", f"estimator={estimator}", *args.overrides])
            start = time.perf_counter()
            tokenizer, table, fit = fit_tokenizer(x, cfg, Path("runs") / "analyze_codes" / f"{schedule}-{estimator}")
            seconds = time.perf_counter() - start
            with torch.no_grad():
                out = tokenizer(torch.as_tensor(x))
            codes = out.codes.numpy()
            name = schedule
            entry = code_report(codes, cfg.codebook_size, labels)
            entry.update({
                "distances": tokenizer.distances,
                "estimator": estimator,
                "reconstruction_mse": round(float(out.recon_loss), 4),
                "effective_rank": round(effective_rank(out.quantized.numpy()), 2),
                "spectrum": [round(float(v), 5) for v in singular_spectrum(out.quantized.numpy())],
                "field_correlation": np.round(field_correlation(codes), 3).tolist(),
                "fit_seconds": round(seconds, 1),
            })
            results[name] = entry
            print(json.dumps({f"{name}/{estimator}": {k: v for k, v in entry.items() if k not in ("spectrum", "field_correlation")}}))
    main_estimator = args.estimators[0]
    plot(runs[main_estimator], out_dir / "plots", args.dataset)
    payload = {
        "dataset": args.dataset, "items": data.num_items, "levels": cfg.num_levels, "codebook_size": cfg.codebook_size,
        "seed": cfg.train.seed, "command": "python tools/analyze_codes.py " + " ".join(sys.argv[1:]),
        "hardware": torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "estimator": main_estimator,
        "schedules": runs[main_estimator],
        "other_estimators": {e: r for e, r in runs.items() if e != main_estimator},
    }
    (out_dir / f"tokenizer_{args.dataset}.json").write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
