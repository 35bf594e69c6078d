"""The cold-start protocol: new items never reach training or validation, join the model after training, and the
search can return them; metrics over cold and warm targets."""
import numpy as np
import pytest
import torch

from genrec.data import Catalog, SequenceData
from genrec.data.coldstart import cold_start, pick_new_items
from genrec.data.splits import PAD, popularity, training_rows
from genrec.errors import GenrecError
from genrec.evaluation.ranking import cold_warm_metrics, new_item_share
from genrec.experiments.baselines import text_neighbour_metrics
from genrec.models.recommender import GenerativeRecommender
from tests.test_every_position import toy_model


def toy_data(n_items=60, n_users=40, seed=0) -> SequenceData:
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, n_items, rng.integers(5, 25)) for _ in range(n_users)]
    catalog = Catalog([f"i{i}" for i in range(n_items)], {"title": [f"title {i}" for i in range(n_items)]})
    return SequenceData("toy", catalog, [f"u{u}" for u in range(n_users)], seqs)


def test_new_items_are_last_and_never_reach_training_or_validation():
    data = toy_data()
    moved, splits = cold_start(data, share=0.1, seed=3, max_history=8)
    known, cold = splits.known, splits.cold
    assert known == 54 and cold.num_new == 6
    new_ids = {data.catalog.original_ids[i] for i in np.flatnonzero(pick_new_items(60, 0.1, 3))}
    assert set(moved.catalog.original_ids[known:]) == new_ids  # the seeded items, moved last
    assert moved.catalog.title(known) == data.catalog.title(data.catalog.index_of(moved.catalog.original_ids[known]))
    for u, seq in enumerate(moved.sequences):  # the same sequences, in the new item order
        assert [moved.catalog.original_ids[i] for i in seq] == [data.catalog.original_ids[i] for i in data.sequences[u]]
    # training (sliding window and every-position rows) and validation hold known items only
    for split in (splits.train, splits.valid):
        assert split.target.max() < known and split.history.max() < known
    rows = training_rows(moved, 8, known)
    assert rows.target.max() < known and rows.history.max() < known
    assert popularity(moved, known)[known:].sum() == 0
    # test: every user, the full history (new items kept), the last item as target
    assert len(splits.test) == data.num_users
    for u, seq in enumerate(moved.sequences):
        history = splits.test.history[u][splits.test.history[u] != PAD]
        assert splits.test.target[u] == seq[-1] and list(history) == list(seq[:-1][-8:])
    counts = cold.counts
    assert counts["test_new_target"] == int((splits.test.target >= known).sum()) > 0
    assert counts["valid_new_target"] + counts["valid_empty_history"] + len(splits.valid) == data.num_users
    removed = sum(int((s[:-2] >= known).sum()) for s in moved.sequences)
    assert counts["training_interactions_removed"] == removed > 0
    # item vectors computed over the source catalogue follow the move
    vectors = np.arange(60, dtype=np.float32)[:, None]
    assert [data.catalog.original_ids[int(v)] for v in cold.reorder(vectors)[:, 0]] == moved.catalog.original_ids
    # the same protocol seed draws the same items
    assert cold_start(data, share=0.1, seed=3)[0].catalog.original_ids == moved.catalog.original_ids


def test_metrics_over_cold_and_warm_targets_and_the_new_items_share():
    ranks = torch.tensor([0, 3, 20, 1])  # rank 0 and 3 hit at 5; rank 1 too
    cold = torch.tensor([True, False, False, True])
    m = cold_warm_metrics(ranks, cold, ks=(5,))
    assert m["recall@5"] == pytest.approx(0.75)
    assert m["cold_recall@5"] == pytest.approx(1.0) and m["cold_ndcg@5"] == pytest.approx((1 + 1 / np.log2(3)) / 2)
    assert m["warm_recall@5"] == pytest.approx(0.5) and m["warm_ndcg@5"] == pytest.approx((1 / np.log2(5)) / 2)
    assert "cold_recall@5" not in cold_warm_metrics(ranks, torch.zeros(4, dtype=torch.bool), ks=(5,))
    top = torch.tensor([[1, 9, 8], [2, 3, -1]])  # items >= 8 are new; -1 an empty slot
    assert new_item_share(top, known=8) == pytest.approx(2 / 5)


