"""Diagnostics of the CTR path's semantic representations, from a finished `train_ctr.py` run.

    python tools/analyze_ctr.py --results results/ctr_beauty.json
    python tools/analyze_ctr.py --results results/ctr_beauty.json results/ctr_beauty_fusion_lr1.json --no-plots

For every representation in the run (RQ-VAE, ME, MoC at each scale) it reports:
* NMI of each code field against the item category (the first level below the root of the category
  path where the data has one, else the first S3-Rec attribute id), and of the whole code tuple;
* the singular spectrum of the trained item representation (from the run's per-fit records) and its
  effective rank by scale, one panel per backbone;
* a field-by-field dependence heatmap (pairwise NMI: codes are categorical, so Pearson on code
  indices would be meaningless);
* how fusion changes the fit: the training logloss at the last epoch both ran and the best validation AUC of each fusion
  cell against its plain twin, from the fits' per-epoch curves (`--logs`: read them from the grid's shard
  logs for fits saved before their records carried curves).
Writes <results stem>_analysis.json and PNG plots under results/plots/.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import normalized_mutual_info_score

from genrec.data import load_dataset
from genrec.experiments.ctr.fields import REPRESENTATIONS, code_folder, saved_codes
from genrec.experiments.ctr.grid import cell_name, merge_ctr_results

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the tools are scripts, not a package
from compare_ctr import auc  # noqa: E402


def category_labels(data) -> tuple[list, str]:
    cats = data.catalog.text.get("categories")
    if cats:
        return [c.split(" > ")[1] if c.count(" > ") >= 1 else c for c in cats], "category path, level 2"
    attributes = data.catalog.extra.get("attributes")
    if attributes:
        return [a[0] if a else -1 for a in attributes], "first S3-Rec attribute id"
    raise SystemExit(f"dataset {data.name!r} has neither category paths nor attributes to compare codes with")


def representation_codes(kept: Path | None, run_dir: Path, cfg: dict, representation: str,
                         scale: int) -> np.ndarray | None:
    """The codes a representation's cells trained on: kept with the results (`codes_dir`), else the run's cache."""
    base = cfg["base_levels"]
    kind, n, copies = {"rq": ("residual", base * scale, 1), "me": ("residual", base, scale),
                       "moc": ("parallel", base * scale, 1)}[representation]
    tokenizer = copy.deepcopy(cfg["tokenizer"])
    tokenizer.update(kind=kind, num_levels=n)
    tokenizer["train"]["seed"] = cfg["tokenizer_seed"]  # as run_ctr trains it
    folder = code_folder(tokenizer)
    codes = saved_codes(kept, run_dir / "tokenizers", folder)
    return None if codes is None else np.tile(codes, (1, copies))


def tuple_ids(codes: np.ndarray) -> np.ndarray:
    return np.unique(codes, axis=0, return_inverse=True)[1].reshape(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", nargs="+", default=["results/ctr_beauty.json"],
                        help="a grid's results; with several, their cells merged, a later file's row replacing an "
                        "earlier one's (a variant's fusion cells against the grid's plain ones), written under the "
                        "last one's name")
    parser.add_argument("--codes", default=None, help="the folder of kept codes (default: the config's codes_dir; "
                        "a merged grid's config is its first file's)")
    parser.add_argument("--no-plots", action="store_true", help="skip the plots (a variant's codes are the grid's)")
    parser.add_argument("--logs", nargs="*", default=[], help="grid shard logs (runs/ctr_results/logs/*.log) for "
                        "the curves of fits whose records have none")
    args = parser.parse_args()
    results = [json.loads(Path(path).read_text()) for path in args.results]
    result = merge_ctr_results(results) if len(results) > 1 else results[0]
    last = Path(args.results[-1])  # the analysis is named after it
    cfg = result["config"]
    run_dir = Path(cfg["output_dir"]) / cfg["name"]
    kept = Path(args.codes) if args.codes else Path(cfg["codes_dir"]) if cfg.get("codes_dir") else None
    data = load_dataset(cfg["data"]["dataset"])
    labels, label_kind = category_labels(data)

    analysis: dict = {"results": args.results, "logs": args.logs, "labels": label_kind, "representations": {}}
    heatmaps = {}
    for representation in [r for r in cfg["grid"]["representations"] if r != "id"]:
        for scale in cfg["grid"]["scales"]:
            codes = representation_codes(kept, run_dir, cfg, representation, scale)
            if codes is None:
                continue
            per_field = [float(normalized_mutual_info_score(labels, codes[:, f])) for f in range(codes.shape[1])]
            key = f"{representation}_x{scale}"
            analysis["representations"][key] = {
                "fields": codes.shape[1], "nmi_per_field": per_field, "nmi_mean": float(np.mean(per_field)),
                "nmi_tuple": float(normalized_mutual_info_score(labels, tuple_ids(codes))),
                "unique_tuples": float(len(np.unique(codes, axis=0)) / len(codes)),
            }
            if scale == max(cfg["grid"]["scales"]):
                k = min(codes.shape[1], 12)
                heatmaps[key] = np.array([[normalized_mutual_info_score(codes[:, i], codes[:, j]) for j in range(k)]
                                          for i in range(k)])
    spectra = {}
    for row in result["rows"]:
        if not row["fusion"]:
            name = f"{row['backbone']}_{row['representation']}_x{row['scale']}"
            spectra[name] = {"effective_rank": row["effective_rank"], "spectrum": row["per_seed"][0]["spectrum"]}
    analysis["spectra"] = spectra
    analysis["field_dependence_nmi"] = {k: v.round(4).tolist() for k, v in heatmaps.items()}

    analysis["claims"] = moc_claims(result)
    analysis["fusion_fit"] = fusion_fit(result, curves_from_logs(args.logs))
    out = last.with_name(last.stem + "_analysis.json")
    out.write_text(json.dumps(analysis, indent=1))
    if not args.no_plots:
        plot(analysis, heatmaps, result["rows"], last.parent / "plots", last.stem)
    print(markdown_tables(result))
    for claim, verdict in analysis["claims"].items():
        print(f"{claim}: {verdict['verdict']} ({verdict['counts']})")
    fit = analysis["fusion_fit"]
    if fit["cells"]:
        print(f"fusion vs plain over {len(fit['cells'])} cells: train logloss at the last shared epoch {fit['train_logloss_change']:+.4f} "
              f"(higher in {fit['train_logloss_higher']}), best valid auc {fit['valid_auc_change']:+.4f}")
    for key, r in analysis["representations"].items():
        print(f"{key:10s} fields={r['fields']:2d} NMI mean={r['nmi_mean']:.4f} tuple={r['nmi_tuple']:.4f} unique={r['unique_tuples']:.4f}")
    print(f"wrote {out}")


def outcome(diff: float, cells: list[dict]) -> str:
    """'better' when `diff` exceeds the cells' combined seed std, 'worse' when it is below minus that, else 'tie'."""
    margin = float(np.sqrt(sum(c["auc_std"] ** 2 for c in cells)))
    return "better" if diff > margin else "worse" if diff < -margin else "tie"


