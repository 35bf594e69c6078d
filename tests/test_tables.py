"""Interaction tables: every format, ordering, filters, raw ids, item tables and errors, on tables built here;
and Beauty written out as a CSV loads to the P5 loader's sequences and splits."""
import json

import datasets
import numpy as np
import pytest

from genrec.config import ConfigError, load_config
from genrec.data import (Columns, DataValidationError, InteractionTable, ItemTable, k_core, leave_one_out,
                         load_dataset, load_interactions)
from genrec.data.embeddings import item_texts
from genrec.experiments.harness import DataConfig

# user, item, time, rating: u1 ties at time 2 (file order kept), u2 is out of order in the file
ROWS = [("u1", "007", 5, 4.0), ("u2", "b", 9, 5.0), ("u1", "a", 2, 3.0), ("u1", "b", 2, 5.0),
        ("u2", "a", 1, 1.0), ("u2", "007", 3, 4.0), ("u3", "a", 1, 5.0)]


def sequences(data):
    """{raw user id: [raw item ids]}: what a user of the package sees."""
    ids = data.catalog.original_ids
    return {u: [ids[i] for i in s] for u, s in zip(data.user_ids, data.sequences)}


def write_delimited(path, sep, header=("user_id", "item_id", "timestamp", "rating"), rows=ROWS):
    path.write_text("\n".join([sep.join(header)] + [sep.join(str(v) for v in r) for r in rows]) + "\n")
    return path


EXPECTED = {"u1": ["a", "b", "007"], "u2": ["a", "007", "b"]}  # u3 has one interaction: shorter than 3


def as_dataset():
    return datasets.Dataset.from_dict({k: [r[j] for r in ROWS] for j, k in
                                       enumerate(("user_id", "item_id", "timestamp", "rating"))})


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "jsonl", "recbole", "dataset"])
def test_every_format_loads_the_same_sequences_in_time_order(tmp_path, fmt):
    if fmt == "csv":
        source = write_delimited(tmp_path / "ratings.csv", ",")
    elif fmt == "tsv":
        source = write_delimited(tmp_path / "ratings.tsv", "\t")
    elif fmt == "recbole":
        source = write_delimited(tmp_path / "ml.inter", "\t",
                                 ("user_id:token", "item_id:token", "timestamp:float", "rating:float"))
    elif fmt == "parquet":
        source = tmp_path / "ratings.parquet"
        as_dataset().to_parquet(str(source))
    elif fmt == "jsonl":
        source = tmp_path / "ratings.jsonl"
        source.write_text("\n".join(json.dumps(dict(zip(("user_id", "item_id", "timestamp", "rating"), r)))
                                    for r in ROWS) + "\n")
    else:
        source = as_dataset()
    data = load_interactions(source)
    assert sequences(data) == EXPECTED
    assert data.user_ids == ["u1", "u2"]  # order of first appearance
    assert data.catalog.original_ids == ["007", "b", "a"]
    assert data.filtering["users_shorter_than_3"] == 1


def test_a_gzipped_csv_with_a_byte_order_mark_loads(tmp_path):
    import gzip

    path = tmp_path / "ratings.csv.gz"
    path.write_bytes(gzip.compress(b"\xef\xbb\xbfuser_id,item_id,timestamp\na,x,2\na,y,1\na,z,3\n"))
    assert sequences(load_interactions(path)) == {"a": ["y", "x", "z"]}


def test_a_filtered_or_shuffled_dataset_is_read_as_it_stands():
    data = load_interactions(as_dataset().shuffle(seed=3).filter(lambda r: r["user_id"] != "u2"),
                             min_length=1)
    assert sequences(data) == {"u1": ["a", "b", "007"], "u3": ["a"]}


def test_identifiers_are_text_and_keep_leading_zeros(tmp_path):
    path = write_delimited(tmp_path / "r.csv", ",", rows=[(1, "007", 1, 1), (1, "7", 2, 1), (1, "0007", 3, 1)])
    data = load_interactions(path)
    assert sequences(data) == {"1": ["007", "7", "0007"]}