def test_text_neighbours_rank_by_the_last_history_items_text_and_skip_the_item_itself():
    from genrec.data.splits import Split

    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.8, 0.2]], dtype=np.float32)
    split = Split(np.array([[PAD, 0], [PAD, 2]]), np.array([1, 3]), np.array([0, 1]))
    m = text_neighbour_metrics(vectors, split, known=3)  # item 3 is new
    # user 0: last item 0, nearest item 1 (cos .99), the target; user 1: last item 2, cos to 3 .24, to 1 .11, to 0 0
    assert m["recall@5"] == 1.0 and m["ndcg@5"] == 1.0
    assert m["cold_recall@5"] == 1.0 and m["warm_recall@5"] == 1.0
    assert m["new_share@10"] == pytest.approx(2 / 8)  # all 4 items listed per user (the item itself last), item 3 once
    split = Split(np.array([[PAD, 1]]), np.array([3]), np.array([0]))
    assert text_neighbour_metrics(vectors, split)["ndcg@5"] == pytest.approx(1 / np.log2(3))  # 0 (.994), then 3 (.991)


def test_fitting_the_tokenizer_without_the_new_items_keeps_the_known_items_codes(tmp_path):
    from genrec.experiments.tokenizer import TokenizerFitConfig, fit_tokenizer

    x = np.random.default_rng(0).normal(size=(120, 16)).astype(np.float32)
    cfg = TokenizerFitConfig(codebook_size=4, num_levels=2, latent_dim=8, hidden_dims=[32])
    cfg.train.epochs, cfg.train.progress = 3, False
    tokenizer, table, _ = fit_tokenizer(x, cfg, tmp_path / "tok", known=100)
    assert table.num_items == 120
    from genrec.quantize import SemanticIdTable

    alone = SemanticIdTable.from_tokenizer(tokenizer, torch.from_numpy(x[:100]))
    assert torch.equal(table.codes[:100], alone.codes)  # new items take the collision suffixes after the known ones
    assert len(torch.unique(table.codes, dim=0)) == 120


def test_added_items_are_searchable_scored_by_content_and_saved(tmp_path):
    model = toy_model(n_items=40)
    extra = model.codes.codes.new_tensor([[5, 5, 5], [5, 5, 4]])
    assert not (model.codes.codes == extra[:, None]).all(-1).any()  # not among the toy model's codes
    semantic = torch.randn(2, 6)
    model.add_encoded_items(extra, semantic, item_ids=["new-a", "new-b"], titles=["A", "B"])
    assert model.num_items == 42 and model.items.ids.weight[40:].abs().sum() == 0  # nothing learned of them yet
    assert model.items.ids.weight.requires_grad
    # the new item's row is its content: the projection of [0 ‖ semantic]
    expected = model.items.proj(torch.cat([torch.zeros(1, 4), semantic[:1]], -1))
    assert torch.allclose(model.items.table()[40], expected[0], atol=1e-6)
    # with a beam as wide as the catalogue the search returns every item, the new ones among them
    items, _ = model.generate(torch.tensor([[-1, -1, 3, 7, 1, 0, 5, 9]]), beam=42, topk=42)
    assert set(items[0].tolist()) == set(range(42))
    model.save_pretrained(tmp_path / "model")
    loaded = GenerativeRecommender.from_pretrained(tmp_path / "model")
    assert loaded.num_items == 42 and loaded.item_ids[40:] == ["new-a", "new-b"] and loaded.titles[41] == "B"
    assert torch.equal(loaded.items.table(), model.items.table())
    assert loaded.item_index("new-b") == 41
    with pytest.raises(GenrecError, match="already in the catalogue"):
        loaded.add_encoded_items(extra.new_tensor([[4, 4, 4]]), torch.randn(1, 6), item_ids=["new-a"])
    with pytest.raises(ValueError, match="must differ"):
        loaded.add_encoded_items(extra[:1], torch.randn(1, 6), item_ids=["new-c"])
    assert loaded.num_items == 42  # a refused addition changes nothing
    with pytest.raises(GenrecError, match="semantic vectors"):
        loaded.add_encoded_items(extra.new_tensor([[4, 4, 4]]))


