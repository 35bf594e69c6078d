"""The benchmark scripts under tools/ are not a package; their argument handling is tested by loading them."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_budget_overrides_reach_only_their_model():
    bench = load_tool("bench_budget")
    overrides = ["data.max_users=2000", "genrec_every_position:objective.distill_weight=1", "sasrec_id:sasrec.dropout=0.1"]
    assert bench.overrides_for(overrides, "genrec_every_position") == ["data.max_users=2000", "objective.distill_weight=1"]
    assert bench.overrides_for(overrides, "sasrec_id") == ["data.max_users=2000", "sasrec.dropout=0.1"]
    assert bench.overrides_for(overrides, "genrec_window") == ["data.max_users=2000"]
    # a value may contain a colon; only a known model name before it makes the override model-specific
    assert bench.overrides_for(["output_dir=C:/runs"], "sasrec_id") == ["output_dir=C:/runs"]
    with pytest.raises(SystemExit, match="unknown model 'tiger'"):
        bench.overrides_for(["tiger:model.d_model=128"], "sasrec_id")


@pytest.mark.slow
def test_bench_coldstart_collects_every_ranking_over_cold_warm_and_all(tmp_path, tiny_seq_config):
    """The cold-start benchmark's tables from real (toy) result files of a generative and a SASRec fit."""
    import argparse
    import json

    from genrec.config import load_config
    from genrec.experiments.baselines import BaselineRunConfig, run_baselines
    from genrec.experiments.seq import run

    bench = load_tool("bench_coldstart")
    args = argparse.Namespace(dataset="toy", minutes=1.0, new_items=0.1, seeds=[42], jobs=1, fits=str(tmp_path / "fits"), sasrec_rescored="",
                              variants=["sasrec_id", "genrec_text"], note="")
    name = lambda variant: bench.fit_name("toy", variant, 42, 1.0, 0.1)  # noqa: E731
    run(tiny_seq_config(f"name={name('genrec_text')}", "data.new_items=0.1", "items.text=true", "train.epochs=1",
                        f"results_dir={args.fits}"))
    data = tiny_seq_config().data.dataset
    run_baselines(load_config(BaselineRunConfig, overrides=[
        f"data.dataset={data}", "data.new_items=0.1", "models=[sasrec_id,text_neighbours]", "train.epochs=1",
        "text_view_weights=[0,4]",
        "train.progress=false", f"name={name('sasrec_id')}", f"output_dir={tmp_path}/runs", f"results_dir={args.fits}"]))
    result = bench.collect(args)
    assert not result["missing_fits"] and "cold start" in result["protocol"]
    assert set(result["models"]) == {"sasrec_id", "popularity", "text_neighbours", "genrec_text_beam", "genrec_text_dense"}
    for entry in result["models"].values():
        assert set(entry["metrics"]) == {f"{g}{k}" for g in bench.GROUPS for k in bench.METRICS} | {bench.SHARE}
    assert result["models"]["popularity"]["metrics"]["cold_recall@10"] == 0.0  # new items were never bought
    assert result["models"]["popularity"]["metrics"][bench.SHARE] == 0.0
    # SASRec-CE with the text view: a weight chosen on validation, and new items reachable through their text
    sasrec = json.loads((tmp_path / "fits" / f"{name('sasrec_id')}.json").read_text())["models"]["sasrec_id"]
    assert sasrec["per_seed"][0]["test"]["text_view_weight"] in (0, 4)
    bench.plot(result, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 0
    assert json.loads(json.dumps(result)) == result


def test_the_benchmarks_text_model_is_the_every_position_model_with_the_text_settings():
    """The cold-start benchmark trains the text model through overrides; the 20-minute benchmark through its own
    config file. They must not drift apart."""
    from genrec.config import load_config, to_dict
    from genrec.experiments.seq import SeqRunConfig

    bench, cold = load_tool("bench_budget"), load_tool("bench_coldstart")
    model, extra = cold.VARIANTS["genrec_text"]
    base = load_config(SeqRunConfig, bench.MODELS[model][1], overrides=[*extra, "name=budget_every_position_text"])
    text = load_config(SeqRunConfig, bench.MODELS["genrec_every_position_text"][1])
    assert to_dict(base) == to_dict(text)


def test_bench_serving_measures_the_loop_the_batch_and_every_rule_on_a_saved_run(tmp_path, tiny_seq_config):
    """The serving benchmark end to end on a toy run: it checks inside that no rule let a disallowed item out."""
    import json
    import subprocess
    import sys

    from genrec.experiments.seq import run

    run(tiny_seq_config("name=serve", "train.epochs=1"))
    out = tmp_path / "serving.json"
    done = subprocess.run([sys.executable, str(TOOLS / "bench_serving.py"), "--run", str(tmp_path / "runs" / "serve" / "seed_42"),
                           "--users", "24", "--loop-users", "4", "--batch-size", "8", "--repeats", "1", "--beam", "10",
                           "--threads", "1", "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["one_user_loop"]["users"] == 4 and result["batch_mode"]["users"] == 24
    assert result["batch_over_loop"] > 0 and set(result["rules"]["overhead"]) == {"exclude_history", "allow_list", "both"}
    assert "batch mode" in done.stdout


def test_tune_ctr_sweeps_every_combination_and_chooses_by_validation(tmp_path, beauty_slice, monkeypatch):
    """Two settings on a tiny slice: both trained once, a re-run and the collect step reuse them, and the choice is
    the setting with the better validation AUC."""
    import json
    import subprocess
    import sys

    tune = load_tool("tune_ctr")
    assert tune.settings_from(["train.lr=1e-3,3e-3", "model.dropout=0.1"]) == [
        {"train.lr": "1e-3", "model.dropout": "0.1"}, {"train.lr": "3e-3", "model.dropout": "0.1"}]
    base = [sys.executable, str(TOOLS / "tune_ctr.py"), "--backbones", "deepfm", "--representations", "id",
            "--sweep", "train.lr=1e-3,1e-2", "--set", f"data.dataset={beauty_slice}", f"output_dir={tmp_path}/runs",
            "model.embedding_dim=4", "model.dnn=[8]", "train.epochs=2", "train.batch_size=256"]
    env = {**__import__("os").environ, "GENREC_CACHE": str(tmp_path / "cache"), "GENREC_NUM_THREADS": "1"}
    first = subprocess.run(base, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("valid auc") == 2
    out = tmp_path / "tuning.json"
    collected = subprocess.run(base + ["--collect", "--out", str(out)], capture_output=True, text=True, env=env)
    assert collected.returncode == 0, collected.stderr
    result = json.loads(out.read_text())
    assert len(result["rows"]) == 2
    winner = max(result["rows"], key=lambda r: r["valid_auc"])
    assert result["best"]["deepfm"]["setting"] == winner["setting"]


def test_bench_ctr_times_every_backbone_and_variant(tmp_path, beauty_slice):
    import json
    import subprocess
    import sys

    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(TOOLS / "bench_ctr.py"), "--representation", "id", "--scales", "1", "2",
                           "--attention-dims", "8", "4", "--autoint-before", "--steps", "2", "--warmup", "1", "--repeats", "1",
                           "--set", f"data.dataset={beauty_slice}", f"output_dir={tmp_path}/runs", "train.batch_size=128",
                           "--out", str(out)], capture_output=True, text=True,
                          env={**__import__("os").environ, "GENREC_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())["rows"]
    precisions = {r["precision"] for r in rows}
    assert len(rows) == 2 * (3 + 3) * len(precisions)  # 2 scales x (3 backbones + AutoInt+ before and at 2 widths)
    assert {r["autoint_layer"] for r in rows if r["backbone"] == "autoint+"} == {"before tuning", "current"}
    assert all(r["step_ms"] > 0 and r["epoch_seconds"] > 0 for r in rows)
    assert {r["fields"] for r in rows} == {1 + 4 + 1, 1 + 4 + 2}


def test_moc_claims_compare_cells_beyond_their_seed_noise():
    analyze = load_tool("analyze_ctr")

    def row(backbone, rep, scale, fusion, auc, std=0.001):
        return {"backbone": backbone, "representation": rep, "scale": scale, "fusion": fusion, "auc": auc, "auc_std": std}

    rows = [row("deepfm", "id", 1, False, 0.70), row("deepfm", "moc", 1, False, 0.72),   # codes better
            row("deepfm", "rq", 1, False, 0.71),
            row("deepfm", "id", 7, False, 0.70), row("deepfm", "moc", 7, False, 0.7005),  # within noise: tie
            row("deepfm", "rq", 7, False, 0.69), row("deepfm", "me", 7, False, 0.71),
            row("deepfm", "moc", 1, True, 0.70)]                                          # fusion hurts
    claims = analyze.moc_claims({"rows": rows})
    codes = claims["codes beat IDs"]
    assert codes["counts"] == {"better": 1, "tie": 1, "worse": 0} and codes["verdict"] == "mixed"
    assert claims["fusion helps"]["verdict"] == "not reproduced" and claims["fusion helps"]["counts"]["worse"] == 1
    # 7x: MoC beats RQ (.7005 vs .69) and loses to ME (.7005 vs .71)
    assert claims["MoC beats RQ and ME at 2x and above"]["counts"] == {"better": 1, "tie": 0, "worse": 1}
    # 1x -> 7x: MoC -.0195; RQ -.02 (tie within noise); ME from RQ's 1x .71 to .71: 0 (MoC worse)
    assert [c["outcome"] for c in claims["MoC gains more from scaling than RQ and ME"]["cells"]] == ["tie", "worse"]
    # a grid in progress: with RQ at 7x not finished yet, MoC vs RQ is taken to the largest scale both have (3x)
    partial = [r for r in rows if (r["representation"], r["scale"]) != ("rq", 7)]
    partial += [row("deepfm", "moc", 3, False, 0.72), row("deepfm", "rq", 3, False, 0.69)]
    scaling = analyze.moc_claims({"rows": partial})["MoC gains more from scaling than RQ and ME"]["cells"]
    assert [(c["cell"], c["outcome"]) for c in scaling] == [("deepfm 1x->3x change, moc vs rq", "better"),
                                                            ("deepfm 1x->7x change, moc vs me", "worse")]


def test_ctr_tables_show_each_scale_with_missing_cells_marked():
    analyze = load_tool("analyze_ctr")
    rows = [{"backbone": "deepfm", "representation": rep, "scale": scale, "fusion": fusion, "auc": auc, "auc_std": 0.0012}
            for rep, scale, fusion, auc in [("id", 1, False, 0.7563), ("id", 1, True, 0.7533), ("rq", 1, False, 0.75),
                                            ("id", 2, False, 0.7570), ("me", 2, False, 0.7514)]]
    tables = analyze.markdown_tables({"rows": rows}).split("\n\n")
    assert tables[0] == "1x, test AUC, fusion off / on"
    assert tables[1].splitlines() == ["| backbone | id | rq |", "|---|---|---|",
                                      "| deepfm | .7563±.0012 / .7533±.0012 | .7500±.0012 / – |"]
    assert tables[3].splitlines()[-1] == "| deepfm | .7570±.0012 / – | – / – | .7514±.0012 / – |"


def test_ctr_plots_draw_effective_rank_per_backbone(tmp_path):
    analyze = load_tool("analyze_ctr")
    rows = [{"backbone": b, "representation": r, "scale": s, "fusion": f, "effective_rank": 10.0 * s}
            for b in ("deepfm", "autoint+") for r in ("id", "moc") for s in (1, 2) for f in (False, True)]
    analysis = {"labels": "category", "representations": {"moc_x1": {"nmi_tuple": 0.3}, "moc_x2": {"nmi_tuple": 0.29}}}
    analyze.plot(analysis, {}, rows, tmp_path, "ctr_test")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctr_test_effective_rank.png", "ctr_test_nmi.png"]


def test_analysis_reads_the_kept_codes_before_the_runs_cache(tmp_path):
    from genrec.config import to_dict
    from genrec.experiments.ctr.fields import code_folder
    from genrec.experiments.ctr.grid import CtrRunConfig

    analyze = load_tool("analyze_ctr")
    cfg = to_dict(CtrRunConfig())
    tokenizer = {**cfg["tokenizer"], "kind": "residual", "num_levels": 3}
    tokenizer["train"] = {**tokenizer["train"], "seed": cfg["tokenizer_seed"]}
    folder = code_folder(tokenizer)
    cached = tmp_path / "runs" / "tokenizers" / folder / "codes.npy"
    cached.parent.mkdir(parents=True)
    np.save(cached, np.zeros((5, 3), dtype=np.int64))
    kept = np.arange(15, dtype=np.uint8).reshape(5, 3)
    np.savez_compressed(tmp_path / f"{folder}.npz", codes=kept)
    me = analyze.representation_codes(tmp_path, tmp_path / "runs", cfg, "me", 2)  # ME 2x: the 1x codes twice
    assert me.dtype == np.int64 and np.array_equal(me, np.tile(kept, (1, 2)))
    assert not analyze.representation_codes(None, tmp_path / "runs", cfg, "rq", 1).any()  # no kept codes: the cache
    assert analyze.representation_codes(tmp_path, tmp_path / "runs", cfg, "moc", 1) is None


def test_fusion_fit_compares_each_fusion_cell_with_its_plain_twin(tmp_path):
    analyze = load_tool("analyze_ctr")
    log = tmp_path / "shard0.log"
    epoch = "[genrec] epoch={} train_seconds=1.0 train_loss=0.9 train_logloss={} valid_auc={} valid_logloss=0.6 (10 train targets/s)"
    log.write_text("\n".join([
        epoch.format(1, 0.70, 0.60), epoch.format(2, 0.50, 0.70),  # cut off: its lines are dropped at the next epoch=1
        epoch.format(1, 0.60, 0.70), epoch.format(2, 0.40, 0.75),
        "[genrec] deepfm_id_x1_fusion seed 1 test: auc=0.7 logloss=0.6",
        "[genrec] deepfm_id_x1_fusion: test auc=0.7±0.0 logloss=0.6 (1.0 s/epoch, 1 seed(s))"]))
    curves = analyze.curves_from_logs([str(log)])
    assert curves == {("deepfm_id_x1_fusion", 1): {"train_logloss": [0.6, 0.4], "valid_auc": [0.7, 0.75],
                                                   "valid_logloss": [0.6, 0.6]}}
    plain = {"backbone": "deepfm", "representation": "id", "scale": 1, "fusion": False,
             "per_seed": [{"seed": 1, "curves": {"train_logloss": [0.5, 0.3], "valid_auc": [0.78, 0.77]}}]}
    fusion = {**plain, "fusion": True, "per_seed": [{"seed": 1}]}  # saved before records carried curves
    assert analyze.fusion_fit({"rows": [plain, fusion]}) == {"cells": []}
    fit = analyze.fusion_fit({"rows": [plain, fusion]}, curves)
    assert fit["cells"] == [{"cell": "deepfm id 1x", "train_logloss": [0.3, 0.4], "best_valid_auc": [0.78, 0.75]}]
    assert fit["train_logloss_higher"] == 1 and fit["valid_auc_change"] == pytest.approx(-0.03)
    # a plain fit that ran one epoch longer is compared at the last epoch both ran, not at its own last
    longer = {**plain, "per_seed": [{"seed": 1, "curves": {"train_logloss": [0.5, 0.3, 0.1], "valid_auc": [0.78, 0.77, 0.76]}}]}
    assert analyze.fusion_fit({"rows": [longer, fusion]}, curves)["cells"][0]["train_logloss"] == [0.3, 0.4]


def test_compare_ctr_puts_variants_of_the_shared_cells_side_by_side():
    compare = load_tool("compare_ctr")
    row = lambda backbone, fusion, valid, test: {"backbone": backbone, "representation": "id", "scale": 1,
                                                 "fusion": fusion, "best_valid_auc": valid, "auc": test}
    grid = {"rows": [row("deepfm", False, 0.80, 0.75), row("deepfm", True, 0.79, 0.74),
                     row("dcnv2", False, 0.81, 0.76), row("dcnv2", True, 0.78, 0.73)]}
    variant = {"rows": [row("deepfm", True, 0.82, 0.77)]}  # a run of one cell under other settings
    assert compare.parse_column("lr 0.1=results/x.json:fusion") == ("lr 0.1", Path("results/x.json"), True)
    with pytest.raises(SystemExit, match="label=path:plain"):
        compare.parse_column("results/x.json")
    columns = [("off", compare.column_cells(grid, False)), ("on", compare.column_cells(grid, True)),
               ("lr 0.1", compare.column_cells(variant, True))]
    table, summary = compare.compare(columns)
    assert table.splitlines()[2:] == ["| deepfm | id | 1x | .8000 / .7500 | .7900 / .7400 | .8200 / .7700 |"]
    assert [s["valid_change"] for s in summary] == pytest.approx([0.0, -0.01, 0.02])
    assert summary[2]["test_auc"] == pytest.approx(0.77) and summary[2]["cells"] == 1


def test_split_popularity_scores_each_split_by_training_counts_alone(beauty_slice, monkeypatch, tmp_path):
    monkeypatch.setenv("GENREC_CACHE", str(tmp_path / "cache"))
    probe = load_tool("ctr_split_popularity")
    splits = probe.split_popularity(str(beauty_slice), {"negatives": 1, "sample_seed": 2024})
    assert set(splits) == {"train", "valid", "test"}
    for split in splits.values():
        assert 0.0 <= split["positives_unseen_in_train"] <= 1.0 and 0.0 <= split["popularity_auc"] <= 1.0
    # every training positive is counted at least once: none unseen, and positives outrank uniform negatives
    assert splits["train"]["positives_unseen_in_train"] == 0.0 and splits["train"]["popularity_auc"] > 0.5
    gap = probe.grid_gap({"rows": [
        {"per_seed": [{"best_valid_auc": 0.80, "test": {"auc": 0.76}}, {"best_valid_auc": 0.81, "test": {"auc": 0.77}}]},
        {"per_seed": [{"best_valid_auc": 0.78, "test": {"auc": 0.75}}]}]})
    assert gap["fits"] == 3 and gap["cells"] == 2
    assert gap["mean"] == pytest.approx(0.035) and gap["min"] == pytest.approx(0.03) and gap["max"] == pytest.approx(0.04)
