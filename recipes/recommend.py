"""Recommend the next items after a history, from a saved model: for one user, or for a file of users.

    python recipes/recommend.py --run runs/beauty_seq_cpu/seed_42 --history 1 2 3 --k 5
    python recipes/recommend.py --run runs/beauty_seq_cpu/seed_42 --user 7     # a dataset user's history
    python recipes/recommend.py --run runs/beauty_seq_cpu/seed_42 --history 1 2 3 --exclude-history --only 10 11 12
    python recipes/recommend.py --run runs/beauty_seq_cpu/seed_42 --input users.jsonl --output recs.jsonl

`--run` is a run folder (`runs/<name>/seed_<s>`) or its `model/` folder. Item ids are the dataset's
own ids (P5 ids for the Amazon 2014 sets). One user: prints JSON lines, item id, title and score (the sequence
log-probability under constrained beam search); `--user` takes that dataset user's history without its last item
and shows the held-out item. Rules apply inside the search: `--exclude` item ids, `--exclude-history`, `--only`
item ids (fewer than k lines when fewer than k items are allowed).

Many users (`--input`): one JSON object per line, `{"history": [item ids]}` or `{"user": "<dataset user id>"}` (the
whole history; needs a run folder), optional `"exclude"`, `"only"` and `"id"`; searched `--batch-size` at a time.
Each output line: `{"line", ["id"], ["user"], "items": [{item_id, title, score}], "complete"}`. A bad input line
is named on stderr and skipped (exit status 1 at the end), or stops the run with `--strict`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from genrec.errors import GenrecError, cli
from genrec.models.recommender import GenerativeRecommender


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="runs/<name>/seed_<s> (or its model/ folder)")
    parser.add_argument("--history", nargs="*", default=[], help="item ids, oldest first")
    parser.add_argument("--user", default=None, help="use this dataset user's history (all but the last item)")
    parser.add_argument("--input", type=Path, default=None, help="a JSONL file of requests, one user per line")
    parser.add_argument("--output", type=Path, default=None, help="where --input's recommendations go (JSONL)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--beam", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256, help="users per search with --input")
    parser.add_argument("--exclude", nargs="*", default=[], help="item ids never to recommend")
    parser.add_argument("--only", nargs="*", default=None, help="recommend only among these item ids")
    parser.add_argument("--exclude-history", action="store_true", help="never recommend an item of the history")
    parser.add_argument("--strict", action="store_true", help="with --input: stop at the first bad line")
    args = parser.parse_args()

    folder = Path(args.run)
    is_run = (folder / "run_config.yaml").exists()
    if args.input is not None:
        if args.output is None:
            parser.error("--input needs --output")
        if not args.input.exists():
            raise GenrecError(f"--input {args.input} does not exist")
        from genrec.experiments.serve import serve

        model, histories = load(folder, is_run)
        counts = serve(model, args.input, args.output, args.k, args.beam, args.batch_size, args.exclude_history,
                       args.strict, histories)
        print(f"{counts['served']} users recommended -> {args.output}"
              + (f"; {counts['skipped']} bad lines skipped (named above)" if counts["skipped"] else ""), file=sys.stderr)
        sys.exit(1 if counts["skipped"] else 0)

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
        model = GenerativeRecommender.from_pretrained(model_folder(folder))
    if not history:
        parser.error("give --history item ids, --user or --input")
    for row in model.recommend(history, k=args.k, beam=args.beam, user=args.user, exclude=args.exclude, only=args.only,
                               exclude_history=args.exclude_history):
        print(json.dumps(row))


def model_folder(folder: Path) -> Path:
    return folder if (folder / "config.json").exists() else folder / "model"


def load(folder: Path, is_run: bool) -> tuple[GenerativeRecommender, dict[str, list[str]] | None]:
    """The saved model and, for a run folder, every dataset user's whole history (raw ids), for `"user"` requests."""
    if not is_run:
        return GenerativeRecommender.from_pretrained(model_folder(folder)), None
    from genrec.experiments.seq import SavedRun

    run = SavedRun.load(folder)
    ids = run.data.catalog.original_ids
    return run.model, {user: [ids[i] for i in seq] for user, seq in zip(run.data.user_ids, run.data.sequences)}


if __name__ == "__main__":
    cli(main)
