"""CTR path: samples, item fields, backbones (smoke + reference agreement), metrics and the grid recipe."""
import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch

from genrec.config import load_config
from genrec.experiments.ctr.grid import CtrRunConfig, CtrTask, run_ctr
from genrec.data import Catalog, SequenceData, load_dataset
from genrec.data.ctr import CtrSampleConfig, build_ctr_samples, ctr_samples
from genrec.evaluation.ctr import auc_logloss
from genrec.experiments.ctr.fields import ItemFields, attribute_fields, representation_columns, representation_fields
from genrec.models.ctr import BACKBONES, SHARED_SETTINGS, CtrModelConfig, MoCFusion, build_ctr_model
from genrec.models.ctr.deepfm import fm_pairwise
from genrec.models.ctr.deepim import elementary_symmetric


def toy_data(num_items=30, seed=0) -> SequenceData:
    rng = np.random.default_rng(seed)
    sequences = [rng.choice(num_items, size=rng.integers(3, 9), replace=False) for _ in range(12)]
    return SequenceData("toy", Catalog([str(i) for i in range(num_items)]), [f"u{u}" for u in range(12)], sequences)


def test_samples_follow_the_time_split_and_never_sample_touched_items():
    data = toy_data()
    samples = build_ctr_samples(data, CtrSampleConfig(negatives=3, sample_seed=7))
    for u, seq in enumerate(data.sequences):
        pos = {name: samples.split(name).items[(samples.split(name).users == u) & (samples.split(name).labels == 1)]
               for name in ("train", "valid", "test")}
        assert pos["test"].tolist() == [seq[-1]] and pos["valid"].tolist() == [seq[-2]]
        assert sorted(pos["train"].tolist()) == sorted(seq[:-2].tolist())
        for name in ("train", "valid", "test"):
            s = samples.split(name)
            neg = s.items[(s.users == u) & (s.labels == 0)]
            assert len(neg) == 3 * len(pos[name])  # the stated ratio, per split
            assert not set(neg.tolist()) & set(seq.tolist())  # only items the user never touched
    again = build_ctr_samples(data, CtrSampleConfig(negatives=3, sample_seed=7))
    assert np.array_equal(again.train.items, samples.train.items)  # deterministic for a seed


def test_sample_cache_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE", str(tmp_path))
    data = toy_data()
    first = ctr_samples(data, CtrSampleConfig())
    assert list((tmp_path / "ctr").glob("*.npz"))
    second = ctr_samples(data, CtrSampleConfig())
    for name in ("train", "valid", "test"):
        assert np.array_equal(first.split(name).items, second.split(name).items)
        assert np.array_equal(first.split(name).labels, second.split(name).labels)


def test_attribute_fields_from_s3rec_file(beauty_slice):
    data = load_dataset(beauty_slice)
    fields = attribute_fields(data.catalog, slots=4)
    assert fields.values.shape == (data.num_items, 4) and fields.names == ["attr_0", "attr_1", "attr_2", "attr_3"]
    first = data.catalog.extra["attributes"][0]
    assert fields.values[0, : len(first)].tolist() == [a + 1 for a in first[:4]]  # 0 is reserved for "none"
    assert (fields.values < fields.vocab_sizes[0]).all()


def test_attribute_file_with_unknown_item_names_it(tmp_path, beauty_slice):
    from genrec.data.loaders import load_item_attributes
    from genrec.data.validation import DataValidationError

    data = load_dataset(beauty_slice)
    (tmp_path / "attrs.json").write_text(json.dumps({"999999": [1, 2]}))
    with pytest.raises(DataValidationError, match="999999"):
        load_item_attributes(tmp_path / "attrs.json", data.catalog)


def test_grid_skips_me_at_1x_which_is_rq_at_1x():
    from genrec.experiments.ctr.grid import CtrGrid

    cells = CtrGrid(backbones=["deepfm"], representations=["id", "rq", "me"], scales=[1, 2], fusion=[False]).cells()
    assert ("deepfm", "me", 1, False) not in cells and ("deepfm", "me", 2, False) in cells and len(cells) == 5


