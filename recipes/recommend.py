"""Recommend the next items after a history, from a saved model.

    python recipes/recommend.py --run runs/beauty_seq_cpu/seed_42 --history 1 2 3 --k 5
    python recipes/recommend.py --run runs/beauty_seq_cpu/seed_42 --user 7     # a dataset user's history

`--run` is a run folder (`runs/<name>/seed_<s>`) or its `model/` folder. Item ids are the dataset's
own ids (P5 ids for the Amazon 2014 sets). Prints JSON lines: item id, title and score (the sequence
log-probability under constrained beam search). `--user` reads the run's dataset for that user's history.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from genrec.errors import GenrecError, cli
from genrec.models.recommender import GenerativeRecommender


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="runs/<name>/seed_<s> (or its model/ folder)")
    parser.add_argument("--history", nargs="*", default=[], help="item ids, oldest first")
    parser.add_argument("--user", default=None, help="use this dataset user's history (all but the last item)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--beam", type=int, default=20)
    args = parser.parse_args()

    folder = Path(args.run)
    history = list(args.history)
    if args.user is not None:
        from genrec.experiments.seq import SavedRun

        run = SavedRun.load(folder)
        model = run.model
        if str(args.user) not in run.data.user_ids:
            raise GenrecError(f"user {args.user!r} is not in the run's dataset {run.cfg.data.dataset!r} "
                              f"({run.data.num_users} users)")
        seq = run.data.sequences[run.data.user_ids.index(str(args.user))]
        history = [run.data.catalog.original_ids[i] for i in seq[:-1]]
        print(json.dumps({"user": args.user, "held_out_next_item": run.data.catalog.original_ids[seq[-1]],
                          "history_titles": [run.data.catalog.title(i) for i in seq[:-1]][-5:]}))
    else:
        model = GenerativeRecommender.from_pretrained(folder if (folder / "config.json").exists() else folder / "model")
    if not history:
        parser.error("give --history item ids or --user")
    for row in model.recommend(history, k=args.k, beam=args.beam, user=args.user):
        print(json.dumps(row))


if __name__ == "__main__":
    cli(main)
