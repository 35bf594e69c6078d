import gzip
import json

import numpy as np
import pytest

from genrec.data import DataValidationError, leave_one_out, load_dataset, load_lcrec, load_p5
from genrec.data.registry import builtin_dir, load_path


def write_p5(tmp_path, seq_lines, items=None):
    seq = tmp_path / "sequential_data.txt"
    seq.write_text("\n".join(seq_lines) + "\n")
    items_path = tmp_path / "items.jsonl"
    items = items if items is not None else [{"item_id": i, "title": f"Item &amp; {i}"} for i in range(1, 8)]
    items_path.write_text("\n".join(json.dumps(r) for r in items) + "\n")
    return seq, items_path


def test_p5_loader_maps_to_contiguous_indices_and_unescapes(tmp_path):
    seq, items = write_p5(tmp_path, ["1 3 4 5", "2 7 1 2 6"])
    data = load_p5(seq, items)
    assert data.user_ids == ["1", "2"]
    assert data.num_items == 7 and data.num_interactions == 7
    assert data.sequences[0].tolist() == [2, 3, 4]  # item id 3 -> index 2
    assert data.catalog.title(0) == "Item & 1"
    assert data.to_hf_dataset()[1]["item_indices"] == [6, 0, 1, 5]
    assert data.catalog_to_hf_dataset()[0]["title"] == "Item & 1"


@pytest.mark.parametrize(
    "lines, kind, fragment",
    [
        (["1 1 2 3", "2"], "malformed_line", ":2:"),
        (["1 1 2 x3"], "non_integer_id", "'x3'"),
        (["1 1 2 99"], "unknown_item", "item id 99"),
        (["1 1 2"+" 3", "1 4 5 6"], "duplicate_user", "user 1 already appears on line 1"),
        (["1 1 2"], "too_short", "user 1 has 2 item(s)"),
    ],
)
def test_p5_validation_names_file_line_and_id(tmp_path, lines, kind, fragment):
    seq, items = write_p5(tmp_path, lines)
    with pytest.raises(DataValidationError) as err:
        load_p5(seq, items)
    message = str(err.value)
    assert kind in message and fragment in message and "sequential_data.txt" in message


def test_bad_encoding_is_reported_with_line(tmp_path):
    seq, items = write_p5(tmp_path, ["1 1 2 3"])
    seq.write_bytes(b"1 1 2 3\n2 4 5 \xff6\n")
    with pytest.raises(DataValidationError, match=r"sequential_data.txt:2: bad_encoding"):
        load_p5(seq, items)


def test_item_file_errors(tmp_path):
    items = [{"item_id": 1}, {"item_id": 1}, {"title": "no id"}]
    seq, items_path = write_p5(tmp_path, ["1 1 1 1"], items=items)
    with pytest.raises(DataValidationError) as err:
        load_p5(seq, items_path)
    assert "items.jsonl:2: duplicate_item" in str(err.value)
    assert "items.jsonl:3: malformed_line" in str(err.value)


def test_drop_mode_counts_and_reports_every_dropped_row(tmp_path, capsys):
    seq, items = write_p5(tmp_path, ["1 1 2 3", "2 1 99 3", "3 1 2", "4 1 2 3 4", "4 5 6 7"])
    data = load_p5(seq, items, on_error="drop")
    assert data.user_ids == ["1", "4"]
    out = capsys.readouterr().err
    assert "3 problem(s)" in out and "'unknown_item': 1" in out and "'too_short': 1" in out and "'duplicate_user': 1" in out


def test_lcrec_loader(tmp_path):
    (tmp_path / "toy.inter.json").write_text(json.dumps({"0": [0, 1, 2], "1": [2, 1, 0, 1]}))
    (tmp_path / "toy.item.json").write_text(json.dumps({
        "0": {"title": "A &quot;x&quot;.", "brand": "B", "categories": "C1,C2", "description": "d"},
        "1": {"title": "B"}, "2": {"title": "C"}}))
    data = load_path(tmp_path, name="toy")
    assert data.catalog.title(0) == 'A "x"'
    assert data.catalog.get("categories", 0) == "C1 > C2"
    assert data.sequences[1].tolist() == [2, 1, 0, 1]
    (tmp_path / "toy.inter.json").write_text(json.dumps({"0": [0, 1, 7]}))
    with pytest.raises(DataValidationError, match="user 0: item id 7 is not in the catalogue"):
        load_lcrec(tmp_path / "toy.inter.json", tmp_path / "toy.item.json")


def test_builtin_beauty_matches_published_counts():
    data = load_path(builtin_dir("beauty"), name="beauty")
    assert (data.num_users, data.num_items, data.num_interactions) == (22363, 12101, 198502)
    assert data.catalog.title(0).startswith("OPI Nail Lacquer")
    assert "&amp;" not in " ".join(data.catalog.text["title"])


def test_named_dataset_resolution():
    assert load_dataset("beauty").num_items == 12101
    with pytest.raises(FileNotFoundError, match="unknown dataset"):
        load_dataset("no-such-dataset")


def test_leave_one_out_by_eye(tmp_path):
    seq, items = write_p5(tmp_path, ["1 1 2 3 4 5", "2 6 7 1"])
    data = load_p5(seq, items)
    split = leave_one_out(data, max_history=3)
    # user 1 = indices [0,1,2,3,4]; user 2 = [5,6,0]
    assert split.test.target.tolist() == [4, 0]
    assert split.test.history.tolist() == [[1, 2, 3], [-1, 5, 6]]
    assert split.valid.target.tolist() == [3, 6]
    assert split.valid.history.tolist() == [[0, 1, 2], [-1, -1, 5]]
    # training: every prefix of the training part [0,1,2] of user 1; user 2's training part [5] has none
    assert split.train.target.tolist() == [1, 2]
    assert split.train.history.tolist() == [[-1, -1, 0], [-1, 0, 1]]
    assert split.train.user.tolist() == [0, 0]


def test_leave_one_out_is_deterministic_and_sized_on_beauty():
    data = load_dataset("beauty")
    a, b = leave_one_out(data), leave_one_out(data)
    assert len(a.test) == len(a.valid) == 22363
    assert len(a.train) == 198502 - 3 * 22363
    assert np.array_equal(a.train.history, b.train.history)
    assert a.train.history.shape[1] == 20


def test_gzip_inputs_are_read(tmp_path):
    seq, items = write_p5(tmp_path, ["1 1 2 3"])
    gz = tmp_path / "sequential_data.txt.gz"
    gz.write_bytes(gzip.compress(seq.read_bytes()))
    assert load_p5(gz, items).num_interactions == 3