def test_grid_cells_by_cost_put_the_largest_scale_and_autoint_first():
    from genrec.experiments.ctr.grid import CtrGrid

    grid = CtrGrid(backbones=["deepfm", "autoint+"], representations=["id", "moc"], scales=[1, 7], fusion=[False])
    assert sorted(grid.by_cost()) == sorted(grid.cells())
    assert grid.by_cost()[:2] == [("autoint+", "id", 7, False), ("autoint+", "moc", 7, False)]
    assert [c[2] for c in grid.by_cost()] == [7, 7, 7, 7, 1, 1, 1, 1]


def test_representations_spend_the_same_fields_per_scale():
    rng = np.random.default_rng(0)
    calls = []

    def codes(kind, n):
        calls.append((kind, n))
        return rng.integers(0, 8, size=(20, n))

    for rep in ("rq", "me", "moc"):
        f = representation_fields(rep, 2, 20, base_levels=3, codebook_size=8, codes=codes)
        assert len(f.names) == 1 + 6 and f.vocab_sizes == [20] + [8] * 6 and f.values.shape == (20, 7)
    assert calls == [("residual", 6), ("residual", 3), ("parallel", 6)]
    me = representation_fields("me", 2, 20, 3, 8, lambda k, n: np.arange(60).reshape(20, 3) % 8)
    assert np.array_equal(me.values[:, 1:4], me.values[:, 4:7])  # same codes, separate tables
    ids = representation_fields("id", 3, 20, 3, 8, codes)
    assert ids.values.shape == (20, 3) and (ids.values == np.arange(20)[:, None]).all()


def test_elementary_symmetric_matches_brute_force():
    e = torch.randn(3, 5, 4, dtype=torch.float64)
    fast = elementary_symmetric(e, 5)
    for k in range(1, 6):
        brute = sum(torch.stack([e[:, i] for i in subset]).prod(0) for subset in itertools.combinations(range(5), k))
        torch.testing.assert_close(fast[k - 1], brute)


def test_fm_pairwise_matches_brute_force():
    e = torch.randn(4, 6, 3, dtype=torch.float64)
    brute = sum((e[:, i] * e[:, j]).sum(-1) for i, j in itertools.combinations(range(6), 2))
    torch.testing.assert_close(fm_pairwise(e), brute)


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@pytest.mark.parametrize("fusion,fused,batch_norm", [(False, None, False), (True, None, False), (True, [1, 2], False),
                                                     (False, None, True)])
def test_backbone_smoke_learns_a_field_rule(backbone, fusion, fused, batch_norm):
    """Tiny model, tiny data: logits have the right shape, and a label that is a function of two fields is learned."""
    torch.manual_seed(0)
    vocab = [5, 7, 3]
    cfg = CtrModelConfig(embedding_dim=8, dnn=[16], dropout=0.0, fusion=fusion, fusion_dim=8, attention_layers=1,
                         attention_dim=4, cross_layers=2, dnn_batch_norm=batch_norm, im_batch_norm=not batch_norm,
                         fusion_fields="all" if fused is None else "representation")
    model = build_ctr_model(backbone, vocab, cfg, fused)
    x = torch.stack([torch.randint(0, v, (512,)) for v in vocab], 1)
    y = ((x[:, 0] + x[:, 1]) % 2).float()
    assert model(x).shape == (512,)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(150):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert auc_logloss(y.numpy(), model(x).detach().numpy())["auc"] > 0.95


