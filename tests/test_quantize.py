import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from genrec.config import load_config
from genrec.evaluation.codes import (code_report, collision_group_sizes, field_correlation, level_usage, nmi,
                                     singular_spectrum, unique_rate)
from genrec.experiments.tokenizer import TokenizerFitConfig, fit_tokenizer
from genrec.quantize import DISTANCES, Codebook, ParallelQuantizer, ResidualQuantizer, SemanticIdTable, distance_schedule
from genrec.quantize.codebook import assign, distances, kmeans, rotate_to
from genrec.quantize.semantic_ids import add_suffix, extend_codes, reassign_last_level


def clustered(n=600, dim=24, centers=60, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, dim)) * 3
    return (c[rng.integers(0, centers, n)] + rng.normal(size=(n, dim))).astype(np.float32)


def small_cfg(**over):
    base = ["codebook_size=16", "latent_dim=8", "hidden_dims=[32]", "train.epochs=30", "train.batch_size=128",
            "train.eval_every=10"]
    return load_config(TokenizerFitConfig, overrides=base + [f"{k}={v}" for k, v in over.items()])


def test_default_schedule_is_cosine_then_euclidean():
    assert distance_schedule("cosine-then-euclidean", 3) == ["cosine", "cosine", "euclidean"]
    with pytest.raises(ValueError, match="unknown distance schedule"):
        distance_schedule("manhattan", 3)


def test_cosine_level_assigns_by_angle_but_passes_raw_residual():
    cb = Codebook(2, 2, distance="cosine")
    with torch.no_grad():
        cb.weight.copy_(torch.tensor([[10.0, 0.0], [0.0, 0.1]]))
    x = torch.tensor([[0.1, 0.2]])  # nearer [0, .1] in Euclidean terms, but points more along axis 1
    assert cb.assign(x).tolist() == [1]
    euclid = Codebook(2, 2, distance="euclidean")
    with torch.no_grad():
        euclid.weight.copy_(torch.tensor([[0.2, 0.0], [0.0, 10.0]]))
    rq = ResidualQuantizer(2, 2, ["cosine", "euclidean"])
    rq.levels[0].weight.data.copy_(cb.weight)
    rq.levels[1].weight.data.copy_(euclid.weight)
    out = rq(x)
    # residual after the cosine level is x - e_1 in raw space: [0.1, 0.1] -> nearest raw codeword [0.2, 0]
    assert out.codes.tolist() == [[1, 0]]
    assert torch.allclose(out.quantized, torch.tensor([[0.2, 0.1]]))
    assert rq.residuals(x)[1][0].tolist() == pytest.approx([0.1, 0.1])


def test_rotation_trick_forward_is_codeword_and_gradient_flows():
    x = torch.randn(5, 4, requires_grad=True)
    e = torch.randn(5, 4)
    out = rotate_to(x, e)
    assert torch.allclose(out, e, atol=1e-5)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_kmeans_finds_separated_clusters():
    x = torch.tensor(clustered(300, 4, 3, seed=1))
    c = kmeans(x, 3, "euclidean", generator=torch.Generator().manual_seed(0))
    labels = torch.cdist(x, c).argmin(1)
    assert len(labels.unique()) == 3


def test_dead_codes_are_revived():
    cb = Codebook(8, 2)
    with torch.no_grad():
        cb.weight.copy_(torch.full((8, 2), 100.0))
        cb.weight[0] = 0.0
    cb.train()
    cb(torch.randn(50, 2) * 0.1)
    moved = cb.revive_dead_codes(torch.randn(20, 2), torch.Generator().manual_seed(0))
    assert moved == 7 and cb.weight.abs().max() < 100


def test_collision_resolution_modes():
    codes = np.array([[0, 1], [0, 1], [0, 1], [1, 0]])
    suffixed = add_suffix(codes)
    assert suffixed[:, -1].tolist() == [0, 1, 2, 0] and unique_rate(suffixed) == 1.0
    dist_last = np.array([[0.5, 0.1, 0.9], [0.2, 0.05, 0.3], [0.1, 0.4, 0.2], [0.0, 1.0, 1.0]])
    re = reassign_last_level(codes, dist_last)
    assert unique_rate(re) == 1.0
    assert re[1].tolist() == [0, 1]  # item 1 is nearest code 1 and keeps it
    assert re[0].tolist() == [0, 0] and re[2].tolist() == [0, 2]


