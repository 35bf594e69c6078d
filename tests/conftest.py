"""Fixtures shared by the end-to-end tests."""
import json

import pytest

from genrec.data.registry import builtin_dir


@pytest.fixture(scope="session")
def beauty_slice(tmp_path_factory):
    """The first 150 Beauty users and only the items they touch, as a P5 folder (real text, ~1k items)."""
    import gzip

    src = builtin_dir("beauty")
    lines = gzip.decompress((src / "sequential_data.txt.gz").read_bytes()).decode().splitlines()[:150]
    used = {t for line in lines for t in line.split()[1:]}
    items = [row for row in gzip.decompress((src / "items.jsonl.gz").read_bytes()).decode().splitlines()
             if str(json.loads(row)["item_id"]) in used]
    folder = tmp_path_factory.mktemp("beauty_slice")
    (folder / "sequential_data.txt").write_text("\n".join(lines) + "\n")
    (folder / "items.jsonl").write_text("\n".join(items) + "\n")
    attributes = json.loads(gzip.decompress((src / "item2attributes.json.gz").read_bytes()))
    (folder / "item2attributes.json").write_text(json.dumps({k: v for k, v in attributes.items() if k in used}))
    return folder
