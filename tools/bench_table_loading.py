"""Loading a large interaction table: genrec's column-wise path through `datasets` against the obvious
alternative, a Python loop over the rows of `csv.reader` (what a hand-written converter does).

    python tools/bench_table_loading.py --rows 1000000 --out results/table_loading.json

Generates a MovieLens-style table (text user and item ids, integer timestamps, ratings 1-5) once, then times
in one run: the CSV cold (`datasets` parses it into its Arrow cache), the CSV again (the cache is reused),
the same table as Parquet, and the Python loop doing the same work (rating >= 4, time order per user, users
with >= 3 interactions, ids -> indices). Both paths must produce the same sequences.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def generate(folder: Path, rows: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    users = rng.zipf(1.3, rows) % (rows // 20)
    items = rng.zipf(1.2, rows) % (rows // 50)
    times = rng.integers(9e8, 1.6e9, rows)
    ratings = rng.integers(1, 6, rows)
    path = folder / "ratings.csv"
    with path.open("w") as f:
        f.write("userId,movieId,rating,timestamp\n")
        for start in range(0, rows, 100_000):
            stop = min(rows, start + 100_000)
            f.write("".join(f"u{u},m{i},{r},{t}\n" for u, i, r, t in
                            zip(users[start:stop], items[start:stop], ratings[start:stop], times[start:stop])))
    return path


def python_loop(path: Path, min_rating: float, min_length: int) -> dict[str, list[str]]:
    """The converter people write first: one Python iteration per row."""
    per_user: dict[str, list[tuple[float, int, str]]] = {}
    with path.open(newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for n, (user, item, rating, stamp) in enumerate(reader):
            if float(rating) >= min_rating:
                per_user.setdefault(user, []).append((float(stamp), n, item))
    return {u: [i for _, _, i in sorted(events)] for u, events in per_user.items() if len(events) >= min_length}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", default=None, help="results JSON (e.g. results/table_loading.json)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HF_DATASETS_CACHE"] = str(Path(tmp) / "hf_cache")  # a cold cache, removed afterwards
        import datasets

        datasets.disable_progress_bars()
        from genrec.data import Columns, InteractionTable, load_interactions
        from genrec.experiments.harness import hardware

        folder = Path(tmp)
        t = time.perf_counter()
        path = generate(folder, args.rows)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - t:.1f} s ({path.stat().st_size / 2**20:.0f} MiB)")
        parquet = folder / "ratings.parquet"
        datasets.Dataset.from_csv(str(path)).to_parquet(str(parquet))

        table = InteractionTable(columns=Columns(user="userId", item="movieId"), min_rating=4)
        timings: dict[str, float] = {}
        loaded = {}
        for label, source in (("genrec_csv_cold", path), ("genrec_csv_cached", path), ("genrec_parquet", parquet)):
            t = time.perf_counter()
            loaded[label] = load_interactions(source, table)
            timings[label] = time.perf_counter() - t
        t = time.perf_counter()
        reference = python_loop(path, 4, 3)
        timings["python_csv_loop"] = time.perf_counter() - t

    data = loaded["genrec_csv_cold"]
    ids = data.catalog.original_ids
    ours = {u: [ids[i] for i in s] for u, s in zip(data.user_ids, data.sequences)}
    assert ours == reference, "the column-wise loader and the Python loop disagree"
    assert all(
        [x.user_ids, [s.tolist() for s in x.sequences]] == [data.user_ids, [s.tolist() for s in data.sequences]]
        for x in loaded.values())
    for label, seconds in timings.items():
        print(f"{label:18s} {seconds:6.2f} s  ({args.rows / seconds / 1e6:.2f} M rows/s)")
    print(f"same sequences: {data.num_users:,} users, {data.num_items:,} items, {data.num_interactions:,} interactions; "
          f"column-wise CSV (cold) {timings['python_csv_loop'] / timings['genrec_csv_cold']:.1f}x the loop's speed")
    if args.out:
        result = {"name": "table_loading", "command": "python tools/bench_table_loading.py " + " ".join(sys.argv[1:]),
                  "hardware": hardware(), "rows": args.rows, "seconds": timings,
                  "kept": {"users": data.num_users, "items": data.num_items, "interactions": data.num_interactions},
                  "settings": "rating >= 4, time order per user, users with >= 3 interactions; Python loop: csv.reader"}
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