def test_every_model_setting_is_read_by_some_backbone():
    """What a saved fit is keyed by (`CtrModel.settings`) must cover every field, or a changed setting would be
    taken for the old one; and a backbone's own settings leave the others' keys alone."""
    claimed = set(SHARED_SETTINGS).union(*(b.own_settings for b in BACKBONES.values()))
    assert claimed == {f.name for f in dataclasses.fields(CtrModelConfig)}
    wider = CtrModelConfig(attention_dim=32)
    assert BACKBONES["deepfm"].settings(wider) == BACKBONES["deepfm"].settings(CtrModelConfig())
    assert BACKBONES["autoint+"].settings(wider) != BACKBONES["autoint+"].settings(CtrModelConfig())
    # which fields are fused keys a fit only where fusion is on and mixes a subset (fits saved before the
    # setting existed fused every field)
    settings = BACKBONES["deepfm"].settings
    assert settings(CtrModelConfig(fusion_fields="representation")) == settings(CtrModelConfig())
    assert "fusion_fields" not in settings(CtrModelConfig(fusion=True))
    assert settings(CtrModelConfig(fusion=True, fusion_fields="representation"))["fusion_fields"] == "representation"
    with pytest.raises(ValueError, match="fusion_fields='codes'"):
        CtrModelConfig(fusion_fields="codes")
    # so does fusion's own learning rate
    assert settings(CtrModelConfig(fusion_lr_scale=0.1)) == settings(CtrModelConfig())
    assert settings(CtrModelConfig(fusion=True, fusion_lr_scale=1.0)) == settings(CtrModelConfig(fusion=True))
    assert settings(CtrModelConfig(fusion=True, fusion_lr_scale=0.1))["fusion_lr_scale"] == 0.1
    with pytest.raises(ValueError, match="fusion_lr_scale must be positive"):
        CtrModelConfig(fusion_lr_scale=0.0)


def test_fusion_and_only_fusion_trains_at_its_own_learning_rate():
    data = toy_data()
    samples = build_ctr_samples(data, CtrSampleConfig(negatives=1, sample_seed=7))
    fields = representation_fields("id", 2, data.num_items, 3, 16, None)
    task = CtrTask(samples, fields, "deepfm", CtrModelConfig(embedding_dim=4, dnn=[8], fusion=True, fusion_lr_scale=0.1))
    fusion = {id(p) for p in task.model.fusion.parameters()}
    scales = {name: task.lr_scale(name) for name, p in task.model.named_parameters()}
    assert fusion and all(scales[n] == (0.1 if id(p) in fusion else 1.0) for n, p in task.model.named_parameters())


def test_deepim_without_batch_norm_is_a_weighted_sum_of_its_interaction_vectors():
    torch.manual_seed(0)
    model = build_ctr_model("deepim", [5, 7, 3], CtrModelConfig(embedding_dim=4, dnn=[], im_order=2, im_batch_norm=False))
    x = torch.tensor([[1, 2, 0], [4, 6, 2]])
    e = model.embedding(x)
    sums, pairs = e.sum(1), 0.5 * (e.sum(1) ** 2 - (e * e).sum(1))
    w, b = model.im_out.weight[0], model.im_out.bias
    by_hand = torch.cat([sums, pairs], 1) @ w + b + model.dnn(e.flatten(1)).squeeze(-1)
    torch.testing.assert_close(model(x), by_hand)


def test_embedding_l2_is_half_lambda_times_every_tables_squared_norm():
    """FuxiCTR's embedding regulariser: whole tables (DeepFM's first-order weights too), not the batch's rows."""
    torch.manual_seed(0)
    vocab = [5, 7, 3]
    model = build_ctr_model("deepfm", vocab, CtrModelConfig(embedding_dim=4, dnn=[8], embedding_l2=0.1))
    torch.nn.init.normal_(model.first_order.table.weight)
    by_hand = 0.05 * (model.embedding.table.weight.square().sum() + model.first_order.table.weight.square().sum())
    torch.testing.assert_close(model.regularization(), by_hand)
    assert build_ctr_model("deepfm", vocab, CtrModelConfig(embedding_dim=4, dnn=[8])).regularization() == 0.0


