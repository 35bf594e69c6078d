"""Variants of the same CTR cells side by side: validation / test AUC per cell, one column per run.

    python tools/compare_ctr.py "off=results/ctr_beauty.json:plain" "lr 1=results/ctr_beauty.json:fusion" \\
        "lr 0.1=results/ctr_beauty_fusion_lr01.json:fusion"

Each column is `label=path:plain|fusion`: the plain or the fusion rows of a `train_ctr.py` results file (a
grid, or a run of a few cells under other settings). Rows are the (backbone, representation, scale) cells
every column has. Below the table, each column's mean best validation AUC over those cells and its mean
change against the first column: what an ablation is chosen by (test is shown, never used to choose).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

Cell = tuple[str, str, int]


def parse_column(spec: str) -> tuple[str, Path, bool]:
    label, sep, rest = spec.partition("=")
    path, _, kind = rest.rpartition(":")
    if not sep or not path or kind not in ("plain", "fusion"):
        raise SystemExit(f"column {spec!r}: expected label=path:plain or label=path:fusion")
    return label, Path(path), kind == "fusion"


def column_cells(result: dict, fusion: bool) -> dict[Cell, dict]:
    return {(r["backbone"], r["representation"], r["scale"]): r for r in result["rows"] if r["fusion"] == fusion}


def auc(value: float) -> str:
    """.7563, as the reports write AUC (and its std)."""
    return f"{value:.4f}".removeprefix("0")


def compare(columns: list[tuple[str, dict[Cell, dict]]]) -> tuple[str, list[dict]]:
    """The markdown table over the cells every column has, and per column its mean validation and test AUC
    over them with the change against the first column."""
    shared = [c for c in columns[0][1] if all(c in cells for _, cells in columns[1:])]
    if not shared:
        raise SystemExit("the columns have no cell in common")
    header = "| backbone | representation | scale | " + " | ".join(label for label, _ in columns) + " |"
    lines = [header, "|---|---|---|" + "---|" * len(columns)]
    for backbone, representation, scale in shared:
        values = [cells[(backbone, representation, scale)] for _, cells in columns]
        lines.append(f"| {backbone} | {representation} | {scale}x | "
                     + " | ".join(f"{auc(v['best_valid_auc'])} / {auc(v['auc'])}" for v in values) + " |")
    means = [(float(np.mean([cells[c]["best_valid_auc"] for c in shared])), float(np.mean([cells[c]["auc"] for c in shared])))
             for _, cells in columns]
    summary = [{"label": label, "cells": len(shared), "valid_auc": valid, "test_auc": test,
                "valid_change": valid - means[0][0], "test_change": test - means[0][1]}
               for (label, _), (valid, test) in zip(columns, means)]
    return "\n".join(lines), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("columns", nargs="+", help="label=path:plain|fusion, the first the reference")
    args = parser.parse_args()
    columns = []
    for spec in args.columns:
        label, path, fusion = parse_column(spec)
        columns.append((label, column_cells(json.loads(path.read_text()), fusion)))
    table, summary = compare(columns)
    print("validation / test AUC, means over seeds\n")
    print(table + "\n")
    for s in summary:
        print(f"{s['label']:>12}: validation {s['valid_auc']:.4f} ({s['valid_change']:+.4f}), "
              f"test {s['test_auc']:.4f} ({s['test_change']:+.4f}) over {s['cells']} cells")


if __name__ == "__main__":
    main()
