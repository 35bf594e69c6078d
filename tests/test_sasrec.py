import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genrec.data import Catalog, SequenceData, leave_one_out
from genrec.models.sasrec import SasRec, SasRecConfig
from genrec.experiments.baselines import SasRecTask
from genrec.models.item_embedding import ItemEmbedding

CFG = SasRecConfig(d_model=16, num_layers=1, num_heads=2, dropout=0.0, max_history=6)


def test_sasrec_smoke_scores_are_finite_with_padded_histories():
    model = SasRec(30, CFG).eval()
    history = torch.tensor([[-1, -1, -1, -1, -1, 3], [1, 2, 3, 4, 5, 6]])
    scores = model(history)
    assert scores.shape == (2, 30) and torch.isfinite(scores).all()


def test_scores_stay_fp32_under_bf16_autocast():
    model = SasRec(30, CFG).eval()
    history = torch.tensor([[-1, -1, -1, 1, 2, 3]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = model(history)
        state = model.user_state(history)
    assert scores.dtype == torch.float32
    expected = state.float() @ model.item_table()[1:].float().T  # the reference: the same state, scored in fp32
    assert torch.allclose(scores, expected)


def test_sasrec_is_causal_in_the_state_it_uses():
    model = SasRec(30, CFG).eval()
    a = model.user_state(torch.tensor([[-1, 1, 2, 3, 4, 5]]))
    b = model.user_state(torch.tensor([[-1, -1, 2, 3, 4, 5]]))
    assert not torch.allclose(a, b)  # an earlier item (not only the last) changes the state
    c = model.user_state(torch.tensor([[-1, 7, 2, 3, 4, 5]]))
    assert not torch.allclose(a, c)


def test_sasrec_learns_a_deterministic_next_item():
    rng = np.random.default_rng(0)
    n_items = 20
    # every user walks i, i+1, i+2, ... (mod n): the next item is fully predictable
    seqs = [np.arange(s, s + 8) % n_items for s in rng.integers(0, n_items, 64)]
    data = SequenceData("walk", Catalog([str(i) for i in range(n_items)]), [str(u) for u in range(64)], seqs)
    task = SasRecTask(leave_one_out(data, 6), n_items, CFG)
    opt = torch.optim.Adam(task.model.parameters(), lr=1e-2)
    for _ in range(150):
        batch = task.batch(torch.arange(task.num_train_examples()), torch.device("cpu"))
        loss, _ = task.loss(task.model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()

    from accelerate import Accelerator

    metrics = task.evaluate(task.model, "test", Accelerator(cpu=True))
    assert metrics["recall@5"] == pytest.approx(1.0)


def test_unified_items_are_id_plus_semantic_and_train():
    semantic = torch.randn(30, 8)
    unified = ItemEmbedding(semantic, id_dim=4, d_model=CFG.d_model)
    model = SasRec(30, CFG, unified)
    table = model.item_table()
    assert table.shape == (31, CFG.d_model) and torch.all(table[0] == 0)
    # per-item parameters are only the small ID part; the semantic part is shared, fixed input
    assert sum(p.numel() for n, p in model.named_parameters() if "ids" in n) == 30 * 4
    scores = model(torch.tensor([[-1, -1, 2, 3, 4, 5]]))
    scores[0, 7].backward()
    assert unified.ids.weight.grad is not None and unified.ids.weight.grad.abs().sum() > 0


def test_jointly_trained_unified_items_train_the_tokenizer_with_its_rq_losses():
    from genrec.quantize import SemanticTokenizer, TokenizerConfig

    text = torch.randn(30, 12)
    tokenizer = SemanticTokenizer(12, TokenizerConfig(num_levels=2, codebook_size=4, latent_dim=6, hidden_dims=[16]))
    tokenizer.initialize(text, torch.Generator().manual_seed(0))
    unified = ItemEmbedding.live(tokenizer, text, id_dim=4, d_model=CFG.d_model)
    model = SasRec(30, CFG, unified, rq_weight=0.5).train()
    history = torch.tensor([[-1, -1, 2, 3, 4, 5]])
    loss = F.cross_entropy(model(history), torch.tensor([7])) + model.aux_loss()
    assert model.aux_loss() > 0
    expected = 0.5 * tokenizer(text).loss  # the task adds the tokenizer's own RQ-VAE losses, weighted
    assert model.aux_loss().item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    # the recommendation loss reaches the tokenizer's encoder (rotation-trick gradients) and the ID half
    assert tokenizer.encoder[0].weight.grad.abs().sum() > 0 and unified.ids.weight.grad.abs().sum() > 0
    # scoring needs no decoder pass and gives the same table as training mode's quantized vectors
    train_table = model.item_table().detach()
    assert torch.allclose(model.eval().item_table(), train_table, atol=1e-6)
    with pytest.raises(ValueError, match="needs the item text"):
        ItemEmbedding(torch.zeros(30, 6), id_dim=4, d_model=8, tokenizer=tokenizer)


def test_sampled_reconstruction_agrees_with_the_full_loss_and_is_unbiased():
    from genrec.quantize import SemanticTokenizer, TokenizerConfig

    text = torch.randn(40, 12)
    tokenizer = SemanticTokenizer(12, TokenizerConfig(num_levels=2, codebook_size=4, latent_dim=6, hidden_dims=[16]))
    tokenizer.initialize(text, torch.Generator().manual_seed(0))
    full = tokenizer(text)
    # the reference: decoding every row by index is the plain forward pass
    every = tokenizer(text, recon_rows=torch.arange(40))
    assert every.recon_loss.item() == pytest.approx(full.recon_loss.item(), rel=1e-6)
    # a subset's loss is the mean squared error of exactly those rows
    rows = torch.tensor([3, 17, 29])
    target = (text[rows] - tokenizer.mean) / tokenizer.std
    by_hand = ((tokenizer.decoder(full.quantized[rows]) - target) ** 2).mean()
    assert tokenizer(text, recon_rows=rows).recon_loss.item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert tokenizer(text, recon_rows=rows).quant_loss.item() == pytest.approx(full.quant_loss.item(), rel=1e-6)

    model = SasRec(40, CFG, ItemEmbedding.live(tokenizer, text, id_dim=4, d_model=CFG.d_model), rq_sample=10).train()
    torch.manual_seed(0)
    draws = []
    for _ in range(400):
        model.item_table()
        draws.append(model.aux_loss().item())
    # uniform draws: the mean over many steps is the full loss, while single steps vary
    assert np.mean(draws) == pytest.approx(full.loss.item(), rel=0.03)
    assert np.std(draws) > 0
    model.zero_grad()
    model.item_table()
    model.aux_loss().backward()
    assert tokenizer.decoder[0].weight.grad.abs().sum() > 0  # the decoder still learns from the sampled rows


def test_merge_baseline_results_pools_seeds_per_model():
    from genrec.experiments.baselines import merge_baseline_results

    def result(model, seed, r10):
        return {"command": f"run {model} {seed}", "wall_seconds": seed, "models": {
            "popularity": {"metrics": {"recall@10": 0.01}},
            model: {"per_seed": [{"seed": seed, "test": {"recall@10": r10}}]}}}

    merged = merge_baseline_results([result("sasrec_id", 1, 0.1), result("sasrec_id", 2, 0.3), result("sasrec_unified", 1, 0.2)])
    assert set(merged["models"]) == {"popularity", "sasrec_id", "sasrec_unified"}
    assert merged["models"]["sasrec_id"]["metrics"]["recall@10"] == pytest.approx(0.2)
    assert merged["models"]["sasrec_id"]["metrics_std"]["recall@10"] == pytest.approx(0.1)
    assert merged["seeds"] == [1, 2] and len(merged["commands"]) == 3


def test_baseline_runner_on_a_slice(tmp_path):
    from genrec.experiments.baselines import BaselineRunConfig, run_baselines
    from genrec.config import load_config

    cfg = load_config(BaselineRunConfig, overrides=[
        "data.max_users=200", "models=[sasrec_id,sasrec_unified]", "train.epochs=1", "train.progress=false",
        "train.mixed_precision=no",  # the reload below re-scores in fp32
        f"output_dir={tmp_path}/runs", f"results_dir={tmp_path}/results", "sasrec.d_model=16", "sasrec.num_layers=1",
        "tokenizer.codebook_size=16", "tokenizer.latent_dim=8", "tokenizer.hidden_dims=[32]", "tokenizer.train.epochs=2"])
    result = run_baselines(cfg)
    assert set(result["models"]) == {"popularity", "sasrec_id", "sasrec_unified"}
    assert result["models"]["sasrec_unified"]["per_seed"][0]["history"][0]["train_rq"] > 0  # the tokenizer's losses were in
    assert (tmp_path / "results" / "beauty_baselines.json").exists()
    # a saved fit reloads with its best weights (the jointly trained tokenizer included) and scores as it did
    from accelerate import Accelerator
    from genrec.experiments.baselines import load_baseline

    for model_name in ("sasrec_id", "sasrec_unified"):
        saved = load_baseline(tmp_path / "runs" / "beauty_baselines" / f"{model_name}_seed_42")
        test = saved.task.evaluate(saved.task.model, "test", Accelerator(cpu=True))
        assert test == pytest.approx(result["models"][model_name]["per_seed"][0]["test"], abs=1e-6)
    # tools/rescore_baseline.py: fp32 rescoring reproduces the (fp32) run; bf16 audits are well-formed
    from genrec.experiments.score_precision import rescore

    row = rescore(str(tmp_path / "runs" / "beauty_baselines" / "sasrec_unified_seed_42"))
    assert row["metrics_fp32"] == pytest.approx(result["models"]["sasrec_unified"]["per_seed"][0]["test"], abs=1e-6)
    flips = row["codes_changed_by_bf16_encoder"]
    assert len(flips["changed_per_level"]) == cfg.tokenizer.num_levels
    assert max(flips["changed_per_level"]) <= flips["changed"] <= min(sum(flips["changed_per_level"]), flips["items"])
    assert set(row["metrics_bf16_item_table"]) == set(row["metrics_fp32"]) and row["bf16_items_tied_with_target"]["mean"] >= 0
    with pytest.raises(FileNotFoundError, match="not a finished baseline fit"):
        load_baseline(tmp_path / "runs")
    with pytest.raises(ValueError, match="unknown baseline model"):
        run_baselines(load_config(BaselineRunConfig, overrides=["models=[gru4rec]", "data.max_users=50"]))
