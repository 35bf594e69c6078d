"""End-to-end smoke test of the main job (the shipped model: every-position training, the item-table decoder) on
a slice of the built-in Beauty data (tiny model, CPU)."""
import json

import numpy as np
import pytest
import torch

from genrec.data import load_dataset
from genrec.errors import GenrecError, RunFolderError
from genrec.experiments.harness import merge_seed_results
from genrec.experiments.seq import SavedRun, run
from genrec.models.recommender import GenerativeRecommender


@pytest.mark.slow
def test_train_evaluate_resume_and_recommend(tmp_path, tiny_seq_config):
    result = run(tiny_seq_config("train.epochs=1"))
    saved = json.loads((tmp_path / "results" / "smoke.json").read_text())
    for key in ("recall@5", "recall@10", "ndcg@5", "ndcg@10"):
        assert 0.0 <= saved["metrics"][key] <= 1.0
    assert saved["metrics"]["invalid_rate"] == 0.0 and saved["metrics"]["duplicate_rate"] == 0.0
    assert saved["metrics"]["recall@10"] >= saved["metrics"]["recall@5"]
    assert len(saved["per_seed"][0]["history"]) == 1

    # a longer run in the same folder resumes after epoch 1 and reuses the saved semantic IDs
    resumed = run(tiny_seq_config("train.epochs=2"))
    assert [h["epoch"] for h in resumed["per_seed"][0]["history"]] == [1, 2]
    assert resumed["per_seed"][0]["train_seconds"] > result["per_seed"][0]["train_seconds"]  # both segments count
    # a finished run trains nothing when run again, and still reports the throughput of its training
    again = run(tiny_seq_config("train.epochs=2"))["per_seed"][0]
    assert again["train_sequences_per_second"] == pytest.approx(resumed["per_seed"][0]["train_sequences_per_second"])
    # another model under the same run name is refused with advice, not half-loaded
    with pytest.raises(RunFolderError, match="mode: saved 'unified', requested 'joint'"):
        run(tiny_seq_config("train.epochs=3", "mode=joint"))
    with pytest.raises(RunFolderError, match=r"train.lr: saved 0.003, requested 0.03"):
        run(tiny_seq_config("train.epochs=3", "train.lr=0.03"))

    # the saved model loads without the training config and recommends raw ids with titles
    model = GenerativeRecommender.from_pretrained(tmp_path / "runs" / "smoke" / "seed_42" / "model")
    assert model.seq2seq.decoder == "item_table" and model.causal
    recs = model.recommend(["1", "2", "3"], k=5)  # items of the first user
    assert len(recs) == 5 and len({r["item_id"] for r in recs}) == 5
    assert all(r["title"] for r in recs)
    assert [r["score"] for r in recs] == sorted((r["score"] for r in recs), reverse=True)
    with pytest.raises(KeyError, match="not in this model's catalogue"):
        model.recommend(["no-such-item"])
    # the command line says what is wrong in one line and exits with status 2
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "recipes" / "recommend.py"
    for args, message in ((["--history", "no-such-item"], "is not in this model's catalogue"),
                          (["--history", "1", "--k", "0"], "k must be at least 1"),
                          (["--user", "nobody"], "user 'nobody' is not in the run's dataset")):
        done = subprocess.run([sys.executable, str(script), "--run", str(tmp_path / "runs" / "smoke" / "seed_42"), *args],
                              capture_output=True, text=True)
        assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and message in done.stderr
    # many users from a file: batched, rules per line, bad lines named and skipped (or, with --strict, fatal)
    requests = tmp_path / "users.jsonl"
    requests.write_text("\n".join([
        json.dumps({"id": "a", "history": ["1", "2", "3"]}),
        "{not json",
        json.dumps({"history": ["1", "no-such-item"]}),
        json.dumps({"id": "b", "history": ["1", "2", "3"], "exclude": ["4"], "only": ["4", "5", "6", "7"]}),
        json.dumps({"histroy": ["1"]}),
        json.dumps({"user": saved_run_user(tmp_path)}),
    ]) + "\n")
    out = tmp_path / "recs.jsonl"
    run_dir = str(tmp_path / "runs" / "smoke" / "seed_42")
    done = subprocess.run([sys.executable, str(script), "--run", run_dir, "--input", str(requests), "--output", str(out),
                           "--k", "5", "--batch-size", "2", "--exclude-history"], capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    for line, message in ((2, "not JSON"), (3, "item 'no-such-item' is not in this model's catalogue"), (5, "unknown key")):
        assert f"users.jsonl line {line}: {message}" in done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in rows] == [1, 4, 6] and rows[0]["id"] == "a" and "user" in rows[2]
    assert [r["item_id"] for r in rows[0]["items"]] == [r["item_id"] for r in model.recommend(
        ["1", "2", "3"], k=5, exclude_history=True)] and rows[0]["complete"]
    assert sorted(r["item_id"] for r in rows[1]["items"]) == ["5", "6", "7"] and not rows[1]["complete"]
    done = subprocess.run([sys.executable, str(script), "--run", run_dir, "--input", str(requests), "--output",
                           str(tmp_path / "strict.jsonl"), "--strict"], capture_output=True, text=True)
    assert done.returncode == 2 and "users.jsonl line 2: not JSON" in done.stderr
    assert not (tmp_path / "strict.jsonl").exists()  # no half-written output

    # and re-evaluated through the task its mode builds, it gives the run's test metrics back
    from accelerate import Accelerator

    saved_run = SavedRun.load(tmp_path / "runs" / "smoke" / "seed_42")
    again_test = saved_run.task(Accelerator(cpu=True)).evaluate(saved_run.model, "test", Accelerator(cpu=True))
    assert again_test == pytest.approx(resumed["per_seed"][0]["test"])

    merged = merge_seed_results([result, resumed])
    assert merged["seeds"] == [42, 42]
    assert merged["metrics_std"]["recall@10"] == pytest.approx(
        np.std([result["metrics"]["recall@10"], resumed["metrics"]["recall@10"]]))


