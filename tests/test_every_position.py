"""Every-position training: one causal pass per row equals the sliding-window reference at every position."""
import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genrec.data import Catalog, SequenceData, leave_one_out
from genrec.data.splits import training_rows
from genrec.hardware import native_bf16
from genrec.models import losses as L
from genrec.models.item_embedding import ItemEmbedding
from genrec.models.recommender import GenerativeRecommender
from genrec.models.seq2seq import Seq2SeqConfig


def toy_data(n_items=40, n_users=12, seed=0) -> SequenceData:
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, n_items, rng.integers(4, 30)) for _ in range(n_users)]
    return SequenceData("toy", Catalog([str(i) for i in range(n_items)]), [str(u) for u in range(n_users)], seqs)


def toy_model(n_items=40, user_buckets=0, seed=0, decoder="item_table",
              item_score_precision="fp32") -> GenerativeRecommender:
    torch.manual_seed(seed)
    codes = torch.from_numpy(np.unique(np.random.default_rng(seed).integers(0, 6, size=(300, 3)), axis=0)[:n_items])
    cfg = Seq2SeqConfig(num_layers=2, num_decoder_layers=2, d_model=16, num_heads=2, d_kv=8, d_ff=32, dropout=0.0,
                        user_buckets=user_buckets, decoder=decoder, item_score_precision=item_score_precision)
    items = ItemEmbedding(torch.randn(n_items, 6), id_dim=4, d_model=16)
    model = GenerativeRecommender(codes, [6, 6, 6], cfg, max_history=8, items=items, causal=True).eval()
    if model.head.node_proj is not None:  # away from its zero start, so the item-table term counts in every check
        torch.nn.init.normal_(model.head.node_proj.weight, std=0.3)
    return model


def ordered_table(model: GenerativeRecommender) -> torch.Tensor:
    return model.items.table().index_select(0, model.codes.trie.code_order)


def root_of(model: GenerativeRecommender, states: torch.Tensor) -> torch.Tensor | None:
    return model.head.root_term(model.codes, states, ordered_table(model)) if model.head.uses_item_table else None


def test_rows_hold_every_training_target_once_with_history_from_its_row():
    data = toy_data()
    rows = training_rows(data, max_history=8)
    windows = leave_one_out(data, 8).train
    pairs = sorted((int(u), int(t)) for u, row in zip(rows.user, rows.target) for t in row if t >= 0)
    assert pairs == sorted(zip(windows.user.tolist(), windows.target.tolist()))
    assert rows.history.shape[1] == rows.target.shape[1] == 8
    for h, t in zip(rows.history, rows.target):  # the target of position j is the input of position j + 1
        real = t >= 0
        assert np.array_equal(h[real][1:], t[real][:-1])


DECODERS = ["tiger", "item_table"]


@pytest.mark.parametrize("decoder", DECODERS)
def test_one_pass_loss_equals_sliding_window_loss_at_every_position(decoder):
    """Without a user token: with one, the window's left padding moves the user token's relative distance
    to the items (T5 biases attention by distance), so the two formulations see different inputs."""
    data = toy_data()
    rows = training_rows(data, max_history=8)
    model = toy_model(decoder=decoder)
    history, target, users = (torch.from_numpy(x) for x in (rows.history, rows.target, rows.user))
    labels = model.codes.tokens(target)
    with torch.no_grad():
        code_loss, dense_loss, _ = L.every_position(model, history, users, target, labels)  # [n], [n]
        checked = 0
        for r in range(len(rows)):
            for j in np.flatnonzero(rows.target[r] >= 0):  # row-major, as the one-pass outputs
                prefix = torch.full((1, 8), -1)  # the sliding-window example: the row up to position j, left-padded
                prefix[0, 8 - j - 1:] = history[r, : j + 1]
                hidden, valid = model.encode(prefix, users[r : r + 1])
                decoded = L.decoder_states(model, hidden, valid, labels[r, j][None], hidden[:, -1])
                window = L.code_loss(model, decoded, labels[r, j][None], ordered_table(model), root_of(model, hidden[:, -1]))[0]
                assert code_loss[checked].item() == pytest.approx(window.item(), abs=1e-5)
                reference = model.dense_scores(prefix, users[r : r + 1])
                assert dense_loss[checked].item() == pytest.approx(-reference[0, target[r, j]].item(), abs=1e-5)
                checked += 1
    assert checked == rows.num_targets