def test_parquet_ids_with_a_gap_do_not_become_floats(tmp_path):
    path = tmp_path / "r.parquet"
    datasets.Dataset.from_dict({"user_id": [1.0, 1.0, 1.0, None], "item_id": [10, 11, 12, 13],
                                "timestamp": [1, 2, 3, 4]}).to_parquet(str(path))
    data = load_interactions(path, on_error="drop")
    assert sequences(data) == {"1": ["10", "11", "12"]}
    assert data.dropped == {"missing_user": 1}


def test_iso_dates_order_a_user(tmp_path):
    path = write_delimited(tmp_path / "r.csv", ",", ("user", "item", "when"),
                           [("a", "x", "2020-01-02T10:00:00Z"), ("a", "y", "2020-01-01"), ("a", "z", "2020-01-02 11:00")])
    data = load_interactions(path, InteractionTable(columns=Columns(user="user", item="item", time="when")))
    assert sequences(data) == {"a": ["y", "x", "z"]}


def test_without_a_time_column_file_order_is_kept(tmp_path):
    path = write_delimited(tmp_path / "r.csv", ",", ("user_id", "item_id"), [("a", "z"), ("a", "x"), ("a", "y")])
    data = load_interactions(path, InteractionTable(columns=Columns(time="")))
    assert sequences(data) == {"a": ["z", "x", "y"]}


def test_rating_threshold_and_min_length_are_counted(tmp_path):
    data = load_interactions(write_delimited(tmp_path / "r.csv", ","), InteractionTable(min_rating=4), min_length=2)
    # kept: u1 007(5) b(2); u2 b(9) 007(3); u3 a(1): one row, shorter than 2
    assert sequences(data) == {"u1": ["b", "007"], "u2": ["007", "b"]}
    assert data.filtering["rows_rated_below_4"] == 2
    assert data.filtering["users_shorter_than_2"] == 1


def test_k_core_by_hand():
    # u0: i0 i1 i2; u1: i0 i1; u2: i0 i3. 2-core: i2 and i3 have one interaction each -> dropped, then u2 has
    # one left -> dropped, then i0 has 2 (u0, u1), i1 has 2: stable after 3 rounds.
    users = np.array([0, 0, 0, 1, 1, 2, 2])
    items = np.array([0, 1, 2, 0, 1, 0, 3])
    core = k_core(users, items, 2)
    assert core.keep.tolist() == [True, True, False, True, True, False, False]
    assert core.rounds == 3


def test_k_core_counts_are_reported(tmp_path):
    rows = [(u, i, t, 1) for t, (u, i) in enumerate([("a", "x"), ("a", "y"), ("a", "z"), ("b", "x"), ("b", "y"),
                                                     ("b", "x"), ("c", "w"), ("c", "x"), ("c", "y")])]
    data = load_interactions(write_delimited(tmp_path / "r.csv", ",", rows=rows), InteractionTable(k_core=2),
                             min_length=2)
    assert data.filtering["k_core"] == {"k": 2, "rounds": 2, "before": {"users": 3, "items": 4, "interactions": 9},
                                        "after": {"users": 3, "items": 2, "interactions": 7}}
    assert sequences(data) == {"a": ["x", "y"], "b": ["x", "y", "x"], "c": ["x", "y"]}
    assert "k_core" in data.stats()["filtering"]