def saved_run_user(tmp_path) -> str:
    return SavedRun.load(tmp_path / "runs" / "smoke" / "seed_42").data.user_ids[0]


@pytest.mark.slow
def test_a_run_with_the_item_text_in_the_item_table_trains_saves_recommends_and_takes_new_items(tmp_path, tiny_seq_config,
                                                                                                beauty_slice):
    result = run(tiny_seq_config("name=text", "items.text=true", "train.epochs=1"))
    assert result["metrics"]["invalid_rate"] == 0.0
    model = GenerativeRecommender.from_pretrained(tmp_path / "runs" / "text" / "seed_42" / "model")
    assert model.items.text is not None and model.items.text.shape == (model.num_items, 384)
    assert len(model.recommend(["1", "2", "3"], k=5)) == 5

    # the saved model takes new items by their text: its kept tokenizer is the one that made the codes
    known = model.num_items
    raw, _ = model.tokenizer.quantize_items(model.items.text)
    assert torch.equal(raw, model.codes.codes[:, : raw.shape[1]])
    catalog = load_dataset(str(beauty_slice)).catalog
    near = next(i for i in range(known) if catalog.title(i) and catalog.get("categories", i))
    fields = {name: catalog.get(name, near) for name in ("title", "brand", "categories", "description")}
    texts = [{**fields, "title": fields["title"] + " (travel size)"}, "Title: Cordless hedge trimmer; Categories: Garden"]
    with pytest.raises(GenrecError, match="given twice: \\['n1'\\]"):
        model.add_items(["n1", "n1"], texts)
    with pytest.raises(GenrecError, match="already in the catalogue.*'1'"):
        model.add_items(["1", "n2"], texts)
    with pytest.raises(GenrecError, match="empty for item ids \\['n2'\\]"):
        model.add_items(["n1", "n2"], [texts[0], "  "])
    assert model.num_items == known  # refused additions change nothing
    model.add_items(["n1", "n2"], texts)
    assert model.num_items == known + 2 and model.titles[-2] == texts[0]["title"] and model.item_index("n2") == known + 1
    assert len(torch.unique(model.codes.codes, dim=0)) == known + 2
    unit = torch.nn.functional.normalize(model.items.text, dim=-1)
    assert float(unit[known] @ unit[near]) > 0.9  # the travel size reads like its original
    model.save_pretrained(tmp_path / "with_new")
    loaded = GenerativeRecommender.from_pretrained(tmp_path / "with_new")
    assert loaded.num_items == known + 2 and loaded.item_ids[-2:] == ["n1", "n2"]
    assert torch.equal(loaded.codes.codes, model.codes.codes) and torch.equal(loaded.items.table(), model.items.table())
    # a history ending at the original finds the new item (by its text; its ID row is empty)
    loaded.text_view_weight = 8.0
    history = [catalog.original_ids[i] for i in (0, 1, near)]
    assert "n1" in [r["item_id"] for r in loaded.recommend(history, k=10)]
    assert sorted(r["item_id"] for r in loaded.recommend(history, k=10, only=["n1", "n2"])) == ["n1", "n2"]