def test_training_step_through_forward_reaches_codes_dense_head_and_item_embeddings():
    rows = training_rows(toy_data(), max_history=8)
    model = toy_model().train()
    history, target, users = (torch.from_numpy(x) for x in (rows.history, rows.target, rows.user))
    losses = model(history, users, model.codes.tokens(target), target, every_position=True)
    assert set(losses) == {"rec", "dense"} and all(torch.isfinite(v) for v in losses.values())
    (losses["rec"] + losses["dense"]).backward()
    assert model.items.ids.weight.grad.abs().sum() > 0 and model.t5.decoder.block[0].layer[1].EncDecAttention.q.weight.grad is not None
    # every item gets a gradient from the full-softmax dense head, not only the items in the batch
    assert (model.items.ids.weight.grad.abs().sum(1) > 0).all()


def test_bf16_item_scores_change_only_training_and_only_by_bf16_rounding():
    rows = training_rows(toy_data(), max_history=8)
    history, target, users = (torch.from_numpy(x) for x in (rows.history, rows.target, rows.user))
    model = toy_model()
    labels = model.codes.tokens(target)
    with torch.no_grad(), pytest.warns(UserWarning) if not native_bf16("cpu") else contextlib.nullcontext():
        reference = model.train()(history, users, labels, target, every_position=True)
        model.seq2seq.item_score_precision = "bf16"
        fast = model(history, users, labels, target, every_position=True)
        evaluated = model.eval()(history, users, labels, target, every_position=True)
        model.seq2seq.item_score_precision = "fp32"
        exact = model(history, users, labels, target, every_position=True)
    for key in reference:
        assert fast[key].item() == pytest.approx(reference[key].item(), rel=2e-2) and fast[key] != reference[key]
        assert evaluated[key] == exact[key]  # evaluation scores in fp32 whatever the setting


def test_evaluation_reports_beam_dense_and_hybrid_with_the_mix_chosen_on_validation():
    from accelerate import Accelerator

    from genrec.experiments.seq import DecodeConfig
    from genrec.experiments.seq.tasks import GenerativeTask

    data = toy_data()
    task = GenerativeTask(toy_model(), leave_one_out(data, 8), DecodeConfig(beam=6, topk=5, batch_size=8,
                                                                           hybrid_alphas=[0.0, 0.5, 1.0]),
                          seed=0, rows=training_rows(data, 8))
    accelerator = Accelerator(cpu=True)
    test = task.evaluate(task.model, "test", accelerator)
    assert {"recall@5", "dense_recall@5", "hybrid_recall@5", "hybrid_alpha"} <= set(test)
    assert test["hybrid_alpha"] in (0.0, 0.5, 1.0)
    valid = task.evaluate(task.model, "valid", accelerator, mixes=[0.0, 0.5, 1.0])  # the validation's best, not the test's
    assert valid["hybrid_alpha"] == test["hybrid_alpha"]
    assert valid["hybrid_ndcg@5"] >= 0 and test["invalid_rate"] == 0.0
    assert "hybrid_alpha" not in task.evaluate(task.model, "valid", accelerator)  # an epoch's validation: no mixes
    # alpha 1 is the plain beam: the hybrid at 1 has the beam's own metrics
    one = task.evaluate(task.model, "test", accelerator, mixes=[1.0])
    assert one["hybrid_alpha"] == 1.0 and one["hybrid_ndcg@5"] == one["ndcg@5"] and one["hybrid_recall@5"] == one["recall@5"]


@pytest.mark.parametrize("decoder", DECODERS)
def test_beam_scores_are_the_training_log_probabilities_of_the_items_found(decoder):
    """Decoding (shared cross-attention K/V, start token from the last state, the item-table code head) scores an item
    exactly as the teacher-forced training pass does: the sum of its code tokens' log-probabilities."""
    model = toy_model(decoder=decoder)
    history = torch.tensor([[-1, -1, 3, 7, 1, 0, 5, 9], [2, 4, 6, 8, 10, 12, 14, 16]])
    items, scores = model.generate(history, beam=8, topk=5)
    with torch.no_grad():
        hidden, valid = model.encode(history, None)
        for row in range(2):
            tokens = model.codes.tokens(items[row])  # [5, L]
            n = len(tokens)
            states = L.decoder_states(model, hidden[row : row + 1].expand(n, -1, -1), valid[row : row + 1].expand(n, -1),
                                      tokens, hidden[row, -1].expand(n, -1))
            loss, _, _ = L.code_loss(model, states, tokens, ordered_table(model), root_of(model, hidden[row, -1].expand(n, -1)))
            assert torch.allclose(-loss * tokens.shape[1], scores[row], atol=1e-4)