def test_the_text_view_and_the_new_items_bias_reach_the_dense_head_and_the_search_as_one_score():
    """Dense scores with the text view (weight x cosine to the last history item, the item itself left out) and a bias
    for added items equal the brute-force sum; the item-table decoder's first level is the same scores' mass."""
    from genrec.models.item_embedding import ItemEmbedding

    torch.manual_seed(0)
    model = toy_model(n_items=40)
    text = torch.randn(40, 12)
    model.items = ItemEmbedding(torch.randn(40, 6), id_dim=4, d_model=16, text=text).eval()
    model.add_encoded_items(model.codes.codes.new_tensor([[5, 5, 5], [5, 5, 4]]), torch.randn(2, 6), torch.randn(2, 12))
    model.text_view_weight, model.new_item_bias = 2.5, 1.5
    history = torch.tensor([[-1, -1, 3, 7, 1, 0, 5, 41], [-1, -1, -1, -1, 2, 4, 6, 8]])
    hidden, _ = model.encode(history, None)
    unit = torch.nn.functional.normalize(model.items.text, dim=-1)
    cosine = unit[history[:, -1]] @ unit.T
    cosine[torch.arange(2), history[:, -1]] = 0.0
    bias = torch.zeros(42)
    bias[40:] = 1.5
    scores = hidden[:, -1] @ model.items.table().T + 2.5 * cosine + bias
    assert torch.allclose(model.dense_scores(history), torch.log_softmax(scores, -1), atol=1e-5)
    # the first level of the item-table decoder: each code's log-sum-exp of the same item scores
    order = model.codes.trie.code_order
    root = model.head.root_term(model.codes, hidden[:, -1:], model.items.table()[order],
                                model.item_scores(history)[:, order])[:, 0]
    first = model.codes.codes[:, 0]
    for code in range(6):
        expected = scores[:, first == code].logsumexp(-1)
        assert torch.allclose(root[:, code], expected, atol=1e-4)
    # the text view needs the items' text vectors
    plain = toy_model(n_items=40)
    plain.text_view_weight = 1.0
    with pytest.raises(GenrecError, match="text vectors"):
        plain.dense_scores(history[1:])


def test_text_view_scores_are_the_weighted_cosine_to_the_last_item_and_zero_for_itself():
    from genrec.models.text_view import text_view_scores

    text = torch.tensor([[3.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    scores = text_view_scores(text, torch.tensor([0, 2]), weight=2.0)
    half = 2.0 * 2**-0.5
    assert torch.allclose(scores, torch.tensor([[0.0, half, 0.0], [0.0, half, 0.0]]))


def test_items_can_keep_their_text_for_the_view_without_it_entering_the_projection(tmp_path):
    from genrec.experiments.seq.config import ItemInputConfig

    torch.manual_seed(0)
    text = np.random.default_rng(0).normal(size=(40, 12)).astype(np.float32)
    items = ItemInputConfig(text=False).embedding(torch.randn(40, 6), 16, text, keep_text=True)
    assert items.proj.in_features == 16 + 6 and items.text.shape == (40, 12) and not items.use_text
    model = toy_model(n_items=40)
    model.items = items.eval()
    model.text_view_weight = 3.0
    history = torch.tensor([[-1, -1, 3, 7, 1, 0, 5, 9]])
    found = model.generate(history, beam=8, topk=5)[0]
    model.save_pretrained(tmp_path / "model")
    loaded = GenerativeRecommender.from_pretrained(tmp_path / "model")
    assert not loaded.items.use_text and loaded.text_view_weight == 3.0
    assert torch.equal(loaded.generate(history, beam=8, topk=5)[0], found)


def test_the_offset_for_a_share_is_found_by_bisection():
    from genrec.models.new_items import offset_for_share

    share_at = lambda offset: min(1.0, max(0.0, (offset + 2.0) / 10))  # noqa: E731  reaches .05 at -1.5
    assert offset_for_share(share_at, 0.05, steps=30) == pytest.approx(-1.5, abs=1e-6)
