import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genrec.generation import beam as search
from genrec.generation.codes import ItemCodes
from genrec.generation.trie import TensorTrie
from genrec.models.code_head import CodeHead
from genrec.models.seq2seq import Seq2SeqConfig, build_model

TINY = Seq2SeqConfig(num_layers=1, num_decoder_layers=1, d_model=16, num_heads=2, d_kv=8, d_ff=32, dropout=0.0,
                     user_buckets=7, decoder="tiger")


def tiny_setup(codes: np.ndarray, sizes: list[int], seed: int = 0):
    torch.manual_seed(seed)
    item_codes = ItemCodes(torch.from_numpy(codes), sizes, TINY.user_buckets)
    model = build_model(TINY, item_codes.vocab.size).eval()
    history = torch.randint(-1, len(codes), (3, 4))
    history[:, -1] = torch.arange(3) % len(codes)  # at least one real item per row
    ids, mask = item_codes.encode_history(history, torch.arange(3))
    return item_codes, model, ids, mask


def encoded(model, ids, mask, inputs_embeds=None):
    return model.encoder(input_ids=None if inputs_embeds is not None else ids, inputs_embeds=inputs_embeds,
                         attention_mask=mask).last_hidden_state


def constrained_beam_search(model, codes, ids, mask, inputs_embeds=None, **options):
    """The fast search with TIGER's scoring (the LM head over the whole vocabulary), from code tokens or vectors."""
    score = CodeHead("tiger", model.config.d_model).scorer(model, codes)
    return search.constrained_beam_search(model, codes, encoded(model, ids, mask, inputs_embeds), mask, score, **options)


def reference_beam_search(model, codes, ids, mask, **options):
    score = CodeHead("tiger", model.config.d_model).scorer(model, codes)
    return search.reference_beam_search(model, codes, encoded(model, ids, mask), mask, score, **options)


def test_trie_children_and_leaves():
    codes = np.array([[0, 1, 0], [0, 1, 1], [2, 0, 0]])
    trie = TensorTrie(codes, [3, 2, 2])
    root_mask = trie.valid_mask(torch.tensor([0]), 0)[0]
    assert root_mask.tolist() == [True, False, True]
    node = trie.step(torch.tensor([0]), torch.tensor([0]))
    node = trie.step(node, torch.tensor([1]))
    assert trie.valid_mask(node, 2)[0].tolist() == [True, True]
    leaf = trie.step(node, torch.tensor([1]))
    assert trie.item[leaf].item() == 1
    with pytest.raises(ValueError, match="unique"):
        TensorTrie(np.array([[0, 1], [0, 1]]), [2, 2])


def test_fast_beam_search_agrees_with_reference():
    rng = np.random.default_rng(0)
    codes = np.unique(rng.integers(0, 4, size=(40, 3)), axis=0)
    vocab, model, ids, mask = tiny_setup(codes, [4, 4, 4])
    items, scores = constrained_beam_search(model, vocab, ids, mask, beam=6, topk=5)
    ref = reference_beam_search(model, vocab, ids, mask, beam=6, topk=5)
    for row in range(len(ref)):
        assert items[row].tolist() == [i for i, _ in ref[row]]
        assert np.allclose(scores[row].numpy(), [s for _, s in ref[row]], atol=1e-4)


