"""Business rules inside the search: exclusions and allow-lists as trie masks, exact against brute force."""
import numpy as np
import pytest
import torch

from genrec.errors import GenrecError
from genrec.generation import beam as search
from genrec.generation.rules import allowed_items, rule_scores
from genrec.generation.trie import TensorTrie
from tests.test_every_position import toy_model
from tests.test_generation import constrained_beam_search, reference_beam_search, tiny_setup

HISTORY = torch.tensor([[-1, -1, 3, 7, 1, 0, 5, 9], [-1, -1, -1, -1, 2, 4, 6, 8], [-1, -1, -1, -1, -1, -1, -1, 11]])


def test_allowed_items_combines_each_users_exclusions_with_the_batchs_allow_list():
    allowed = allowed_items(6, 2, exclude=[[0, -1, 2], []], only=[0, 1, 2, 3])
    assert allowed.tolist() == [[False, True, False, True, False, False], [True, True, True, True, False, False]]
    assert allowed_items(6, 2) is None
    per_user = allowed_items(4, 2, only=[[1], None], per_user_only=True)
    assert per_user.tolist() == [[False, True, False, False], [True, True, True, True]]
    assert rule_scores(allowed)[0].tolist() == [float("-inf"), 0.0, float("-inf"), 0.0, float("-inf"), float("-inf")]
    with pytest.raises(ValueError, match="3 users"):
        allowed_items(6, 3, exclude=[[0]])


def test_allowed_nodes_are_those_with_an_allowed_item_under_them():
    rng = np.random.default_rng(3)
    codes = np.unique(rng.integers(0, 4, size=(30, 3)), axis=0)
    trie = TensorTrie(codes, [4, 4, 4])
    allowed = torch.from_numpy(rng.random((5, len(codes))) < 0.3)
    allowed[4] = False  # a user with nothing allowed
    nodes = trie.allowed_nodes(allowed)
    expected = torch.zeros_like(nodes)
    for user in range(5):
        for item in allowed[user].nonzero().flatten().tolist():
            expected[user, 0] = True
            expected[user, trie.prefix_nodes[:, item]] = True
    assert torch.equal(nodes, expected)


def test_the_fast_search_with_rules_agrees_with_the_reference():
    rng = np.random.default_rng(0)
    codes = np.unique(rng.integers(0, 4, size=(40, 3)), axis=0)
    vocab, model, ids, mask = tiny_setup(codes, [4, 4, 4])
    allowed = allowed_items(len(codes), 3, exclude=[[0, 1, 2], [], list(range(10, 30))], only=range(0, len(codes), 2))
    nodes = vocab.trie.allowed_nodes(allowed)
    items, scores = constrained_beam_search(model, vocab, ids, mask, beam=6, topk=5, allowed=nodes)
    ref = reference_beam_search(model, vocab, ids, mask, beam=6, topk=5, allowed=nodes)
    for row in range(3):
        real = [i for i in items[row].tolist() if i >= 0]
        assert real == [i for i, _ in ref[row]]
        assert all(allowed[row, i] for i in real)
        assert np.allclose(scores[row, : len(real)].numpy(), [s for _, s in ref[row]], atol=1e-4)


def every_allowed_item(model, history, allowed) -> list[dict[int, float]]:
    """Brute force: every allowed item's sequence score under the rules, one user at a time, by the plain reference
    search with a beam as wide as the catalogue (nothing is pruned)."""
    hidden, valid = model.encode(history, None)
    rules = rule_scores(allowed)
    table = model.items.table()
    out = []
    for row in range(len(history)):
        states = hidden[row : row + 1, -1]
        batched = model.head.scorer(model.t5, model.codes, states, table, rules[row : row + 1])  # [B, W, d] states

        def score(hidden, parents, level, batched=batched):
            return batched(hidden[:, None], parents[:, None], level)[:, 0]

        nodes = model.codes.trie.allowed_nodes(allowed[row : row + 1])
        found = search.reference_beam_search(model.t5, model.codes, hidden[row : row + 1], valid[row : row + 1], score,
                                             beam=model.num_items, topk=model.num_items,
                                             start=model.decoder_start(states), allowed=nodes)[0]
        out.append({item: s for item, s in found if item >= 0})
    return out


@pytest.mark.parametrize("decoder", ["item_table", "tiger"])
def test_with_a_beam_as_wide_as_the_allowed_set_the_search_returns_the_best_allowed_items(decoder):
    model = toy_model(n_items=40, decoder=decoder)
    only = [1, 4, 6, 9, 13, 17, 21, 28, 33, 39]
    allowed = allowed_items(40, 3, exclude=[[4, 9], [], [13, 1, 39]], only=only)
    brute = every_allowed_item(model, HISTORY, allowed)
    items, scores = model.generate(HISTORY, beam=len(only), topk=5, allowed=allowed)
    for row in range(3):
        assert set(brute[row]) == set(allowed[row].nonzero().flatten().tolist())
        best = sorted(brute[row], key=lambda i: -brute[row][i])[:5]
        assert items[row].tolist() == best
        assert np.allclose(scores[row].numpy(), [brute[row][i] for i in best], atol=1e-4)


