"""Same seed, same model: a run that embeds the item text (cold cache) and one that reads the cache (warm) train
identical semantic IDs and weights."""
import json

import pytest
import torch
from safetensors.torch import load_file


@pytest.mark.slow
def test_a_cold_and_a_warm_embedding_cache_train_the_same_model(tmp_path, tiny_seq_config, monkeypatch):
    from genrec.experiments.seq import run

    monkeypatch.setenv("GENREC_CACHE", str(tmp_path / "cache"))  # empty: the first run embeds with MiniLM
    # one thread: at two, on a machine busy with other work, a few weights of the two runs sometimes came out one
    # float32 ulp apart (~1e-8, the text cache not among them); that is the threads, not the cache, under study
    monkeypatch.setenv("GENREC_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    try:
        for name in ("cold", "warm"):
            run(tiny_seq_config(f"name={name}", "train.epochs=1"))
    finally:
        torch.set_num_threads(threads)  # the tests after this one keep the machine's threads
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npy"))) == 1  # the second run read it
    folders = {name: tmp_path / "runs" / name / "seed_42" for name in ("cold", "warm")}
    cold, warm = (load_file(str(f / "semantic_ids" / "semantic_ids.safetensors")) for f in folders.values())
    assert cold.keys() == warm.keys() and all((cold[k] == warm[k]).all() for k in cold)
    cold, warm = (load_file(str(f / "model" / "model.safetensors")) for f in folders.values())
    assert cold.keys() == warm.keys() and all((cold[k] == warm[k]).all() for k in cold)
    metrics = [json.loads((tmp_path / "results" / f"{name}.json").read_text())["metrics"] for name in ("cold", "warm")]
    assert metrics[0] == metrics[1]