def test_autoint_layer_matches_a_plain_per_head_attention():
    """The batched layer (SDPA, unscaled) equals attention written out head by head."""
    from genrec.models.ctr.autoint import InteractingLayer

    torch.manual_seed(0)
    for in_dim in (6, 8):  # the width changes (projected residual) or is kept (identity residual)
        layer = InteractingLayer(in_dim, heads=2, head_dim=4).double()
        assert (layer.residual is not None) == (in_dim == 6)
        x = torch.randn(3, 5, in_dim, dtype=torch.float64)
        w = layer.qkv.weight  # rows: q, k, v, each heads * head_dim
        heads = []
        for h in range(2):
            q, k, v = (x @ w[i * 8 + h * 4 : i * 8 + (h + 1) * 4].T for i in range(3))
            heads.append(torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v)
        residual = layer.residual(x) if layer.residual is not None else x
        torch.testing.assert_close(layer(x), torch.relu(torch.cat(heads, dim=-1) + residual))


def test_fusion_starts_as_identity_and_mixes_fields_after_training():
    fusion = MoCFusion(num_fields=3, dim=4, bottleneck=2)
    e = torch.randn(5, 3, 4)
    assert torch.equal(fusion(e), e)
    torch.nn.init.normal_(fusion.up.weight)
    changed = e.clone()
    changed[:, 0] += 1.0
    assert not torch.allclose(fusion(changed)[:, 2], fusion(e)[:, 2])  # field 0 now reaches field 2


def test_fusion_over_some_fields_passes_the_others_through():
    fusion = MoCFusion(num_fields=4, dim=3, bottleneck=2, fields=[1, 3])
    torch.nn.init.normal_(fusion.up.weight)
    e = torch.randn(5, 4, 3)
    out = fusion(e)
    assert torch.equal(out[:, [0, 2]], e[:, [0, 2]])
    flat = e[:, [1, 3]].flatten(1)
    torch.testing.assert_close(out[:, [1, 3]], (flat + fusion.up(torch.nn.functional.gelu(fusion.down(flat)))).view(5, 2, 3))
    changed = e.clone()
    changed[:, 1] += 1.0
    assert not torch.allclose(fusion(changed)[:, 3], out[:, 3])  # field 1 reaches field 3
    changed = e.clone()
    changed[:, 0] += 1.0
    assert torch.equal(fusion(changed)[:, 3], out[:, 3])  # field 0 is not fused


def test_representation_columns_are_the_codes_or_the_id_copies():
    codes = lambda kind, n: np.zeros((6, n), dtype=np.int64)  # noqa: E731
    attrs = ItemFields(["attr_0", "attr_1"], np.zeros((6, 2), dtype=np.int64), [3, 3])
    moc = attrs + representation_fields("moc", 2, 6, 3, 8, codes)
    assert [moc.names[c] for c in representation_columns(moc)] == [f"moc_c{i}" for i in range(6)]
    me = attrs + representation_fields("me", 2, 6, 3, 8, codes)
    assert representation_columns(me) == list(range(3, 9))  # both copies of the codes, not the item ID
    ids = attrs + representation_fields("id", 3, 6, 3, 8, codes)
    assert [ids.names[c] for c in representation_columns(ids)] == ["item_id_0", "item_id_1", "item_id_2"]