def compare(a: dict | None, b: dict | None) -> str | None:
    """Cell a's mean test AUC against b's (None when either cell is missing)."""
    if a is None or b is None:
        return None
    return outcome(a["auc"] - b["auc"], [a, b])


def verdict(outcomes: list[tuple[str, str]]) -> dict:
    """Reproduced when the claim holds ('better') in at least 3/4 of the compared cells, not reproduced when it
    holds in at most 1/4, else mixed."""
    counts = {k: sum(o == k for _, o in outcomes) for k in ("better", "tie", "worse")}
    n = len(outcomes)
    if n == 0:
        return {"verdict": "no cells", "counts": counts, "cells": []}
    share = counts["better"] / n
    word = "reproduced" if share >= 0.75 else "not reproduced" if share <= 0.25 else "mixed"
    return {"verdict": word, "counts": counts, "cells": [{"cell": c, "outcome": o} for c, o in outcomes]}


def moc_claims(result: dict) -> dict:
    """The MoC paper's three claims, cell by cell, fusion off unless the claim is about fusion:
    codes beat IDs (MoC vs ID, same backbone and scale); MoC scales better than RQ and ME (MoC vs each at 2x+,
    and MoC's 1x -> largest-scale change vs theirs); fusion helps (on vs off, every cell)."""
    cells = {(r["backbone"], r["representation"], r["scale"], r["fusion"]): r for r in result["rows"]}
    backbones = list(dict.fromkeys(r["backbone"] for r in result["rows"]))
    scales = sorted({r["scale"] for r in result["rows"]})
    codes_beat_ids, moc_over_rq_me, moc_scales, fusion_helps = [], [], [], []
    for b in backbones:
        for s in scales:
            o = compare(cells.get((b, "moc", s, False)), cells.get((b, "id", s, False)))
            if o:
                codes_beat_ids.append((f"{b} {s}x moc vs id", o))
            for other in ("rq", "me"):
                o = compare(cells.get((b, "moc", s, False)), cells.get((b, other, s, False))) if s > 1 else None
                if o:
                    moc_over_rq_me.append((f"{b} {s}x moc vs {other}", o))
        for other in ("rq", "me"):
            # to the largest scale both have finished (a grid in progress); ME at 1x is RQ at 1x (trained once)
            top = max([s for s in scales if s > 1 and cells.get((b, "moc", s, False)) and cells.get((b, other, s, False))],
                      default=1)
            ends = [cells.get((b, "rq" if rep == "me" and s == 1 else rep, s, False)) for rep in ("moc", other)
                    for s in (1, top)]
            if top > 1 and all(ends):
                moc_gain, other_gain = ends[1]["auc"] - ends[0]["auc"], ends[3]["auc"] - ends[2]["auc"]
                moc_scales.append((f"{b} 1x->{top}x change, moc vs {other}", outcome(moc_gain - other_gain, ends)))
        for (bb, rep, s, fusion), row in cells.items():
            if bb == b and fusion:
                o = compare(row, cells.get((bb, rep, s, False)))
                if o:
                    fusion_helps.append((f"{b} {rep} {s}x fusion on vs off", o))
    return {"codes beat IDs": verdict(codes_beat_ids), "MoC beats RQ and ME at 2x and above": verdict(moc_over_rq_me),
            "MoC gains more from scaling than RQ and ME": verdict(moc_scales), "fusion helps": verdict(fusion_helps)}