def test_bad_rows_name_the_file_row_and_ids(tmp_path):
    rows = [("u1", "a", 1, 1), ("u1", "b", "soon", 1), ("", "c", 3, 1), ("u1", "d", 4, 1), ("u1", "e", 5, "x")]
    path = write_delimited(tmp_path / "r.csv", ",", rows=rows)
    with pytest.raises(DataValidationError) as err:
        load_interactions(path, InteractionTable(min_rating=0))
    message = str(err.value)
    assert f"{path}: row 2: bad_time: user 'u1' item 'b': time 'soon'" in message
    assert f"{path}: row 3: missing_user" in message and "item 'c'" in message
    assert f"{path}: row 5: bad_rating: user 'u1' item 'e': rating 'x'" in message
    data = load_interactions(path, InteractionTable(min_rating=0), on_error="drop", min_length=2)
    assert data.dropped == {"missing_user": 1, "bad_time": 1, "bad_rating": 1}
    assert data.filtering["rows_dropped_as_invalid"] == 3
    assert sequences(data) == {"u1": ["a", "d"]}


def test_missing_columns_and_unknown_formats_say_what_to_set(tmp_path):
    path = write_delimited(tmp_path / "r.csv", ",", ("userId", "movieId", "timestamp"), [("1", "2", "3")])
    with pytest.raises(DataValidationError, match=r"no column\(s\) \['user_id', 'item_id'\].*userId.*data.table.columns"):
        load_interactions(path)
    (tmp_path / "r.dat").write_text("1::2::3\n")
    with pytest.raises(DataValidationError, match="data.table.format"):
        load_interactions(tmp_path / "r.dat")
    with pytest.raises(ConfigError, match="format must be"):
        load_config(DataConfig, overrides=["table.format=xlsx"])


def test_item_table_text_order_and_counted_fallback(tmp_path):
    inter = write_delimited(tmp_path / "r.csv", ",")
    items = tmp_path / "items.csv"
    items.write_text('item_id,title,genres\nzzz,Never rated,Drama\na,"Alpha, the movie",Comedy|Drama\n007,Bond,\n')
    data = load_interactions(inter, InteractionTable(items=ItemTable(path=str(items))))
    # the item table's order; "b" has no row: last, with no text
    assert data.catalog.original_ids == ["a", "007", "b"]
    assert data.catalog.title(0) == "Alpha, the movie" and data.catalog.title(2) == "b"
    assert data.filtering["items_not_in_item_table"] == 1
    assert data.filtering["item_table_rows_without_interactions"] == 1
    assert data.filtering["items_without_text"] == 1
    assert item_texts(data.catalog)[0] == "Title: Alpha, the movie; Genres: Comedy|Drama"
    assert item_texts(data.catalog)[2] == "Item b"


def test_item_table_duplicates_are_errors(tmp_path):
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\na,A\nb,B\na,A again\n")
    table = InteractionTable(items=ItemTable(path=str(items)))
    with pytest.raises(DataValidationError, match=r"row 3: duplicate_item: item 'a' is already on row 1"):
        load_interactions(write_delimited(tmp_path / "r.csv", ","), table)
    data = load_interactions(tmp_path / "r.csv", table, on_error="drop")  # the first row of 'a' is kept
    assert data.filtering["item_table_rows_dropped_as_invalid"] == {"duplicate_item": 1}
    assert data.catalog.title(data.catalog.index_of("a")) == "A"


def test_recbole_folder_with_item_file(tmp_path):
    write_delimited(tmp_path / "ml.inter", "\t", ("user_id:token", "item_id:token", "rating:float", "timestamp:float"),
                    [(u, i, r, t) for u, i, t, r in ROWS])
    (tmp_path / "ml.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\n"
                                      "a\tAlpha\t1999\nb\tBeta\t2001\n007\tBond\t1962\n")
    data = load_dataset(tmp_path)
    assert sequences(data) == EXPECTED
    assert data.catalog.original_ids == ["a", "b", "007"]
    assert data.catalog.title(2) == "Bond"
    assert item_texts(data.catalog)[0] == "Movie title: Alpha; Release year: 1999"


def test_table_settings_on_a_p5_dataset_are_refused(beauty_slice):
    with pytest.raises(DataValidationError, match="apply to interaction tables"):
        load_dataset(beauty_slice, table=InteractionTable(k_core=5))


