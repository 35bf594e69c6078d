import numpy as np
import pytest
import torch

from genrec.data import Catalog, SequenceData, leave_one_out
from genrec.models.sasrec import SasRec, SasRecConfig
from genrec.tasks import SasRecTask

CFG = SasRecConfig(d_model=16, num_layers=1, num_heads=2, dropout=0.0, max_history=6)


def test_sasrec_smoke_scores_are_finite_with_padded_histories():
    model = SasRec(30, CFG).eval()
    history = torch.tensor([[-1, -1, -1, -1, -1, 3], [1, 2, 3, 4, 5, 6]])
    scores = model(history)
    assert scores.shape == (2, 30) and torch.isfinite(scores).all()


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
    from genrec.models.sasrec import UnifiedItemEmbedding

    semantic = torch.randn(30, 8)
    unified = UnifiedItemEmbedding(semantic, id_dim=4, d_model=CFG.d_model)
    model = SasRec(30, CFG, unified)
    table = model.item_table()
    assert table.shape == (31, CFG.d_model) and torch.all(table[0] == 0)
    # per-item parameters are only the small ID part; the semantic part is shared, fixed input
    assert sum(p.numel() for n, p in model.named_parameters() if "ids" in n) == 30 * 4
    scores = model(torch.tensor([[-1, -1, 2, 3, 4, 5]]))
    scores[0, 7].backward()
    assert unified.ids.weight.grad is not None and unified.ids.weight.grad.abs().sum() > 0


def test_baseline_runner_on_a_slice(tmp_path):
    from genrec.baselines import BaselineRunConfig, run_baselines
    from genrec.config import load_config

    cfg = load_config(BaselineRunConfig, overrides=[
        "data.max_users=200", "models=[sasrec_id]", "train.epochs=1", "train.progress=false",
        f"output_dir={tmp_path}/runs", f"results_dir={tmp_path}/results", "sasrec.d_model=16", "sasrec.num_layers=1"])
    result = run_baselines(cfg)
    assert set(result["models"]) == {"popularity", "sasrec_id"}
    assert (tmp_path / "results" / "beauty_baselines.json").exists()
    with pytest.raises(ValueError, match="unknown baseline model"):
        run_baselines(load_config(BaselineRunConfig, overrides=["models=[gru4rec]", "data.max_users=50"]))
