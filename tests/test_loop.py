"""The shared training loop on a toy task: early stopping, and what a resumed run does."""
import torch
from torch import nn

from genrec.training.loop import Task, TrainConfig, Trainer


class FlatTask(Task):
    """Regression on random data whose validation score never improves after epoch 1."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = nn.Linear(4, 1)
        self.x, self.y = torch.randn(64, 4), torch.randn(64)
        self.steps = 0

    def num_train_examples(self) -> int:
        return len(self.y)

    def batch(self, indices, device):
        return self.x[indices].to(device), self.y[indices].to(device)

    def loss(self, model, batch):
        self.steps += 1
        x, y = batch
        return ((model(x).squeeze(-1) - y) ** 2).mean(), {}

    def evaluate(self, model, split, accelerator):
        return {"score": 1.0}

    def on_epoch_end(self, model, epoch, accelerator):
        return {}


def test_early_stopped_run_stays_stopped_when_resumed(tmp_path):
    cfg = TrainConfig(epochs=10, batch_size=16, lr=1e-2, warmup_steps=0, eval_every=1, patience=2, monitor="score",
                      progress=False, resume=True, checkpoint_every=1)
    first = Trainer(cfg, tmp_path).fit(FlatTask())
    assert [h["epoch"] for h in first["history"]] == [1, 2, 3] and first["best_epoch"] == 1  # two evals without gain

    task = FlatTask()
    again = Trainer(cfg, tmp_path).fit(task)
    assert task.steps == 0 and len(again["history"]) == 3  # finished: nothing more is trained
    assert again["train_sequences_per_second"] == first["train_sequences_per_second"]

    patient = FlatTask()  # a larger patience continues the same run
    more = Trainer(TrainConfig(**{**vars(cfg), "patience": 3}), tmp_path).fit(patient)
    assert patient.steps == 4 and [h["epoch"] for h in more["history"]] == [1, 2, 3, 4]


class SlowTask(FlatTask):
    def loss(self, model, batch):
        import time

        time.sleep(0.05)
        return super().loss(model, batch)


def test_time_budget_stops_within_the_epoch_and_the_run_stays_stopped(tmp_path):
    """The budget is checked after every step, not at epoch ends: the learning rate is already zero past
    it, so finishing the epoch would only cost wall time."""
    cfg = TrainConfig(epochs=10, batch_size=4, lr=1e-2, warmup_steps=0, eval_every=1, monitor="score",
                      progress=False, resume=True, checkpoint_every=1, max_minutes=0.3 / 60)  # 0.3 s, 16 steps an epoch
    task = SlowTask()
    first = Trainer(cfg, tmp_path).fit(task)
    assert [h["epoch"] for h in first["history"]] == [1]
    # 0.3 s at 0.05 s a step: 6 steps on an idle machine, fewer on a loaded one, never the whole epoch
    assert 3 <= task.steps < 16 and first["history"][0]["steps"] == f"{task.steps}/16"
    again = SlowTask()
    Trainer(cfg, tmp_path).fit(again)
    assert again.steps == 0  # resumed past its budget: nothing more is trained
