"""Evaluation gathered across 2 CPU processes (gloo) gives exactly the single-process metrics."""
import json
import os

import numpy as np
import pytest
import torch

from genrec.data import Catalog, SequenceData, leave_one_out
from genrec.experiments.seq import DecodeConfig
from genrec.experiments.seq.tasks import GenerativeTask
from genrec.models.recommender import GenerativeRecommender
from genrec.models.seq2seq import Seq2SeqConfig
from genrec.quantize import SemanticIdTable

TINY = Seq2SeqConfig(num_layers=1, num_decoder_layers=1, d_model=16, num_heads=2, d_kv=8, d_ff=32, dropout=0.0, user_buckets=5,
                      decoder="tiger")


def build_task() -> GenerativeTask:
    rng = np.random.default_rng(0)
    n_items, n_users = 60, 37  # an odd user count: the last batch is uneven across ranks
    data = SequenceData("toy", Catalog([str(i) for i in range(n_items)]), [str(u) for u in range(n_users)],
                        [rng.integers(0, n_items, rng.integers(3, 9)) for _ in range(n_users)])
    codes = np.unique(rng.integers(0, 8, size=(400, 2)), axis=0)[:n_items]
    table = SemanticIdTable.build(torch.from_numpy(codes), torch.zeros(n_items, 4), codebook_size=8, collision="suffix",
                                  distances=["cosine", "euclidean"])
    torch.manual_seed(0)
    model = GenerativeRecommender(table.codes, table.meta.level_sizes, TINY, max_history=5)
    return GenerativeTask(model, leave_one_out(data, 5), DecodeConfig(beam=6, topk=5, batch_size=8), seed=0)


def _evaluate_and_write(rank: int, world: int, port: int, out: str) -> None:
    from genrec.training import TrainConfig, make_accelerator

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world))
    # the package's accelerator: it also destroys the gloo group at exit (CI saw rank 0 abort without that)
    accelerator = make_accelerator(TrainConfig(mixed_precision="no"))  # fp32, as the single-process reference
    task = build_task()
    metrics = task.evaluate(task.model, "test", accelerator)
    if accelerator.is_main_process:
        with open(out, "w") as f:
            json.dump({"metrics": metrics, "processes": accelerator.num_processes}, f)


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    import socket

    import torch.multiprocessing as mp
    from accelerate import Accelerator

    task = build_task()
    single = task.evaluate(task.model, "test", Accelerator(cpu=True))
    out = tmp_path / "two.json"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # spawned (not forked) processes: forking after torch has started threads can deadlock
    mp.spawn(_evaluate_and_write, args=(2, port, str(out)), nprocs=2, join=True)
    two = json.loads(out.read_text())
    assert two["processes"] == 2
    assert two["metrics"] == pytest.approx(single, abs=1e-9)
