"""Merge single-seed result files into one mean ± std file.

    python tools/merge_seeds.py results/beauty_seq_s1.json results/beauty_seq_s2.json -o results/beauty_seq.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from genrec.pipeline import merge_seed_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+")
    parser.add_argument("-o", "--out", required=True)
    parser.add_argument("--command", default="", help="the command that produced the seeds (e.g. a launcher script)")
    args = parser.parse_args()
    merged = merge_seed_results([json.loads(Path(f).read_text()) for f in args.files])
    merged["name"] = Path(args.out).stem
    if args.command:
        merged["command"] = args.command
    Path(args.out).write_text(json.dumps(merged, indent=1))
    m, s = merged["metrics"], merged["metrics_std"]
    print(f"{args.out}: seeds {merged['seeds']}: " + " ".join(f"{k}={m[k]:.4f}±{s[k]:.4f}" for k in m))


if __name__ == "__main__":
    main()