@pytest.mark.parametrize("decoder", DECODERS)
def test_distilling_a_one_hot_teacher_is_the_hard_code_loss_and_a_spread_teacher_is_not(decoder):
    data = toy_data()
    rows = training_rows(data, max_history=8)
    model = toy_model(decoder=decoder)
    history, target, users = (torch.from_numpy(x) for x in (rows.history, rows.target, rows.user))
    labels = model.codes.tokens(target)
    hidden, valid = model.encode(history, users)
    rows_, positions = (target >= 0).nonzero(as_tuple=True)
    tokens, states = labels[rows_, positions], hidden[rows_, positions]
    keys = torch.arange(hidden.shape[1])
    decoded = L.decoder_states(model, hidden[rows_], (keys[None] <= positions[:, None]) & valid[rows_].bool(), tokens, states)
    one_hot = F.one_hot(model.codes.trie.code_rank[target[target >= 0]], model.num_items).float()  # in code order
    ordered, root = ordered_table(model), root_of(model, states)
    hard, _, soft = L.code_loss(model, decoded, tokens, ordered, root, teacher=one_hot)
    assert torch.allclose(soft, hard, atol=1e-5)
    uniform = torch.full_like(one_hot, 1 / model.num_items)
    _, _, spread = L.code_loss(model, decoded, tokens, ordered, root, teacher=uniform)
    assert torch.isfinite(spread).all() and not torch.allclose(spread, hard)
    losses = model(history, users, labels, target, every_position=True, distill=True)
    assert set(losses) == {"rec", "dense", "distill"}
    losses["distill"].backward()  # the teacher is detached: only the decoder side (and what feeds it) learns
    assert model.t5.decoder.block[0].layer[0].SelfAttention.q.weight.grad is not None


def test_the_item_table_decoder_normalises_over_the_valid_children_only():
    model = toy_model()
    hidden = torch.randn(5, 16)
    trie = model.codes.trie
    parents = trie.prefix_nodes[0][:5]  # level-2 choices under five items' first codes
    with torch.no_grad():
        logp = model.head.log_probs(model.t5, model.codes, hidden, parents, 1, ordered_table(model))
    valid = trie.children[parents, :6] >= 0
    assert torch.isneginf(logp[~valid]).all() and torch.allclose(logp.exp().sum(-1), torch.ones(5))


@pytest.mark.parametrize("decoder", DECODERS)
def test_a_model_saves_and_loads_with_the_same_recommendations(tmp_path, decoder):
    model = toy_model(decoder=decoder)
    history = torch.tensor([[-1, -1, 3, 7, 1, 0, 5, 9]])
    model.save_pretrained(tmp_path / "model")
    loaded = GenerativeRecommender.from_pretrained(tmp_path / "model")
    assert loaded.seq2seq.decoder == decoder and torch.equal(loaded.codes.codes, model.codes.codes)
    for a, b in zip(model.generate(history, beam=8, topk=5), loaded.generate(history, beam=8, topk=5)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("parts", [{"text": True}, {"text": True, "use_semantic": False},
                                   {"id_dim": 0, "text": True}, {"use_semantic": False}])
def test_items_with_their_text_vector_train_score_and_round_trip(tmp_path, parts):
    """The text vector as a third part of the item table (and the ablations without the semantic half or the ID):
    one table for the encoder input, the dense head and the item-table decoder, saved with the model."""
    torch.manual_seed(0)
    n, text = 40, torch.randn(40, 12)
    items = ItemEmbedding(torch.randn(n, 6), id_dim=parts.get("id_dim", 4), d_model=16,
                          text=text if parts.get("text") else None, use_semantic=parts.get("use_semantic", True))
    model = toy_model()
    model.items = items
    rows = training_rows(toy_data(), max_history=8)
    history, target, users = (torch.from_numpy(x) for x in (rows.history, rows.target, rows.user))
    losses = model.train()(history, users, model.codes.tokens(target), target, every_position=True)
    (losses["rec"] + losses["dense"]).backward()
    assert all(torch.isfinite(v) for v in losses.values()) and items.proj.weight.grad.abs().sum() > 0
    assert torch.allclose(items.table()[[3, 7]], items(torch.tensor([3, 7])), atol=1e-6)  # one representation
    if parts.get("text"):  # the text reaches the table: another item text, another row
        before = items.table()[5].detach().clone()
        items.text[5] += 1.0
        assert not torch.allclose(items.table()[5], before)
    model.eval().save_pretrained(tmp_path / "model")
    loaded = GenerativeRecommender.from_pretrained(tmp_path / "model")
    assert torch.equal(loaded.items.table(), items.table())
    history = torch.tensor([[-1, -1, 3, 7, 1, 0, 5, 9]])
    assert torch.equal(loaded.generate(history, beam=8, topk=5)[0], model.generate(history, beam=8, topk=5)[0])


def test_an_item_needs_at_least_one_part():
    with pytest.raises(ValueError, match="at least one part"):
        ItemEmbedding(torch.randn(5, 3), id_dim=0, d_model=8, use_semantic=False)