def test_auc_logloss_by_hand_and_nan_raises():
    labels = np.array([1, 0, 1, 0])
    logits = np.array([2.0, 1.0, 0.0, -1.0])  # positive pairs ranked right: (2>1),(2>-1),(0>-1); wrong: (0<1)
    out = auc_logloss(labels, logits)
    assert out["auc"] == pytest.approx(3 / 4)
    p = 1 / (1 + np.exp(-logits))
    assert out["logloss"] == pytest.approx(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
    with pytest.raises(FloatingPointError, match="non-finite"):
        auc_logloss(labels, np.array([np.nan, 0.0, 1.0, 2.0]))


@pytest.mark.slow
def test_ctr_grid_end_to_end_and_resume(tmp_path, beauty_slice, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE", str(tmp_path / "cache"))
    overrides = [f"data.dataset={beauty_slice}", f"output_dir={tmp_path}/runs", f"results_dir={tmp_path}/results",
                 "name=ctr_smoke", "seeds=[1,2]", "grid.backbones=[deepfm,dcnv2]", "grid.representations=[id,moc]",
                 "grid.scales=[1]", "grid.fusion=[false,true]", "tokenizer.codebook_size=16",
                 "tokenizer.hidden_dims=[32]", "tokenizer.latent_dim=8", "tokenizer.train.epochs=3",
                 "model.embedding_dim=4", "model.dnn=[16]", "train.epochs=2", "train.batch_size=256"]
    monkeypatch.setattr("genrec.experiments.ctr.grid.item_embeddings", lambda catalog, **_: np.random.default_rng(0).normal(size=(len(catalog), 24)))
    cfg = load_config(CtrRunConfig, overrides=overrides)
    result = run_ctr(cfg)
    saved = json.loads((tmp_path / "results" / "ctr_smoke.json").read_text())
    assert len(saved["rows"]) == 2 * 2 * 2
    for row in saved["rows"]:
        assert 0.0 < row["auc"] < 1.0 and row["logloss"] > 0 and len(row["per_seed"]) == 2
        assert row["fields"] == 1 + 4 + (1 if row["representation"] == "id" else 4)  # user + attrs + item fields
        # each row reports what its backbone was trained with: DCNv2 its own embedding L2, fusion its fields
        model = row["settings"]["model"]
        assert model["embedding_l2"] == (1e-3 if row["backbone"] == "dcnv2" else 3e-3)
        assert ("cross_layers" in model) == (row["backbone"] == "dcnv2") and row["settings"]["train"]["epochs"] == 2
        assert model.get("fusion_fields") == ("representation" if row["fusion"] else None)
        assert model.get("fusion_lr_scale") == (0.01 if row["fusion"] else None)
        for fit in row["per_seed"]:  # the per-epoch curves, for comparing how fusion fits its training rows
            assert len(fit["curves"]["train_logloss"]) == fit["epochs_run"] == len(fit["curves"]["valid_auc"])
            assert max(fit["curves"]["valid_auc"]) == pytest.approx(fit["best_valid_auc"])
    assert saved["samples"]["test"]["positives"] == 150 and saved["samples"]["test"]["rows"] == 300
    again = run_ctr(cfg)  # every fit is found on disk and not retrained
    assert [r["auc"] for r in again["rows"]] == [r["auc"] for r in result["rows"]]
    # collecting a larger grid reports the finished cells and names the missing ones, training nothing
    collected = run_ctr(load_config(CtrRunConfig, overrides=overrides + ["grid.backbones=[deepfm,deepim,dcnv2]",
                                                                         "grid.only_finished=true"]))
    assert [r["auc"] for r in collected["rows"]] == [r["auc"] for r in result["rows"]]
    assert collected["missing_cells"] == ["deepim_id_x1_plain", "deepim_id_x1_fusion", "deepim_moc_x1_plain",
                                          "deepim_moc_x1_fusion"]
    assert not (tmp_path / "runs" / "ctr_smoke" / "deepim_id_x1_plain").exists()
    assert collected["unfinished_cells"] == []  # no cell has some seeds but not all
    # a fit saved under other training settings is not taken for this run's: collecting finds nothing
    other = run_ctr(load_config(CtrRunConfig, overrides=overrides + ["train.lr=0.05", "grid.only_finished=true"]))
    assert other["rows"] == [] and len(other["missing_cells"]) == 8
    # ... while a setting only DCNv2 reads leaves DeepFM's fits standing
    cross = run_ctr(load_config(CtrRunConfig, overrides=overrides + ["model.cross_layers=1", "grid.only_finished=true"]))
    assert [r["backbone"] for r in cross["rows"]] == ["deepfm"] * 4 and len(cross["missing_cells"]) == 4
    # the runs folder lost (tokenizers too): the first results file puts every fit back, and collecting finds them
    import shutil
    shutil.rmtree(tmp_path / "runs" / "ctr_smoke")
    (tmp_path / "committed.json").write_text(json.dumps(saved))
    restore = [f"grid.restore_from=[{tmp_path}/committed.json]", "grid.only_finished=true"]
    restored = run_ctr(load_config(CtrRunConfig, overrides=overrides + restore))
    assert [r["auc"] for r in restored["rows"]] == [r["auc"] for r in result["rows"]] and "missing_cells" not in restored
    # a cell with one of its two seeds saved is missing, and its saved seed is carried in the results to restore
    (tmp_path / "runs" / "ctr_smoke" / "deepfm_id_x1_plain" / "seed_2" / "result.json").unlink()
    partial = run_ctr(load_config(CtrRunConfig, overrides=overrides + ["grid.only_finished=true"]))
    assert partial["missing_cells"] == ["deepfm_id_x1_plain"]
    [unfinished] = partial["unfinished_cells"]
    assert (unfinished["backbone"], unfinished["scale"]) == ("deepfm", 1) and [f["seed"] for f in unfinished["per_seed"]] == [1]
    shutil.rmtree(tmp_path / "runs" / "ctr_smoke")
    (tmp_path / "partial.json").write_text(json.dumps(partial))
    again = run_ctr(load_config(CtrRunConfig, overrides=overrides + [f"grid.restore_from=[{tmp_path}/partial.json]",
                                                                     "grid.only_finished=true"]))
    assert again["missing_cells"] == ["deepfm_id_x1_plain"] and again["unfinished_cells"] == partial["unfinished_cells"]
    # ... but under other settings a restored fit is not taken for this run's
    assert run_ctr(load_config(CtrRunConfig, overrides=overrides + restore + ["train.lr=0.05"]))["rows"] == []
    with pytest.raises(ValueError, match="holds grid 'ctr_smoke'"):
        run_ctr(load_config(CtrRunConfig, overrides=overrides + restore + ["name=ctr_other"]))


@pytest.mark.slow
def test_side_by_side_processes_skip_the_fits_another_holds(tmp_path, beauty_slice, monkeypatch):
    import os
    import socket

    monkeypatch.setenv("GENREC_CACHE", str(tmp_path / "cache"))
    overrides = [f"data.dataset={beauty_slice}", f"output_dir={tmp_path}/runs", f"results_dir={tmp_path}/results",
                 "name=ctr_side", "seeds=[1,2]", "grid.backbones=[deepfm]", "grid.representations=[id]",
                 "grid.scales=[1]", "grid.fusion=[false]", "grid.side_by_side=true", "model.embedding_dim=4",
                 "model.dnn=[16]", "train.epochs=1", "train.batch_size=256"]
    cfg = load_config(CtrRunConfig, overrides=overrides)
    held = tmp_path / "runs" / "ctr_side" / "deepfm_id_x1_plain" / "seed_2"
    held.mkdir(parents=True)
    lock = held / ".genrec.lock"  # another live process (this one, as far as the lock can tell) trains seed 2
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    first = run_ctr(cfg)
    assert first["rows"] == [] and first["missing_cells"] == ["deepfm_id_x1_plain"]
    assert (held.parent / "seed_1" / "result.json").exists() and not (held / "result.json").exists()
    lock.unlink()  # that process is done with it (without saving): the next run trains seed 2 alone
    seed_1 = (held.parent / "seed_1" / "result.json").stat().st_mtime_ns
    second = run_ctr(cfg)
    assert (held.parent / "seed_1" / "result.json").stat().st_mtime_ns == seed_1
    assert len(second["rows"]) == 1 and [f["seed"] for f in second["rows"][0]["per_seed"]] == [1, 2]
    assert (held / "result.json").exists() and not lock.exists()


def test_kept_codes_are_read_before_any_cache_or_fit(tmp_path, monkeypatch):
    """A grid filled on several machines trains on the codes kept with its results, not on a refit's."""
    from genrec.experiments.ctr import fields
    from genrec.experiments.tokenizer import TokenizerFitConfig

    tok = TokenizerFitConfig(codebook_size=8, hidden_dims=[16], latent_dim=4)
    tok.train.epochs = 2
    x = np.random.default_rng(0).normal(size=(40, 12)).astype(np.float32)
    first = fields.tokenizer_codes(x, tok, tmp_path / "runs", tmp_path / "kept")("residual", 2)
    kept = list((tmp_path / "kept").glob("residual_2_*.npz"))
    assert len(kept) == 1 and np.load(kept[0])["codes"].dtype == np.uint8 and first.shape == (40, 2)
    monkeypatch.setattr(fields, "fit_tokenizer", lambda *a: pytest.fail("kept codes must not be refit"))
    again = fields.tokenizer_codes(x, tok, tmp_path / "other_runs", tmp_path / "kept")("residual", 2)
    assert again.dtype == np.int64 and np.array_equal(again, first)


def test_merge_ctr_results_unions_cells_and_refuses_other_samples():
    from genrec.experiments.ctr.grid import merge_ctr_results

    def part(cells, auc, samples=None):
        rows = [{"backbone": b, "representation": r, "scale": s, "fusion": f, "auc": auc} for b, r, s, f in cells]
        grid = {"backbones": sorted({c[0] for c in cells}), "representations": sorted({c[1] for c in cells}),
                "scales": sorted({c[2] for c in cells}), "fusion": [False]}
        return {"command": f"part {auc}", "wall_seconds": 1.0, "samples": samples or {"test": {"rows": 10}}, "rows": rows,
                "config": {"name": "ctr", "grid": grid}}

    a = part([("deepfm", "id", 1, False), ("deepfm", "rq", 1, False)], 0.7)
    b = part([("deepim", "id", 1, False), ("deepfm", "rq", 1, False)], 0.8)
    merged = merge_ctr_results([a, b])
    keys = [(r["backbone"], r["representation"], r["auc"]) for r in merged["rows"]]
    assert keys == [("deepfm", "id", 0.7), ("deepfm", "rq", 0.8), ("deepim", "id", 0.8)]
    assert merged["commands"] == ["part 0.7", "part 0.8"] and merged["wall_seconds"] == 2.0
    assert merged["config"]["grid"]["backbones"] == ["deepfm", "deepim"] and "missing_cells" not in merged
    # a cell one part misses stays missing, with its saved seeds, unless another part finished it
    a["missing_cells"], a["unfinished_cells"] = ["deepim_id_x1_plain", "dcnv2_id_x1_plain"], [
        {"backbone": b, "representation": "id", "scale": 1, "fusion": False, "per_seed": [{"seed": 1}]}
        for b in ("deepim", "dcnv2")]
    merged = merge_ctr_results([a, b])
    assert merged["missing_cells"] == ["dcnv2_id_x1_plain"]
    assert [u["backbone"] for u in merged["unfinished_cells"]] == ["dcnv2"]
    with pytest.raises(ValueError, match="different samples"):
        merge_ctr_results([a, part([], 0.5, samples={"test": {"rows": 11}})])


def test_a_backbones_own_settings_replace_the_shared_ones_only_in_its_cells():
    cfg = load_config(CtrRunConfig, overrides=["train.lr=0.002", "backbone.autoint.lr=0.01",
                                               "backbone.dcnv2.embedding_l2=0.05", "backbone.dcnv2.dropout=0.3"])
    assert cfg.for_backbone("autoint+").train.lr == 0.01
    assert cfg.for_backbone("autoint+").model.embedding_l2 == cfg.model.embedding_l2 == 3e-3  # the shared default
    assert cfg.for_backbone("deepim").model.embedding_l2 == 3e-3
    assert load_config(CtrRunConfig).for_backbone("dcnv2").model.embedding_l2 == 1e-3  # tuned: its own
    dcn = cfg.for_backbone("dcnv2")
    assert (dcn.train.lr, dcn.model.embedding_l2, dcn.model.dropout) == (0.002, 0.05, 0.3)
    assert cfg.for_backbone("deepfm").train == cfg.train and cfg.for_backbone("deepfm").model == cfg.model