def test_lr_factor_warms_up_then_anneals_by_steps_or_by_time_budget():
    from genrec.training.loop import lr_factor

    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_factor(100, 100, 10) == pytest.approx(0.0)
    # a time budget half used at step 10 puts the cosine half-way, and a spent budget gives zero
    assert lr_factor(10, 100, 10, budget_used=0.5) == pytest.approx(0.5)
    assert lr_factor(10, 100, 10, budget_used=1.5) == pytest.approx(0.0)
    # the step fraction still wins when it is ahead of the clock
    assert lr_factor(55, 100, 10, budget_used=0.1) == pytest.approx(0.5)


def test_loop_state_carries_wall_time_across_a_resume():
    import time

    from genrec.training.loop import _LoopState

    first = _LoopState()
    first.elapsed = 100.0  # as if an earlier segment had run 100 s
    saved = first.state_dict()
    assert saved["elapsed"] >= 100.0 and not any(k.startswith("_") for k in saved)
    resumed = _LoopState()
    resumed.load_state_dict(saved)
    time.sleep(0.01)
    assert resumed.seconds() >= saved["elapsed"] + 0.01


@pytest.mark.slow
def test_a_cold_start_run_tests_new_items_it_never_trained_on_and_saves_them(tmp_path, tiny_seq_config):
    """The cold-start protocol end to end: trained over the known items only, the new ones added before the test
    (the search can return them), the test reported over cold and warm targets, the saved model holding them all."""
    result = run(tiny_seq_config("name=cold", "data.new_items=0.1", "items.text=true", "decode.text_view_weights=[0,4]",
                                 "train.epochs=1"))
    test = result["per_seed"][0]["test"]
    for key in ("cold_recall@10", "warm_recall@10", "new_share@10", "dense_cold_ndcg@10", "dense_new_share@10"):
        assert 0.0 <= test[key] <= 1.0
    assert test["invalid_rate"] == 0.0 and test["duplicate_rate"] == 0.0
    assert "cold start" in result["protocol"] and "cold_recall@10" in result["popularity"]
    model = GenerativeRecommender.from_pretrained(tmp_path / "runs" / "cold" / "seed_42" / "model")
    assert model.num_items == result["dataset"]["items"]
    known = model.num_items - round(0.1 * model.num_items)
    assert model.items.ids.weight[known:].abs().sum() == 0  # the new items' ID rows: nothing learned
    # the settings chosen after training on validation come back with the model
    assert model.new_from == known and model.new_item_bias == test["new_item_bias"]
    assert model.text_view_weight == test["text_view_weight"] in (0, 4)
    # a history of new items only still gets recommendations, from their content
    recs = model.recommend(model.item_ids[known : known + 3], k=5)
    assert len(recs) == 5