EPOCH_LINE = re.compile(r"epoch=(\d+) .*train_logloss=([\d.]+) valid_auc=([\d.]+) valid_logloss=([\d.]+)")
TEST_LINE = re.compile(r"\] (\S+) seed (\d+) test: auc=")


def curves_from_logs(paths: list[str]) -> dict[tuple[str, int], dict[str, list[float]]]:
    """{(cell, seed): curves} from the grid's logs, where each fit prints one line per epoch and then its test
    line; the lines of a fit cut off mid-way are dropped at the next fit's first epoch."""
    curves: dict[tuple[str, int], dict[str, list[float]]] = {}
    for path in paths:
        epochs: list[tuple[float, ...]] = []
        for line in Path(path).read_text().splitlines():
            if m := EPOCH_LINE.search(line):
                epochs = ([] if m.group(1) == "1" else epochs) + [tuple(float(x) for x in m.groups()[1:])]
            elif (m := TEST_LINE.search(line)) and epochs:
                curves[(m.group(1), int(m.group(2)))] = dict(zip(("train_logloss", "valid_auc", "valid_logloss"),
                                                                 map(list, zip(*epochs))))
                epochs = []
    return curves


def fusion_fit(result: dict, log_curves: dict | None = None) -> dict:
    """Each fusion cell against its plain twin, where both have curves for every seed: the training logloss
    at the last epoch both fits of a seed ran (lower = fits its rows more closely; one fit may have stopped
    early) and the best validation AUC, means over seeds."""
    log_curves = log_curves or {}
    rows = {(r["backbone"], r["representation"], r["scale"], r["fusion"]): r for r in result["rows"]}

    def curves(row: dict) -> list[dict] | None:
        name = cell_name(row["backbone"], row["representation"], row["scale"], row["fusion"])
        found = [fit.get("curves") or log_curves.get((name, fit["seed"])) for fit in row["per_seed"]]
        return found if all(found) else None

    cells = []
    for (backbone, rep, scale, fusion), row in rows.items():
        plain = rows.get((backbone, rep, scale, False))
        if not fusion or plain is None or (on := curves(row)) is None or (off := curves(plain)) is None:
            continue
        common = [min(len(a["train_logloss"]), len(b["train_logloss"])) for a, b in zip(off, on)]
        last = [float(np.mean([c["train_logloss"][n - 1] for c, n in zip(cs, common)])) for cs in (off, on)]
        best = [float(np.mean([max(c["valid_auc"]) for c in cs])) for cs in (off, on)]
        cells.append({"cell": f"{backbone} {rep} {scale}x", "train_logloss": last, "best_valid_auc": best})
    if not cells:
        return {"cells": []}
    return {"cells": cells,
            "train_logloss_change": float(np.mean([c["train_logloss"][1] - c["train_logloss"][0] for c in cells])),
            "train_logloss_higher": sum(c["train_logloss"][1] > c["train_logloss"][0] for c in cells),
            "valid_auc_change": float(np.mean([c["best_valid_auc"][1] - c["best_valid_auc"][0] for c in cells]))}