@pytest.mark.parametrize("collision", ["suffix", "reassign"])
def test_fit_tokenizer_end_to_end_and_table_roundtrip(tmp_path, collision):
    x = clustered()
    tok, table, fit = fit_tokenizer(x, small_cfg(collision=collision, codebook_size=32), tmp_path / "run")
    assert unique_rate(table.codes.numpy()) == 1.0
    assert table.num_levels == (4 if collision == "suffix" else 3)
    usage = level_usage(tok.codes(torch.tensor(x)).numpy(), 32)
    assert min(usage) > 0.5
    recon = [h["valid_recon"] for h in fit["history"] if "valid_recon" in h]
    assert len(recon) == 3 and recon[-1] < recon[0]
    # the table's vectors are the tokenizer's quantized vectors of its codes (before the dedup suffix)
    if collision == "suffix":
        assert torch.allclose(table.semantic, tok.quantizer.decode_codes(table.codes[:, :3]), atol=1e-5)
    table.save(tmp_path / "table")
    loaded = SemanticIdTable.load(tmp_path / "table")
    assert torch.equal(loaded.codes, table.codes) and torch.equal(loaded.semantic, table.semantic)
    assert loaded.meta == table.meta


def test_same_seed_same_table(tmp_path):
    x = clustered()
    _, a, _ = fit_tokenizer(x, small_cfg(), tmp_path / "a")
    _, b, _ = fit_tokenizer(x, small_cfg(), tmp_path / "b")
    assert torch.equal(a.codes, b.codes)


def test_bad_embeddings_get_clear_errors(tmp_path):
    x = clustered()
    x[7, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN/inf in 1 row\(s\), first item index\(es\) \[7\]"):
        fit_tokenizer(x, small_cfg(), tmp_path)
    with pytest.raises(ValueError, match="fewer than codebook_size"):
        fit_tokenizer(clustered(10), small_cfg(), tmp_path)


def test_distance_registry_nearest_agrees_with_dissimilarity():
    x, codewords = torch.randn(50, 6), torch.randn(9, 6)
    for name in DISTANCES:
        assert torch.equal(assign(x, codewords, name), distances(x, codewords, name).argmin(-1))
    with pytest.raises(ValueError, match="distance must be one of"):
        Codebook(4, 2, distance="manhattan")


def test_parallel_quantizer():
    pq = ParallelQuantizer(8, 16, ["euclidean"] * 3)
    z = torch.randn(64, 8)
    pq.init_from(z, generator=torch.Generator().manual_seed(0))
    out = pq(z)
    assert out.codes.shape == (64, 3)
    assert torch.allclose(out.quantized, pq.decode_codes(out.codes), atol=1e-5)
    assert not torch.equal(out.codes[:, 0], out.codes[:, 1])  # independent codebooks give different fields


def test_diagnostics():
    codes = np.array([[0, 1], [0, 1], [1, 2], [2, 2]])
    assert level_usage(codes, 4) == [0.75, 0.5]
    assert unique_rate(codes) == 0.75
    assert collision_group_sizes(codes) == {2: 1}
    assert nmi(codes[:, 0], ["a", "a", "b", "c"]) == pytest.approx(1.0)
    assert singular_spectrum(np.random.default_rng(0).normal(size=(50, 4))).sum() == pytest.approx(1.0)
    assert field_correlation(codes).shape == (2, 2)
    assert code_report(codes, 4, ["a", "a", "b", "c"])["max_collision_group"] == 2


def _ddp_worker(rank, world, port, out_dir, x):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(rank)  # different local RNG: only explicit synchronisation can make them agree
    cb = Codebook(16, x.shape[1])
    cb.init_from(torch.tensor(x) + rank, generator=torch.Generator().manual_seed(rank))
    cb.train()
    cb(torch.tensor(x[: 5 + rank]))
    cb.revive_dead_codes(torch.randn(30, x.shape[1]), torch.Generator().manual_seed(rank))
    torch.save(cb.weight.detach(), os.path.join(out_dir, f"w{rank}.pt"))
    dist.destroy_process_group()


@pytest.mark.slow
def test_codebooks_identical_across_two_gloo_processes(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    x = clustered(200, 6)
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path), x), nprocs=2, join=True)
    w0, w1 = torch.load(tmp_path / "w0.pt"), torch.load(tmp_path / "w1.pt")
    assert torch.equal(w0, w1)


def test_new_items_extend_a_table_as_resolving_the_whole_catalogue_with_them_last_would():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 3, size=(60, 2))  # many collisions
    whole = add_suffix(raw)
    known, new = whole[:45], raw[45:]
    assert np.array_equal(extend_codes(known, new, "suffix"), whole[45:])
    # reassign: the known codes stay; each new item takes its code if free, else the nearest free code of its prefix
    known_codes = np.array([[0, 0], [0, 1], [1, 2]])
    new = np.array([[0, 0], [1, 2], [2, 2]])
    distances = np.array([[0.0, 0.5, 0.2], [0.0, 0.1, 0.9], [0.3, 0.3, 0.0]])
    assert extend_codes(known_codes, new, "reassign", distances).tolist() == [[0, 2], [1, 0], [2, 2]]
    with pytest.raises(ValueError, match="no free code"):
        extend_codes(np.array([[0, 0], [0, 1]]), np.array([[0, 1]]), "reassign", np.zeros((1, 2)))
