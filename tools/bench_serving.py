"""Serving speed of a saved model: many users per search against one user per call, and what rules cost.

Measured in one run on the same model, users and machine (CPU named in the output):
* the one-user loop: `recommend(history, k, beam)` once per user (the obvious way to serve a list of users);
* batch mode: `recommend_many` over the same kind of users, `--batch-size` per search (what `recipes/recommend.py
  --input` does): users per second of each, and their ratio;
* beam-`--beam` latency per user of the one-user call (median and 90th percentile);
* rules inside the search, batched: none, each user's own history excluded, an allow-list (the items of the
  catalogue's most common category, for every user), and both; each rule's time over the plain search, and a check
  that no excluded or disallowed item came out.

Users are the test users of the run's dataset (their histories, raw ids in and out). Repeats alternate the
variants, so a load on the machine falls on all of them; the fastest repeat of each is kept.

    python tools/bench_serving.py --run runs/beauty_seq_cpu/seed_42 --users 2048 --loop-users 200
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from genrec.experiments.harness import hardware
from genrec.experiments.seq import SavedRun
from genrec.files import write_atomic
from genrec.generation.rules import allowed_items


def category_items(run: SavedRun) -> tuple[str, list[int]]:
    """The most common category path's items (Beauty's categories are `a > b > c` paths; the second level when it
    exists, so the list is a real subset)."""
    catalog = run.data.catalog
    paths = [str(catalog.get("categories", i) or "") for i in range(catalog.__len__())]
    level = [" > ".join(p.split(" > ")[:2]) for p in paths]
    name, _ = Counter(c for c in level if c).most_common(1)[0]
    return name, [i for i, c in enumerate(level) if c == name]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="runs/<name>/seed_<s>")
    parser.add_argument("--users", type=int, default=2048, help="users for batch mode and the rules")
    parser.add_argument("--loop-users", type=int, default=200, help="users for the one-user loop")
    parser.add_argument("--beam", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--note", default="", help="what else ran on the machine, for the record")
    parser.add_argument("--out", default="results/bench_serving_cpu.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    run = SavedRun.load(args.run)
    model, ids = run.model.eval(), run.data.catalog.original_ids
    test = run.splits.test
    n = min(args.users, len(test.history))
    index_histories = torch.from_numpy(test.history[:n])
    histories = [[ids[i] for i in row if i >= 0] for row in test.history[:n]]
    loop_histories = histories[: args.loop_users]
    category, allowed_list = category_items(run)
    exclude = [row[row >= 0].tolist() for row in test.history[:n]]
    rules = {"none": None,
             "exclude_history": allowed_items(model.num_items, n, exclude=exclude),
             "allow_list": allowed_items(model.num_items, n, only=allowed_list),
             "both": allowed_items(model.num_items, n, exclude=exclude, only=allowed_list)}

    def batch_mode() -> None:
        for s in range(0, n, args.batch_size):
            model.recommend_many(histories[s : s + args.batch_size], args.k, args.beam)

    def search(rule: torch.Tensor | None) -> torch.Tensor:
        found = []
        for s in range(0, n, args.batch_size):
            part = None if rule is None else rule[s : s + args.batch_size]
            found.append(model.generate(index_histories[s : s + args.batch_size], beam=args.beam, topk=args.k,
                                        allowed=part)[0])
        return torch.cat(found)

    with torch.no_grad():
        model.recommend(loop_histories[0], args.k, args.beam)  # warm-up
        loop_best, latencies, batch_best = float("inf"), [], float("inf")
        rule_best = {name: float("inf") for name in rules}
        for _ in range(args.repeats):
            calls = [timed(lambda h=h: model.recommend(h, args.k, args.beam)) for h in loop_histories]
            if sum(calls) < loop_best:
                loop_best, latencies = sum(calls), calls
            batch_best = min(batch_best, timed(batch_mode))
            for name, rule in rules.items():
                start = time.perf_counter()
                found = search(rule)
                rule_best[name] = min(rule_best[name], time.perf_counter() - start)
                if rule is not None:  # exact: nothing disallowed came out, and k items wherever k are allowed
                    real = found >= 0
                    assert rule.gather(1, found.clamp_min(0))[real].all(), name
                    assert (real.sum(1) == rule.sum(1).clamp_max(args.k)).all(), name

    loop_rate, batch_rate = len(loop_histories) / loop_best, n / batch_best
    result = {
        "command": "python " + shlex.join(sys.argv),
        "hardware": hardware(),
        "threads": torch.get_num_threads(),
        "note": args.note,
        "run": args.run,
        "beam": args.beam, "k": args.k, "batch_size": args.batch_size, "repeats": args.repeats,
        "catalogue_items": model.num_items,
        "text_view_weight": model.text_view_weight,
        "one_user_loop": {"users": len(loop_histories), "users_per_second": loop_rate,
                          "latency_ms_median": 1000 * float(np.median(latencies)),
                          "latency_ms_p90": 1000 * float(np.percentile(latencies, 90))},
        "batch_mode": {"users": n, "users_per_second": batch_rate},
        "batch_over_loop": batch_rate / loop_rate,
        "rules": {"allow_list": f"the {len(allowed_list)} items of category {category!r}",
                  "seconds": rule_best,
                  "overhead": {name: rule_best[name] / rule_best["none"] - 1 for name in rules if name != "none"}},
    }
    write_atomic(Path(args.out), json.dumps(result, indent=1))
    print(f"{result['hardware']}; beam {args.beam}, top {args.k}, {model.num_items} items")
    print(f"one-user loop: {loop_rate:.1f} users/s (latency median {result['one_user_loop']['latency_ms_median']:.1f} ms, "
          f"p90 {result['one_user_loop']['latency_ms_p90']:.1f} ms)")
    print(f"batch mode ({args.batch_size} per search): {batch_rate:.1f} users/s = {result['batch_over_loop']:.1f}x the loop")
    for name, overhead in result["rules"]["overhead"].items():
        print(f"rule {name}: {rule_best[name]:.2f} s against {rule_best['none']:.2f} s, {100 * overhead:+.1f}%")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
