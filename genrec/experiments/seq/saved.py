"""A finished run (`runs/<name>/seed_<s>/`) loaded back: its config, data and model, for recommending,
benchmarking or re-evaluation through the same task (mode registry) that trained it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genrec.config import load_config
from genrec.errors import MissingFileError, RunFolderError
from genrec.data import LeaveOneOut, SequenceData
from genrec.experiments.harness import load_data
from genrec.experiments.seq.config import SeqRunConfig
from genrec.experiments.seq.modes import SeedContext, build_task
from genrec.experiments.seq.tasks import GenerativeTask
from genrec.models.recommender import GenerativeRecommender


@dataclass
class SavedRun:
    cfg: SeqRunConfig
    data: SequenceData
    splits: LeaveOneOut
    model: GenerativeRecommender
    folder: Path

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> "SavedRun":
        folder = Path(folder)
        if not (folder / "run_config.yaml").exists():
            raise MissingFileError(f"{folder} is not a finished run (no run_config.yaml); point at runs/<name>/seed_<s>")
        cfg = load_config(SeqRunConfig, folder / "run_config.yaml")
        data, splits = load_data(cfg.data)
        model = GenerativeRecommender.from_pretrained(folder / "model", device)
        if model.item_ids != data.catalog.original_ids or (model.user_ids and model.user_ids != data.user_ids):
            # the data file changed since training: its ids would map to other rows of the model's tables
            raise RunFolderError(f"{folder}: the model's item or user ids (model/items.json: {len(model.item_ids)} "
                                 f"items) differ from dataset {cfg.data.dataset!r} as read now ({data.num_items} "
                                 "items); the data changed "
                                 "since this run trained. Recommend with --history (raw item ids) or retrain")
        return cls(cfg, data, splits, model, folder)

    def task(self, accelerator) -> GenerativeTask:
        """The task that trained this model, holding the saved weights (e.g. `task.evaluate(...)`)."""
        seed = int(self.folder.name.rsplit("_", 1)[-1]) if self.folder.name.startswith("seed_") else self.cfg.seeds[0]
        ctx = SeedContext(self.cfg, seed, self.data, self.splits, None, self.folder, accelerator)
        return build_task(ctx, self.model)

    def test_inputs(self, device: str = "cpu") -> tuple[dict[str, Any], torch.Tensor]:
        """Encoder inputs (keyword arguments of the T5 encoder) and targets of every test user."""
        split = self.splits.test
        history, users = torch.from_numpy(split.history).to(device), torch.from_numpy(split.user).to(device)
        with torch.no_grad():
            inputs = self.model.encoder_inputs(history, users)
        return inputs, torch.from_numpy(split.target).to(device)
