"""Merge result files into one: single-seed generative runs or baseline runs (one entry per model)
into mean ± std over seeds, or parts of a CTR grid into one grid file.

    python tools/merge_seeds.py results/beauty_seq_s1.json results/beauty_seq_s2.json -o results/beauty_seq.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from genrec.experiments.baselines import merge_baseline_results
from genrec.experiments.ctr.grid import merge_ctr_results
from genrec.experiments.harness import merge_seed_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+")
    parser.add_argument("-o", "--out", required=True)
    parser.add_argument("--command", default="", help="the command that produced the seeds (e.g. a launcher script)")
    args = parser.parse_args()
    results = [json.loads(Path(f).read_text()) for f in args.files]
    if "rows" in results[0]:
        merged = merge_ctr_results(results)
    else:
        merged = (merge_baseline_results if "models" in results[0] else merge_seed_results)(results)
    merged["name"] = Path(args.out).stem
    if args.command:
        merged["command"] = args.command
    Path(args.out).write_text(json.dumps(merged, indent=1))
    if "rows" in merged:
        print(f"{args.out}: {len(merged['rows'])} grid cells from {len(results)} file(s)")
        return
    entries = merged["models"] if "models" in merged else {merged["name"]: merged}
    for name, entry in entries.items():
        m, s = entry["metrics"], entry.get("metrics_std", {})
        print(f"{args.out}: {name}, seeds {merged['seeds']}: " + " ".join(f"{k}={m[k]:.4f}±{s.get(k, 0):.4f}" for k in m))


if __name__ == "__main__":
    main()
