"""Joint tokenizer + recommender training: schedule, gradient routing, code refresh, and a tiny end-to-end run."""
import json

import numpy as np
import pytest
import torch

from genrec.data import leave_one_out, load_dataset
from genrec.experiments.seq import DecodeConfig, run
from genrec.experiments.seq.schedule import JointConfig, plan_epochs
from genrec.experiments.seq.tasks import JointTask, item_codes, joint_level_sizes
from genrec.models.item_embedding import ItemEmbedding, table_sizes
from genrec.models.recommender import GenerativeRecommender
from genrec.models.seq2seq import Seq2SeqConfig
from genrec.quantize import SemanticTokenizer, TokenizerConfig


def _plan(cfg: JointConfig, epochs: int) -> list[str]:
    return [str(e) for e in plan_epochs(cfg, epochs)]


def test_alternating_schedule_ends_with_recommender_fine_tune():
    assert _plan(JointConfig(schedule="alternating", rec_epochs=2, tok_epochs=1, cycles=2), 8) == ["rec", "rec", "tok+refresh"] * 2 + ["rec", "rec"]
    assert _plan(JointConfig(schedule="simultaneous"), 3) == ["both+refresh"] * 3
    with pytest.raises(ValueError, match="no final recommender epoch"):
        plan_epochs(JointConfig(schedule="alternating", rec_epochs=1, cycles=2), 4)


def test_target_freeze_refreshes_only_at_the_window_end():
    cfg = JointConfig(schedule="target_freeze", rec_epochs=1, freeze_epochs=3, window_refresh=True, cycles=2)
    assert _plan(cfg, 9) == ["rec", "both", "both", "both+refresh"] * 2 + ["rec"]
    assert _plan(JointConfig(), 3) == ["both", "both", "rec"]  # the default: the targets never move
    with pytest.raises(ValueError, match="freeze_epochs"):
        plan_epochs(JointConfig(schedule="target_freeze", freeze_epochs=0), 3)
    with pytest.raises(ValueError, match="schedule must be"):
        plan_epochs(JointConfig(schedule="sometimes"), 3)


def test_soft_assignment_argmax_is_the_hard_code():
    torch.manual_seed(0)
    x = torch.randn(300, 24)
    tok = SemanticTokenizer(24, TokenizerConfig(codebook_size=16, latent_dim=8, hidden_dims=[32]))
    tok.initialize(x)
    z = tok.encode(x)
    soft = tok.quantizer.soft_assignments(z)
    hard = tok.quantizer(z).codes
    assert torch.equal(torch.stack([s.argmax(-1) for s in soft], 1), hard)


def _toy_task(epochs=3, **joint):
    rng = np.random.default_rng(0)
    from genrec.data import Catalog, SequenceData

    num_items = 64
    seqs = [rng.choice(num_items, size=6, replace=False) for _ in range(40)]
    data = SequenceData("toy", Catalog([str(i) for i in range(num_items)]), [str(u) for u in range(40)], seqs)
    text = torch.randn(num_items, 24, generator=torch.Generator().manual_seed(0))
    tok_cfg = TokenizerConfig(codebook_size=8, latent_dim=8, hidden_dims=[32], num_levels=3)
    tok = SemanticTokenizer(24, tok_cfg)
    tok.initialize(text)
    model_cfg = Seq2SeqConfig(num_layers=1, num_decoder_layers=1, d_model=16, num_heads=2, d_kv=8, d_ff=32, user_buckets=4,
                               decoder="tiger")
    level_sizes = joint_level_sizes(tok_cfg)
    codes, _ = item_codes(tok, text, level_sizes)
    model = GenerativeRecommender(codes, level_sizes, model_cfg, 5, ItemEmbedding.live(tok, text, 4, model_cfg.d_model))
    return JointTask(model, leave_one_out(data, 5), DecodeConfig(beam=8, topk=5, batch_size=16), seed=0,
                     joint=JointConfig(**joint), epochs=epochs)


def test_gradients_follow_the_phase():
    task = _toy_task(schedule="alternating", rec_epochs=1)
    model = task.model

    class Acc:
        device = torch.device("cpu")

    batch = task.batch(torch.arange(16), torch.device("cpu"))
    for epoch, phase in enumerate(task.phases):
        task.on_epoch_start(model, epoch, Acc)
        model.zero_grad(set_to_none=True)
        loss, logs = task.loss(model, batch)
        loss.backward()
        enc_grad = model.items.tokenizer.encoder[0].weight.grad
        t5_grad = model.t5.shared.weight.grad
        if phase.phase == "tok":  # the recommendation loss reaches the tokenizer; the recommender stays fixed
            assert enc_grad is not None and enc_grad.abs().sum() > 0 and t5_grad is None
            assert set(logs) == {"rec", "rq", "align"}
        else:
            assert enc_grad is None and t5_grad is not None and set(logs) == {"rec"}
            assert model.items.ids.weight.grad is not None


