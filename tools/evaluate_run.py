"""Evaluate a finished generative run again with the current decoding: beam, dense and hybrid rankings on the
test users, the hybrid mix chosen on validation, through the task its mode builds.

    python tools/evaluate_run.py --run runs/budget/budget_beauty_genrec_every_position_20min_s3/seed_3 \
        --mixes 0.1 0.3 0.5 0.7 0.9 --out results/reevaluated/beauty_every_position_s3.json

Useful when decoding changes after a model was trained (e.g. the dense-guided hybrid search); training is
untouched. `--valid-users` overrides the number of validation users the mix is chosen on (0 = all), `--mixes`
the mixes it is chosen from (`--no-hybrid`: none), `--beam` the beam width (is the search or the model the
limit?), `--text-view` the text-view weights to choose from on validation (a model whose items carry their text
vectors), and `--valid-only` stops after validation.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from accelerate import Accelerator

from genrec.errors import cli
from genrec.experiments.harness import format_metrics, hardware
from genrec.experiments.seq import SavedRun
from genrec.experiments.seq.run import HYBRID
from genrec.files import write_atomic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="runs/<name>/seed_<s>")
    parser.add_argument("--valid-users", type=int, default=None)
    parser.add_argument("--mixes", type=float, nargs="+", default=None,
                        help="hybrid mixes to choose from on validation (default: the run's decode.hybrid_alphas)")
    parser.add_argument("--no-hybrid", action="store_true", help="no hybrid ranking")
    parser.add_argument("--beam", type=int, default=None, help="beam width (default: the run's decode.beam)")
    parser.add_argument("--text-view", type=float, nargs="+", default=None,
                        help="text-view weights to choose from on validation (default: the run's decode.text_view_weights)")
    parser.add_argument("--valid-only", action="store_true", help="evaluate the validation users only")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    start = time.perf_counter()
    run = SavedRun.load(args.run)
    if args.valid_users is not None:
        run.cfg.decode.valid_users = args.valid_users
    if args.mixes is not None:
        run.cfg.decode.hybrid_alphas = args.mixes
    if args.no_hybrid:
        run.cfg.decode.hybrid_alphas = []
    if args.beam is not None:
        run.cfg.decode.beam = args.beam
    if args.text_view is not None:
        run.cfg.decode.text_view_weights = args.text_view
    accelerator = Accelerator(cpu=True)
    task = run.task(accelerator)
    if run.cfg.decode.text_view_weights:
        task.choose_text_view(run.model, accelerator)
    mixes = run.cfg.decode.hybrid_alphas
    valid = task.evaluate(run.model, "valid", accelerator, mixes=mixes)  # chooses the mix
    test = None if args.valid_only else task.evaluate(run.model, "test", accelerator, mixes=[task.alpha] if mixes else [])
    print(f"{args.run} valid: {format_metrics(valid)}" + ("" if test is None else f"\n{args.run} test: {format_metrics(test)}"))
    if args.out:
        result = {"name": Path(args.out).stem, "command": "python tools/evaluate_run.py " + " ".join(sys.argv[1:]),
                  "run": args.run, "hardware": hardware(), "seconds": round(time.perf_counter() - start, 1),
                  "protocol": f"leave-one-out, history<={run.cfg.data.max_history}, all test users, "
                              f"beam={run.cfg.decode.beam}, top-{run.cfg.decode.topk}{HYBRID} "
                              f"({run.cfg.decode.valid_users or 'all'} validation users, mixes {run.cfg.decode.hybrid_alphas}, text-view "
                              f"weights {run.cfg.decode.text_view_weights})",
                  "valid": valid, "test": test,
                  "valid_by_mix": {str(a): m for a, m in task.mix_metrics.items()},
                  "valid_by_text_view_weight": {str(w): m for w, m in task.text_view_metrics.items()}}
        print(f"wrote {write_atomic(args.out, json.dumps(result, indent=1))}")


if __name__ == "__main__":
    cli(main)
