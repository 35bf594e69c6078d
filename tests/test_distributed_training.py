"""Training under 2 CPU processes (gloo): the joint model freezes a part per epoch, which plain DDP
would wait on forever; the run must form one process group, not two lone runs. Every-position rows,
the dense head, the item-table decoder (its trie-dependent item runs) and a code refresh all go through it."""
import json
import os

import pytest

from genrec.config import load_config
from genrec.experiments.seq import SeqRunConfig, run

JOINT = ["mode=joint", "train.epochs=3", "joint.schedule=alternating", "joint.rec_epochs=1", "joint.suffix_slots=128",
         "objective.kind=every_position", "model.decoder=item_table", "decode.hybrid_alphas=[0.3,0.7]"]


def _train(rank: int, world: int, port: int, overrides: list[str]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world), GENREC_NUM_THREADS="1")
    run(load_config(SeqRunConfig, overrides=overrides))


@pytest.mark.slow
def test_joint_training_on_two_processes(tmp_path, tiny_seq_overrides):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    overrides = tiny_seq_overrides + JOINT + ["name=ddp"]
    mp.spawn(_train, args=(2, port, overrides), nprocs=2, join=True)
    saved = json.loads((tmp_path / "results" / "ddp.json").read_text())
    assert saved["processes"] == 2
    history = saved["per_seed"][0]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3] and "train_rq" in history[1]  # rec, tokenizer, rec
    assert "code_churn" in history[1] and "train_dense" in history[0]
    assert saved["metrics"]["invalid_rate"] == 0.0 and saved["metrics"]["duplicate_rate"] == 0.0
    assert {"dense_recall@10", "hybrid_recall@10", "hybrid_alpha"} <= set(saved["metrics"])