def test_refresh_rebuilds_targets_and_trie_from_new_codes():
    task = _toy_task(schedule="alternating", rec_epochs=1)
    model = task.model

    class Acc:
        device = torch.device("cpu")

    with torch.no_grad():  # move the tokenizer a little, so some codes change
        for level in model.items.tokenizer.quantizer.levels:
            level.weight.add_(0.3 * level.weight.std() * torch.randn_like(level.weight))
    task.on_epoch_start(model, 1, Acc)  # a tokenizer epoch
    logs = task.on_epoch_end(model, 2, Acc)
    assert logs["code_churn"] > 0
    codes = model.codes.codes
    assert len(torch.unique(codes, dim=0)) == len(codes)  # collisions resolved again, vocabulary unchanged
    assert torch.equal(model.codes.vocab.item_tokens[:-1] - torch.tensor(model.codes.level_offsets), codes)
    leaves = model.codes.trie.item[model.codes.trie.item >= 0]
    assert sorted(leaves.tolist()) == list(range(len(codes)))


def test_target_freeze_window_keeps_targets_while_inputs_follow_the_tokenizer():
    task = _toy_task(window_refresh=True)
    model = task.model

    class Acc:
        device = torch.device("cpu")

    codes, latent, labels = model.codes.codes.clone(), model.items.semantic.clone(), model.codes.vocab.item_tokens.clone()
    task.on_epoch_start(model, 0, Acc)  # a `both` epoch: the two parts learn together
    batch = task.batch(torch.arange(16), torch.device("cpu"))
    loss, logs = task.loss(model, batch)
    loss.backward()
    assert model.items.tokenizer.encoder[0].weight.grad.abs().sum() > 0 and model.t5.shared.weight.grad is not None
    assert set(logs) == {"rec", "rq", "align"}
    with torch.no_grad():  # stand-in for a tokenizer update large enough to move codes
        for level in model.items.tokenizer.quantizer.levels:
            level.weight.add_(0.3 * level.weight.std() * torch.randn_like(level.weight))
    assert task.on_epoch_end(model, 1, Acc) == {}  # inside the window: no refresh
    assert torch.equal(model.codes.codes, codes) and torch.equal(model.codes.vocab.item_tokens, labels)
    assert not torch.allclose(model.items.semantic, latent)  # the history inputs did follow the tokenizer
    task.on_epoch_start(model, 1, Acc)  # the window's last epoch refreshes the targets
    assert task.on_epoch_end(model, 2, Acc)["code_churn"] > 0
    assert not torch.equal(model.codes.codes, codes)


def test_table_size_reduction():
    sizes = table_sizes(num_items=12101, id_dim=16, codebook_size=256, levels=3, latent_dim=32, d_model=128)
    assert sizes["unified"] == 12101 * 16 + 256 * 3 * 32 and sizes["plain_id"] == 12101 * 128
    assert 0.8 < sizes["reduction"] < 0.9


@pytest.mark.slow
def test_joint_run_end_to_end(tmp_path, tiny_seq_config):
    cfg = tiny_seq_config("name=joint", "mode=joint", "train.epochs=3", "joint.schedule=alternating",
                          "joint.rec_epochs=1", "joint.align_weight=0.1", "joint.align_warmup_steps=2",
                          "joint.suffix_slots=128")
    run(cfg)
    saved = json.loads((tmp_path / "results" / "joint.json").read_text())
    assert saved["mode"] == "joint"
    assert saved["metrics"]["invalid_rate"] == 0.0 and saved["metrics"]["duplicate_rate"] == 0.0
    history = saved["per_seed"][0]["history"]
    assert "code_churn" in history[1] and "code_churn" not in history[0]  # refreshed after the tokenizer epoch

    # the saved model (tokenizer, ID embeddings, T5 and the codes it was trained on, in one safetensors file)
    # reloads without the training config and reproduces the test metrics through the same beam search
    from genrec.evaluation.ranking import metrics_from_ranks, target_ranks_from_topk

    model = GenerativeRecommender.from_pretrained(tmp_path / "runs" / "joint" / "seed_42" / "model")
    data = load_dataset(cfg.data.dataset)
    assert model.codes.codes.shape == (data.num_items, 4)  # 3 levels + dedup suffix
    assert len(torch.unique(model.codes.codes, dim=0)) == data.num_items
    assert model.items.tokenizer is not None and model.items.item_text.shape[0] == data.num_items
    test = leave_one_out(data, cfg.data.max_history).test
    items, _ = model.generate(torch.from_numpy(test.history), torch.from_numpy(test.user), cfg.decode.beam, cfg.decode.topk)
    recall = metrics_from_ranks(target_ranks_from_topk(items, torch.from_numpy(test.target)))["recall@10"]
    assert recall == pytest.approx(saved["metrics"]["recall@10"])
    recs = model.recommend([data.catalog.original_ids[i] for i in data.sequences[0][:3]], k=5)
    assert len({r["item_id"] for r in recs}) == 5
    assert [r["score"] for r in recs] == sorted((r["score"] for r in recs), reverse=True)