def markdown_tables(result: dict) -> str:
    """Per scale, test AUC (mean ± std over seeds) of each backbone (rows) and representation (columns), fusion
    off / on; '–' marks a cell not finished yet."""
    cells = {(r["backbone"], r["representation"], r["scale"], r["fusion"]): r for r in result["rows"]}
    backbones = list(dict.fromkeys(r["backbone"] for r in result["rows"]))
    representations = list(dict.fromkeys(r["representation"] for r in result["rows"]))
    tables = []
    for scale in sorted({r["scale"] for r in result["rows"]}):
        # ME at 1x is RQ at 1x (the grid trains it once)
        reps = [rep for rep in representations if not (rep == "me" and scale == 1)]
        lines = [f"{scale}x, test AUC, fusion off / on", "",
                 "| backbone | " + " | ".join(reps) + " |", "|---|" + "---|" * len(reps)]
        for backbone in backbones:
            pairs = [[cells.get((backbone, rep, scale, fusion)) for fusion in (False, True)] for rep in reps]
            lines.append(f"| {backbone} | " + " | ".join(
                " / ".join(f"{auc(c['auc'])}±{auc(c['auc_std'])}" if c else "–" for c in pair)
                for pair in pairs) + " |")
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def plot(analysis: dict, heatmaps: dict, rows: list[dict], out_dir: Path, stem: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    if heatmaps:
        fig, axes = plt.subplots(1, len(heatmaps), figsize=(4.2 * len(heatmaps), 3.8), squeeze=False)
        for ax, (name, m) in zip(axes[0], heatmaps.items()):
            im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
            ax.set_title(f"{name}: field-pair NMI")
            fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout()
        fig.savefig(out_dir / f"{stem}_field_dependence.png", dpi=90)
        plt.close(fig)
    plain = [r for r in rows if not r["fusion"]]
    if plain:
        # one panel per backbone: how the trained item representation's effective rank grows with the scale
        # (the MoC paper's argument: codes that scale avoid dimensional collapse); the spectra themselves are
        # in the analysis JSON
        backbones = list(dict.fromkeys(r["backbone"] for r in plain))
        fig, axes = plt.subplots(1, len(backbones), figsize=(3.2 * len(backbones), 3.2), sharey=True, squeeze=False)
        for ax, backbone in zip(axes[0], backbones):
            for i, rep in enumerate(REPRESENTATIONS):
                points = sorted((r["scale"], r["effective_rank"]) for r in plain
                                if r["backbone"] == backbone and r["representation"] == rep)
                if points:
                    ax.plot(*zip(*points), marker="o", label=rep, color=f"C{i}")  # same colour in every plot
            ax.set_xticks(sorted({r["scale"] for r in plain}))
            ax.set_title(backbone)
            ax.set_xlabel("scaling factor")
        axes[0][0].set_ylabel("effective rank (mean over seeds)")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / f"{stem}_effective_rank.png", dpi=90)
        plt.close(fig)
    reps = analysis["representations"]
    if reps:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for rep in ("rq", "me", "moc"):
            keys = [k for k in reps if k.startswith(rep + "_x")]
            if keys:
                scales = [int(k.split("_x")[1]) for k in keys]
                ax.plot(scales, [reps[k]["nmi_tuple"] for k in keys], marker="o", label=rep)
        ax.set_xlabel("scaling factor")
        ax.set_ylabel(f"NMI(code tuple, {analysis['labels']})")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / f"{stem}_nmi.png", dpi=90)
        plt.close(fig)


if __name__ == "__main__":
    main()