def test_beauty_as_a_csv_table_loads_to_the_p5_sequences_and_splits(tmp_path):
    p5 = load_dataset("beauty")
    ids = p5.catalog.original_ids
    # synthetic timestamps in P5 order, each user's rows written newest first: the loader must sort by time
    lines = ["user_id,item_id,timestamp"] + [f"{user},{ids[item]},{t}" for user, seq in zip(p5.user_ids, p5.sequences)
                                             for t, item in reversed(list(enumerate(seq)))]
    inter = tmp_path / "beauty.csv"
    inter.write_text("\n".join(lines) + "\n")
    items = tmp_path / "items.jsonl"
    items.write_text("\n".join(json.dumps({"item_id": oid, "title": p5.catalog.title(k)}) for k, oid in enumerate(ids)) + "\n")
    table = load_dataset(str(inter), table=InteractionTable(items=ItemTable(path=str(items), text=["title"])))
    assert table.user_ids == p5.user_ids
    assert table.catalog.original_ids == ids
    assert len(table.sequences) == len(p5.sequences)
    assert all(np.array_equal(a, b) for a, b in zip(table.sequences, p5.sequences))
    # Beauty is a 5-core set: 5-core filtering finds nothing to drop, in one round
    cored = load_dataset(str(inter), table=InteractionTable(k_core=5))
    assert cored.filtering["k_core"]["rounds"] == 1
    assert cored.filtering["k_core"]["before"] == cored.filtering["k_core"]["after"] == {
        "users": p5.num_users, "items": p5.num_items, "interactions": p5.num_interactions}
    split_table, split_p5 = leave_one_out(table, 20), leave_one_out(p5, 20)
    for name in ("train", "valid", "test"):
        a, b = getattr(split_table, name), getattr(split_p5, name)
        for field in ("history", "target", "user"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), (name, field)


@pytest.mark.slow
def test_a_run_on_a_table_recommends_raw_ids_with_titles(tmp_path, beauty_slice, tiny_seq_overrides):
    """Train on a MovieLens-style table with text ids, then recommend for a raw user id from the command line."""
    import subprocess
    import sys
    from pathlib import Path

    from genrec.errors import RunFolderError
    from genrec.experiments.seq import SavedRun, run

    p5 = load_dataset(beauty_slice)
    ids = p5.catalog.original_ids
    lines = ["userId,movieId,rating,timestamp"]
    for user, seq in zip(p5.user_ids, p5.sequences):
        for t, item in enumerate(seq):
            lines.append(f"user-{user},sku-{ids[item]},5,{1_000_000 + t}")
        lines.append(f"user-{user},sku-{ids[seq[0]]},1,{2_000_000}")  # disliked: dropped by min_rating
    (tmp_path / "ratings.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n" + "\n".join(
        f'sku-{oid},"{p5.catalog.title(k).replace(chr(34), "")}",{p5.catalog.get("categories", k) or ""}'
        for k, oid in enumerate(ids)) + "\n")
    table = [f"data.dataset={tmp_path / 'ratings.csv'}", "data.table.columns.user=userId",
             "data.table.columns.item=movieId", "data.table.min_rating=4", f"data.table.items.path={tmp_path / 'movies.csv'}",
             "data.table.items.id=movieId", "data.table.items.text=[title,genres]"]
    from genrec.experiments.seq import SeqRunConfig

    cfg = load_config(SeqRunConfig, overrides=[*tiny_seq_overrides, *table, "name=table", "train.epochs=1"])
    result = run(cfg)
    assert result["dataset"]["filtering"]["rows_rated_below_4"] == p5.num_users
    assert result["dataset"]["users"] == p5.num_users and result["dataset"]["items"] == p5.num_items

    folder = tmp_path / "runs" / "table" / "seed_42"
    script = Path(__file__).parents[1] / "recipes" / "recommend.py"
    user = f"user-{p5.user_ids[0]}"
    done = subprocess.run([sys.executable, str(script), "--run", str(folder), "--user", user, "--k", "5"],
                          capture_output=True, text=True, check=True)
    first, *recs = [json.loads(line) for line in done.stdout.splitlines()]
    assert first["user"] == user and first["held_out_next_item"].startswith("sku-")
    assert len(recs) == 5 and all(r["item_id"].startswith("sku-") and r["title"] for r in recs)

    model = SavedRun.load(folder).model  # raw user ids saved with a model that has user tokens
    assert model.user_ids == [f"user-{u}" for u in p5.user_ids]
    assert model.recommend([f"sku-{ids[0]}"], k=3, user=user)[0]["item_id"].startswith("sku-")
    with pytest.raises(KeyError, match="user 'nobody' is not among this model's 150 training users"):
        model.recommend([f"sku-{ids[0]}"], user="nobody")

    # the data file changing under a finished run is caught, not silently mis-mapped
    (tmp_path / "ratings.csv").write_text("\n".join(lines[:-40]) + "\n")
    with pytest.raises(RunFolderError, match="the data changed since this run trained"):
        SavedRun.load(folder)


