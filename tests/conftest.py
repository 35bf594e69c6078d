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


# The main job at toy size: every generative end-to-end test starts from these settings.
TINY_SEQ = [
    "tokenizer.codebook_size=16", "tokenizer.latent_dim=16", "tokenizer.hidden_dims=[64]",
    "tokenizer.train.epochs=4", "tokenizer.train.eval_every=2",
    "model.num_layers=1", "model.num_decoder_layers=1", "model.d_model=32", "model.num_heads=2", "model.d_kv=16",
    "model.d_ff=64", "model.user_buckets=16", "decode.beam=10", "decode.topk=10", "decode.valid_users=0",
    "train.batch_size=128", "train.lr=0.003", "train.eval_every=1", "train.progress=false",
]


@pytest.fixture
def tiny_seq_overrides(tmp_path, beauty_slice):
    """`key=value` overrides for a toy generative run on the Beauty slice, writing under tmp_path."""
    return TINY_SEQ + [f"data.dataset={beauty_slice}", f"output_dir={tmp_path}/runs", f"results_dir={tmp_path}/results"]


@pytest.fixture
def tiny_seq_config(tiny_seq_overrides):
    """`tiny_seq_config(*extra)` -> the toy run's config (name `smoke` unless overridden)."""
    from genrec.config import load_config
    from genrec.experiments.seq import SeqRunConfig

    return lambda *extra: load_config(SeqRunConfig, overrides=[*tiny_seq_overrides, "name=smoke", *extra])
