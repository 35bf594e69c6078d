"""Awkward inputs a user will hand us: each gets a clear error or a count, never a silent change."""
import json

import pytest

from genrec.data import DataValidationError, load_lcrec, load_p5
from genrec.errors import MissingFileError


def p5(tmp_path, sequences: bytes, items: list[dict] | None = None, items_text: str | None = None):
    seq = tmp_path / "sequential_data.txt"
    seq.write_bytes(sequences)
    path = tmp_path / "items.jsonl"
    if items_text is not None:
        path.write_text(items_text)
    else:
        path.write_text("\n".join(json.dumps(r) for r in (items or [{"item_id": i, "title": f"t{i}"} for i in range(1, 8)])))
    return seq, path


def test_a_byte_order_mark_does_not_become_part_of_the_first_user_id(tmp_path):
    seq, items = p5(tmp_path, b"\xef\xbb\xbf1 1 2 3\n2 4 5 6\n")
    assert load_p5(seq, items).user_ids == ["1", "2"]


def test_an_empty_item_file_is_named(tmp_path):
    seq, items = p5(tmp_path, b"1 1 2 3\n", items_text="")
    with pytest.raises(DataValidationError, match=r"items.jsonl: the item file holds no items"):
        load_p5(seq, items)


def test_an_empty_sequence_file_is_named(tmp_path):
    seq, items = p5(tmp_path, b"")
    with pytest.raises(DataValidationError, match=r"sequential_data.txt: no usable user sequences .*empty"):
        load_p5(seq, items)


def test_blank_lines_are_skipped_and_counted(tmp_path, capsys):
    seq, items = p5(tmp_path, b"1 1 2 3\n\n2 4 5 6\n   \n")
    assert load_p5(seq, items).user_ids == ["1", "2"]
    assert "skipped 2 blank line(s) in sequence file" in capsys.readouterr().err


def test_dropped_rows_are_reported_once_and_kept_with_the_data(tmp_path, capsys):
    seq, items = p5(tmp_path, b"1 1 2 3\n2 1 2\n3 4 5 99\n")
    data = load_p5(seq, items, on_error="drop")
    out = capsys.readouterr().err
    assert out.count("dropped rows from sequence file") == 1
    assert data.dropped == {"too_short": 1, "unknown_item": 1} and data.stats()["dropped_rows"] == data.dropped


def test_lcrec_duplicate_user_or_item_keys_are_errors(tmp_path):
    inter = tmp_path / "x.inter.json"
    inter.write_text('{"u1": [1, 2, 3], "u1": [2, 3, 1]}')
    with pytest.raises(DataValidationError, match="duplicate_user: user u1 appears more than once"):
        load_lcrec(inter)
    inter.write_text('{"u1": [1, 2, 3]}')
    item = tmp_path / "x.item.json"
    item.write_text('{"1": {"title": "a"}, "1": {"title": "b"}, "2": {}, "3": {}}')
    with pytest.raises(DataValidationError, match="duplicate_item: item 1 appears more than once"):
        load_lcrec(inter, item)


def test_odd_encodings_and_missing_files(tmp_path):
    seq, items = p5(tmp_path, "1 1 2 3\n2 4 5 6\n".encode("utf-16"))
    with pytest.raises(DataValidationError, match="bad_encoding"):
        load_p5(seq, items)
    with pytest.raises(MissingFileError, match="data file not found"):
        load_p5(tmp_path / "nope.txt", items)


def test_a_large_file_loads(tmp_path):
    lines = "\n".join(f"{u} " + " ".join(str(1 + (u + k) % 7) for k in range(5)) for u in range(20000))
    seq, items = p5(tmp_path, lines.encode())
    data = load_p5(seq, items)
    assert data.num_users == 20000 and data.num_interactions == 100000


def test_empty_fields_load_and_get_a_text_fallback(tmp_path):
    from genrec.data import item_texts

    seq, items = p5(tmp_path, b"1 1 2 3\n", items=[{"item_id": 1, "title": ""}, {"item_id": 2}, {"item_id": 3, "title": "x"}])
    data = load_p5(seq, items)
    assert data.catalog.title(0) == "1" and item_texts(data.catalog)[:2] == ["Item 1", "Item 2"]  # the id stands in
    seq, items = p5(tmp_path, b"1\n2 1 2 3\n")
    with pytest.raises(DataValidationError, match=r":1: malformed_line: expected 'user item ...'"):
        load_p5(seq, items)