def _malformed(folder):
    """One file of each kind a parser cannot read, and what the error must say (file and line where known)."""
    import gzip

    rows = "user_id,item_id,timestamp\n" + "".join(f"u{i % 7},i{i % 13},{i}\n" for i in range(3000))
    packed = gzip.compress(rows.encode())
    jsonl = "".join(f'{{"user_id": "u{i}", "item_id": "i{i}"}}\n' for i in range(3000))
    files = {
        "cut.csv.gz": (packed[: len(packed) // 2], r"cut.csv.gz: truncated_file: the compressed file ends early"),
        "cut.jsonl.gz": (gzip.compress(jsonl.encode())[:1500], r"cut.jsonl.gz: truncated_file"),
        "latin1.csv": (("user_id,item_id,timestamp\n" + "u1,i1,1\n" * 40 + "u2,caf\xe9,2\n").encode("latin-1"),
                       r"latin1.csv:42: bad_encoding: the line is not UTF-8"),
        "latin1.jsonl": ('{"user_id": "u", "item_id": "a"}\n{"user_id": "u", "item_id": "caf\xe9"}\n'.encode("latin-1"),
                         r"latin1.jsonl:2: bad_encoding"),
        "broken.jsonl": (b'{"user_id": "a", "item_id": "b"}\n{"user_id": "a", item_id: 3}\n',
                         r"broken.jsonl:2: malformed_json: Expecting property name"),
        "list.jsonl": (b'{"user_id": "a", "item_id": "b"}\n[1, 2]\n', r"list.jsonl:2: malformed_json"),
        "header_only.csv": (b"user_id,item_id,timestamp\n", r"header_only.csv: no_rows: the file has a header line and no"),
        "header_only.inter": (b"user_id:token\titem_id:token\ttimestamp:float\n", r"header_only.inter: no_rows"),
        "empty.jsonl": (b"", r"empty.jsonl: no_rows: the file is empty"),
        "twice.csv": (b"user_id,item_id,user_id\nu,i,1\n", r"twice.csv:1: duplicate_column: column name\(s\) \['user_id'\]"),
        "twice.jsonl": (b'{"user_id": "a", "item_id": "b", "user_id": "c"}\n', r"twice.jsonl:1: duplicate_column"),
        "cut.parquet": (b"PAR1 not really a parquet file", r"cut.parquet: cannot be read as parquet"),
    }
    for name, (content, _) in files.items():
        (folder / name).write_bytes(content)
    return {name: message for name, (_, message) in files.items()}


def test_every_unreadable_table_file_gets_a_genrec_error_naming_the_file_and_line(tmp_path):
    from genrec.data.tables import read_table

    for name, message in _malformed(tmp_path).items():
        with pytest.raises(DataValidationError, match=message):
            read_table(tmp_path / name)