def test_scores_are_sequence_log_probabilities():
    codes = np.array([[0, 0], [0, 1], [1, 0]])
    vocab, model, ids, mask = tiny_setup(codes, [2, 2])
    items, scores = constrained_beam_search(model, vocab, ids, mask, beam=3, topk=3)
    labels = vocab.tokens(items[0])
    out = model(input_ids=ids[:1].expand(3, -1), attention_mask=mask[:1].expand(3, -1), labels=labels)
    logp = torch.log_softmax(out.logits, -1).gather(2, labels.unsqueeze(-1)).squeeze(-1).sum(1)
    assert torch.allclose(scores[0], logp, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(
    n_items=st.integers(1, 30),
    depth=st.integers(1, 3),
    size=st.integers(2, 5),
    beam=st.integers(1, 8),
    seed=st.integers(0, 10_000),
)
def test_beam_search_never_returns_invalid_or_duplicate_items(n_items, depth, size, beam, seed):
    rng = np.random.default_rng(seed)
    codes = np.unique(rng.integers(0, size, size=(n_items, depth)), axis=0)
    vocab, model, ids, mask = tiny_setup(codes, [size] * depth, seed)
    topk = min(beam, 5)
    items, scores = constrained_beam_search(model, vocab, ids, mask, beam=beam, topk=topk)
    for row, row_scores in zip(items.tolist(), scores.tolist()):
        real = [i for i in row if i >= 0]
        assert all(0 <= i < len(codes) for i in real)
        assert len(real) == len(set(real))
        assert len(real) == min(topk, len(codes))  # a trie with fewer items than topk fills what exists
        assert row_scores == sorted(row_scores, reverse=True)


def test_hf_generate_with_prefix_fn_agrees_with_ours():
    """Pins the behaviour of transformers' beam search that the benchmark compares against."""
    from genrec.generation.hf import hf_constrained_generate

    rng = np.random.default_rng(1)
    codes = np.unique(rng.integers(0, 4, size=(30, 3)), axis=0)
    vocab, model, ids, mask = tiny_setup(codes, [4, 4, 4], seed=1)
    ours, _ = constrained_beam_search(model, vocab, ids, mask, beam=8, topk=5)
    theirs = hf_constrained_generate(model, vocab, ids, mask, beam=8, topk=5)
    assert theirs.tolist() == ours.tolist()
    # item vectors instead of code tokens (unified and joint runs) go through both the same way
    embeds = model.get_input_embeddings()(ids) + 0.5 * torch.randn(*ids.shape, model.config.d_model)
    ours, _ = constrained_beam_search(model, vocab, None, mask, beam=8, topk=5, inputs_embeds=embeds)
    theirs = hf_constrained_generate(model, vocab, None, mask, beam=8, topk=5, inputs_embeds=embeds)
    assert theirs.tolist() == ours.tolist()


@pytest.mark.parametrize("with_start,room", [(False, 4), (True, 2)])
def test_shared_cross_decoder_equals_the_plain_decoder_step(with_start, room):
    """The fast path (cross-attention K/V once per user, beams folded into the query, self-attention K/V
    cached and reordered to the surviving beams' parents) against HF's decoder re-run on each beam's whole
    prefix, in fp32, with a padded encoder input and two layers; `with_start`: a vector added to each user's
    start-token embedding (a decoder started from the encoder state); `room`: the steps its cache is made for at first
    (2: it grows after the second step)."""
    from genrec.generation.fast_decoder import SharedCrossDecoder

    torch.manual_seed(0)
    cfg = Seq2SeqConfig(num_layers=1, num_decoder_layers=2, d_model=16, num_heads=2, d_kv=8, d_ff=32, dropout=0.0,
                        user_buckets=0)
    model = build_model(cfg, 20).eval()
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[0, :2] = False  # left padding, as histories are padded
    ids = torch.randint(2, 20, (3, 6)).masked_fill(~mask, 0)
    encoder_hidden = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    start = torch.randn(3, 16) if with_start else None
    fast = SharedCrossDecoder(model, encoder_hidden, mask, start, steps=room)

    def plain(prefixes: torch.Tensor) -> torch.Tensor:  # [B, W, t] -> [B, W, d], the whole prefix re-run
        beams = prefixes.shape[1]
        repeated = encoder_hidden.repeat_interleave(beams, 0), mask.repeat_interleave(beams, 0)
        embeds = model.decoder.embed_tokens(prefixes)
        if start is not None:
            embeds[..., 0, :] += start[:, None]
        out = model.decoder(inputs_embeds=embeds.flatten(0, 1), encoder_hidden_states=repeated[0],
                            encoder_attention_mask=repeated[1]).last_hidden_state[:, -1]
        return out.view(3, beams, -1)

    prefixes = torch.zeros(3, 1, 1, dtype=torch.long)  # the start token
    assert torch.allclose(fast.step(prefixes[..., -1]), plain(prefixes), atol=1e-5)
    for width in (4, 3, 5):  # beams come from any earlier beam, some twice, some dropped
        parents = torch.randint(0, prefixes.shape[1], (3, width))
        new = torch.randint(2, 20, (3, width))
        prefixes = torch.cat([prefixes.gather(1, parents[..., None].expand(-1, -1, prefixes.shape[-1])), new[..., None]], -1)
        out = fast.step(new, parents)
        assert out.shape == (3, width, 16)
        assert torch.allclose(out, plain(prefixes), atol=1e-5)


def test_guided_search_with_a_full_beam_ranks_items_by_the_mixed_score():
    """With a beam wide enough to keep every prefix, guided search must return exactly the items ranked by
    alpha * sequence log-prob + (1 - alpha) * prior log-prob (brute force over the whole catalogue)."""
    rng = np.random.default_rng(1)
    codes = np.unique(rng.integers(0, 3, size=(20, 3)), axis=0)
    n = len(codes)
    vocab, model, ids, mask = tiny_setup(codes, [3, 3, 3])
    trie = vocab.trie
    prior_logp = torch.log_softmax(torch.randn(ids.shape[0], n) * 2, dim=-1)
    every = reference_beam_search(model, vocab, ids, mask, beam=n, topk=n)
    for alpha in (0.0, 0.3, 1.0):
        items, scores = constrained_beam_search(model, vocab, ids, mask, beam=n, topk=5,
                                                prior=trie.node_log_mass(prior_logp), alpha=alpha)
        for row in range(ids.shape[0]):
            mixed = {i: alpha * s + (1 - alpha) * prior_logp[row, i].item() for i, s in every[row]}
            best = sorted(mixed, key=lambda i: -mixed[i])[:5]
            assert items[row].tolist() == best, alpha
            assert np.allclose(scores[row].numpy(), [mixed[i] for i in best], atol=1e-4)


def test_node_log_mass_sums_item_probabilities_under_each_node():
    codes = np.array([[0, 1], [0, 0], [1, 1]])
    trie = TensorTrie(codes, [2, 2])
    probs = torch.tensor([[0.5, 0.2, 0.3]])
    mass = trie.node_log_mass(probs.log()).exp()[0]
    first = mass[trie.prefix_nodes[0]]
    assert first.tolist() == pytest.approx([0.7, 0.7, 0.3])  # items 0 and 1 share code 0
    leaves = mass[trie.prefix_nodes[1]]
    assert leaves.tolist() == pytest.approx([0.5, 0.2, 0.3])  # a leaf's mass is its item's probability


def test_parents_follow_the_codes():
    codes = np.array([[0, 1], [0, 0], [1, 1]])
    trie = TensorTrie(codes, [2, 2])
    parents = trie.parents(torch.from_numpy(codes))
    assert parents[:, 0].tolist() == [0, 0, 0] and torch.equal(parents[:, 1], trie.prefix_nodes[0])


def test_child_masses_sum_the_item_probabilities_under_each_child_of_a_prefix():
    codes = np.array([[0, 1], [0, 0], [1, 1]])
    trie = TensorTrie(codes, [2, 2])
    probs = torch.tensor([[0.5, 0.2, 0.3]]).expand(2, 3)
    first = trie.prefix_nodes[0]  # the nodes of prefixes (0,) (0,) (1,)
    parents = torch.stack([torch.zeros(2, dtype=torch.long), first[[0, 2]]], 1)  # under (0,) and under (1,)
    level1, level2 = trie.child_masses(probs[:, trie.code_order], parents)
    assert level1.tolist()[0] == pytest.approx([0.7, 0.3])
    assert level2.tolist()[0] == pytest.approx([0.2, 0.5])  # (0, 0) is item 1, (0, 1) item 0
    assert level2.tolist()[1] == pytest.approx([0.0, 0.3])  # (1, 0) is no item


def test_child_masses_match_summing_each_nodes_items_on_a_random_trie():
    codes = np.unique(np.random.default_rng(5).integers(0, 4, size=(50, 3)), axis=0)
    trie = TensorTrie(codes, [4, 4, 4])
    probs = torch.rand(3, len(codes)).softmax(-1)
    items = torch.randint(0, len(codes), (3,))
    parents = trie.parents(torch.from_numpy(codes)[items])
    for level, mass in enumerate(trie.child_masses(probs[:, trie.code_order], parents)):
        for row in range(3):
            for code in range(4):
                child = int(trie.children[parents[row, level], code])
                under = (trie.prefix_nodes[level] == child) if child >= 0 else torch.zeros(len(codes), dtype=torch.bool)
                assert mass[row, code].item() == pytest.approx(probs[row, under].sum().item(), abs=1e-6)


def test_child_log_mass_adds_each_users_item_scores_and_can_leave_items_out():
    """Per-user item scores (-inf leaving an item out) reach every level, for every beam of the user, as they would a
    full ranking: the log-sum-exp under each child of the summed scores."""
    codes = np.unique(np.random.default_rng(7).integers(0, 4, size=(50, 3)), axis=0)
    trie = TensorTrie(codes, [4, 4, 4])
    vectors, queries = torch.randn(len(codes), 5), torch.randn(3, 2, 5)  # 3 users, 2 beams each
    extra = torch.randn(3, len(codes))
    extra[0, 17] = extra[1, :] = float("-inf")  # user 1 may have nothing at all
    extra[1, 30] = 0.0
    scores = (queries @ vectors.T) + extra.unsqueeze(1)  # [3, 2, items]
    picks = torch.tensor([[0, 17], [30, 30], [5, 6]])
    parents = trie.parents(torch.from_numpy(codes)[picks])  # [3, 2, depth]
    for level in range(3):
        got = trie.child_log_mass(queries, vectors[trie.code_order], parents[..., level], level,
                                  item_scores=extra[:, trie.code_order])
        for user in range(3):
            for b in range(2):
                for code in range(4):
                    child = int(trie.children[parents[user, b, level], code])
                    under = trie.prefix_nodes[level] == child
                    if child < 0 or torch.isinf(scores[user, b, under]).all():
                        assert got[user, b, code] == float("-inf")
                        continue
                    assert got[user, b, code].item() == pytest.approx(scores[user, b, under].logsumexp(0).item(), abs=1e-5)


def test_child_log_mass_is_the_log_sum_of_exp_scores_of_each_childs_items():
    codes = np.unique(np.random.default_rng(6).integers(0, 4, size=(50, 3)), axis=0)
    trie = TensorTrie(codes, [4, 4, 4])
    vectors = torch.randn(len(codes), 5)
    queries = torch.randn(3, 5)
    scores = queries @ vectors.T  # [3, items] in item order
    parents = trie.parents(torch.from_numpy(codes)[torch.tensor([0, 17, 30])])
    for level in range(3):
        got = trie.child_log_mass(queries, vectors[trie.code_order], parents[:, level], level)
        chunked = trie.child_log_mass(queries, vectors[trie.code_order], parents[:, level], level, rows_per_chunk=1)
        assert torch.allclose(got, chunked, atol=1e-6)  # one row per chunk: the same numbers
        grouped = trie.child_log_mass(queries, vectors[trie.code_order], parents[:, level], level, grouped=True)
        assert torch.allclose(got, grouped, atol=1e-5)  # one matmul per parent: the same numbers
        for row in range(3):
            for code in range(4):
                child = int(trie.children[parents[row, level], code])
                if child < 0:
                    assert got[row, code] == float("-inf")
                    continue
                under = trie.prefix_nodes[level] == child
                assert got[row, code].item() == pytest.approx(scores[row, under].logsumexp(0).item(), abs=1e-5)


def test_grouping_rows_by_parent_gives_the_gathered_paths_masses_and_gradients():
    """Many rows on few parents (a batch's beams below the root) with per-user item scores, some items left out."""
    codes = np.unique(np.random.default_rng(7).integers(0, 5, size=(90, 3)), axis=0)
    trie = TensorTrie(codes, [5, 5, 5])
    vectors = torch.randn(len(codes), 6, requires_grad=True)
    queries = torch.randn(4, 10, 6)  # 4 users x 10 beams
    item_scores = torch.randn(4, len(codes)).masked_fill(torch.rand(4, len(codes)) < 0.3, float("-inf"))
    pick = torch.randint(0, len(codes), (4, 10)) % 7  # few distinct items: few distinct parents
    for level in (1, 2):
        parents = trie.parents(torch.from_numpy(codes)[pick])[..., level]
        parents[0, 0] = 0  # a dead beam parked at the root
        live = torch.ones(4, 10, 5, dtype=torch.bool)
        live[0, 0] = False  # what a parked beam gets does not matter
        results = []
        for grouped in (False, True):
            out = trie.child_log_mass(queries, vectors, parents, level, item_scores=item_scores, grouped=grouped)
            finite = live & torch.isfinite(out)
            (grad,) = torch.autograd.grad(out[finite].sum(), vectors)
            results.append((out, finite, grad))
        (plain, plain_finite, plain_grad), (grouped_out, grouped_finite, grouped_grad) = results
        assert torch.equal(plain_finite, grouped_finite) and plain_finite.any() and not plain_finite[live].all()
        assert torch.allclose(plain[plain_finite], grouped_out[plain_finite], atol=1e-5)
        assert torch.allclose(plain_grad, grouped_grad, atol=1e-4)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # as evaluation runs under mixed precision
            low = [trie.child_log_mass(queries, vectors, parents, level, item_scores=item_scores, grouped=g)
                   for g in (False, True)]
        assert low[0].dtype == low[1].dtype and torch.allclose(low[0][plain_finite].float(), low[1][plain_finite].float(),
                                                                atol=0.1)


def test_root_log_mass_is_the_log_of_each_first_codes_probability_with_gradients():
    codes = np.unique(np.random.default_rng(8).integers(0, 4, size=(40, 3)), axis=0)
    trie = TensorTrie(codes, [4, 4, 4])
    logits = torch.randn(2, len(codes), requires_grad=True)  # in item order
    probs = logits.softmax(-1)
    got = trie.root_log_mass(probs[:, trie.code_order])
    for code in range(4):
        under = torch.from_numpy(codes[:, 0] == code)
        expected = probs[:, under].sum(-1).log() if under.any() else torch.full((2,), float("-inf"))
        assert torch.allclose(got[:, code], expected, atol=1e-6)
    got[0, int(codes[0, 0])].backward()
    assert logits.grad.abs().sum() > 0


def test_child_log_masses_chained_along_a_path_give_the_full_softmax_of_each_item():
    """The item-table decoder's point: with one query at every level, the per-level code distributions multiply
    out to the dense head's softmax over the items."""
    codes = np.unique(np.random.default_rng(7).integers(0, 5, size=(80, 3)), axis=0)
    trie = TensorTrie(codes, [5, 5, 5])
    vectors, query = torch.randn(len(codes), 6), torch.randn(1, 6)
    parents = trie.parents(torch.from_numpy(codes))  # [items, 3]
    total = torch.zeros(len(codes))
    for level in range(3):
        log_mass = trie.child_log_mass(query.expand(len(codes), -1), vectors[trie.code_order], parents[:, level], level)
        total += log_mass.log_softmax(-1).gather(1, torch.from_numpy(codes[:, level : level + 1])).squeeze(1)
    assert torch.allclose(total, (query @ vectors.T).log_softmax(-1).squeeze(0), atol=1e-5)


def test_child_log_mass_gives_every_item_a_gradient_only_through_its_own_child():
    codes = np.array([[0, 0], [0, 1], [1, 0]])
    trie = TensorTrie(codes, [2, 2])
    vectors = torch.randn(3, 4, requires_grad=True)
    parent = trie.prefix_nodes[0][[0]]  # under (0,): items 0 and 1
    trie.child_log_mass(torch.randn(1, 4), vectors[trie.code_order], parent, 1)[0, 0].backward()
    assert vectors.grad[0].abs().sum() > 0 and vectors.grad[1:].abs().sum() == 0


def test_each_levels_children_fill_one_node_id_range():
    codes = np.unique(np.random.default_rng(3).integers(0, 4, size=(40, 3)), axis=0)
    trie = TensorTrie(codes, [4, 4, 4])
    for level, (first, end) in enumerate(trie.level_ranges):
        assert torch.equal(torch.unique(trie.prefix_nodes[level]), torch.arange(first, end))
