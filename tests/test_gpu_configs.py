"""The GPU configs train the shipped formulation at TIGER's size; each builds and takes a step on a CPU at toy size."""
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from genrec.config import load_config
from genrec.experiments.harness import load_data
from genrec.experiments.seq import SeqRunConfig
from genrec.experiments.seq.modes import SeedContext
from genrec.experiments.seq.tasks import GenerativeTask, joint_level_sizes
from genrec.models.item_embedding import ItemEmbedding

CONFIGS = Path(__file__).parents[1] / "recipes" / "configs"
TOY = ["model.num_layers=1", "model.num_decoder_layers=1", "model.d_model=16", "model.num_heads=2", "model.d_kv=8",
       "model.d_ff=32", "tokenizer.codebook_size=16", "train.batch_size=8"]


@pytest.mark.parametrize("name", ["beauty_gpu.yaml", "sports_gpu.yaml"])
def test_each_gpu_config_trains_every_position_with_the_item_table_decoder_and_takes_a_step(name, beauty_slice, tmp_path):
    full = load_config(SeqRunConfig, CONFIGS / name)
    assert (full.objective.kind, full.model.decoder, full.mode) == ("every_position", "item_table", "unified")
    assert (full.model.num_layers, full.model.d_model, full.model.d_ff) == (4, 128, 1024)  # TIGER's size

    cfg = load_config(SeqRunConfig, CONFIGS / name, [*TOY, f"data.dataset={beauty_slice}", f"output_dir={tmp_path}"])
    data, splits = load_data(cfg.data)
    ctx = SeedContext(cfg, 1, data, splits, None, tmp_path, Accelerator(cpu=True))
    torch.manual_seed(0)
    level_sizes = joint_level_sizes(cfg.tokenizer)
    index = np.random.default_rng(0).permutation(data.num_items)  # unique codes within the level sizes
    codes = torch.from_numpy(np.stack([index % 16, index // 16 % 16, index // 256 % 16, np.zeros_like(index)], 1))
    items = ItemEmbedding(torch.randn(data.num_items, cfg.tokenizer.latent_dim), cfg.items.id_dim, cfg.model.d_model)
    task = GenerativeTask(ctx.recommender(codes, level_sizes, items), splits, cfg.decode, 1, **ctx.objective())
    model = task.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
    loss, logs = task.loss(model, task.batch(torch.arange(cfg.train.batch_size), torch.device("cpu")))
    loss.backward()
    optimizer.step()
    assert set(logs) == {"rec", "dense"} and torch.isfinite(loss)
    assert model.head.node_proj.weight.grad is not None  # the item-table decoder learns