@pytest.mark.parametrize("decoder", ["item_table", "tiger"])
def test_a_narrow_beam_never_returns_an_excluded_item_and_still_fills_k(decoder):
    model = toy_model(n_items=40, decoder=decoder)
    free = model.generate(HISTORY, beam=10, topk=10)[0]
    exclude = free.tolist()  # each user's unconstrained top 10: all must go
    allowed = allowed_items(40, 3, exclude=exclude)
    items, scores = model.generate(HISTORY, beam=10, topk=10, allowed=allowed)
    assert (items >= 0).all() and torch.isfinite(scores).all()  # still k items: the beam spent no slot on excluded ones
    guided, _ = model.generate(HISTORY, beam=10, topk=10, allowed=allowed, alpha=0.5)  # the dense head steering it
    for row in range(3):
        assert not set(items[row].tolist()) & set(exclude[row])
        assert not set(guided[row].tolist()) & set(exclude[row]) and (guided[row] >= 0).all()
    dense = model.dense_scores(HISTORY, allowed=allowed)  # the dense head: excluded items get no probability
    assert torch.isinf(dense[~allowed]).all() and torch.allclose(dense.exp().sum(-1), torch.ones(3))


def test_an_allow_list_shorter_than_k_returns_all_of_it_and_marks_the_rest_empty():
    model = toy_model(n_items=40)
    model.item_ids = [f"i{n}" for n in range(40)]
    model._index = {item: n for n, item in enumerate(model.item_ids)}
    items, scores = model.generate(HISTORY, beam=20, topk=10, allowed=allowed_items(40, 3, only=[2, 5, 30]))
    assert sorted(items[0, :3].tolist()) == [2, 5, 30] and (items[:, 3:] == -1).all()
    assert torch.isinf(scores[:, 3:]).all()
    recs = model.recommend(["i3", "i7"], k=10, only=["i2", "i5", "i30"])
    assert sorted(r["item_id"] for r in recs) == ["i2", "i30", "i5"]  # fewer than k: all of the allowed items
    recs = model.recommend(["i3", "i7"], k=5, exclude=["i1"], exclude_history=True)
    assert len(recs) == 5 and not {"i1", "i3", "i7"} & {r["item_id"] for r in recs}
    assert model.recommend(["i3"], k=3, only=[], exclude=[]) == []  # nothing allowed: nothing returned
    with pytest.raises(GenrecError, match="'nope'"):
        model.recommend(["i3"], exclude=["nope"])


def test_many_users_at_once_equal_one_at_a_time():
    model = toy_model(n_items=40)
    model.item_ids = [f"i{n}" for n in range(40)]
    model._index = {item: n for n, item in enumerate(model.item_ids)}
    histories = [["i3", "i7", "i1"], ["i2"], ["i5", "i6", "i8", "i9", "i10", "i11", "i12", "i13", "i14", "i15"]]
    exclude = [["i4"], [], ["i20", "i21"]]
    batched = model.recommend_many(histories, k=5, exclude=exclude, exclude_history=True)
    for history, excluded, together in zip(histories, exclude, batched):
        alone = model.recommend(history, k=5, exclude=excluded, exclude_history=True)
        assert [r["item_id"] for r in alone] == [r["item_id"] for r in together]
        assert np.allclose([r["score"] for r in alone], [r["score"] for r in together], atol=1e-4)


def test_no_rule_is_the_plain_search(monkeypatch):
    """recommend without rules searches without a mask (one allowing everything would only cost time)."""
    model = toy_model(n_items=40)
    model.item_ids = [f"i{n}" for n in range(40)]
    model._index = {item: n for n, item in enumerate(model.item_ids)}
    seen = []
    plain = model.generate

    def spy(*args, **kwargs):
        seen.append(kwargs.get("allowed"))
        return plain(*args, **kwargs)

    monkeypatch.setattr(model, "generate", spy)
    model.recommend(["i3"], k=3)
    model.recommend(["i3"], k=3, exclude=[], only=None)
    model.recommend_many([["i3"], ["i4"]], k=3, exclude=[[], []], only=[None, None])
    assert seen == [None, None, None]
    model.recommend(["i3"], k=3, exclude=["i4"])
    assert seen[-1] is not None and not seen[-1][0, 4]
