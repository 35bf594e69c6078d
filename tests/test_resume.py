"""Resuming a run: exact after a SIGKILL, never unpickling anything, refusing changed settings, naming damaged files."""
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from torch import nn

from genrec.errors import RunFolderError
from genrec.training.loop import Task, TrainConfig, Trainer, model_signature

TOY = textwrap.dedent('''
    import json, sys, time
    import torch
    from torch import nn
    from genrec.training.loop import Task, TrainConfig, Trainer

    class Toy(Task):
        """Shuffled batches and dropout: a resume that lost either generator would diverge."""
        def __init__(self, pause):
            torch.manual_seed(0)
            self.model = nn.Sequential(nn.Linear(8, 32), nn.Dropout(0.3), nn.ReLU(), nn.Linear(32, 1))
            g = torch.Generator().manual_seed(1)
            self.x, self.y = torch.randn(256, 8, generator=g), torch.randn(256, generator=g)
            self.pause = pause
        def num_train_examples(self):
            return 256
        def batch(self, indices, device):
            return self.x[indices], self.y[indices]
        def loss(self, model, batch):
            time.sleep(self.pause)
            x, y = batch
            return ((model(x).squeeze(-1) - y) ** 2).mean(), {}
        def evaluate(self, model, split, accelerator):
            model.eval()
            with torch.no_grad():
                score = -((model(self.x).squeeze(-1) - self.y) ** 2).mean().item()
            model.train()
            return {"score": score}

    cfg = TrainConfig(epochs=4, batch_size=16, lr=1e-2, monitor="score", patience=0, progress=False,
                      mixed_precision="no")
    fit = Trainer(cfg, sys.argv[1]).fit(Toy(float(sys.argv[2])))
    json.dump({"history": [[h["train_loss"], h["valid_score"]] for h in fit["history"]],
               "weights": {k: v.tolist() for k, v in fit["model"].state_dict().items()}}, open(sys.argv[3], "w"))
''')


def _toy(tmp_path, folder, pause, out) -> subprocess.Popen:
    script = tmp_path / "toy.py"
    script.write_text(TOY)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GENREC_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), str(folder), str(pause), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_same_weights_and_metrics(tmp_path):
    straight = _toy(tmp_path, tmp_path / "straight", 0.0, tmp_path / "straight.json")
    assert straight.wait(120) == 0, straight.stderr.read().decode()
    killed = _toy(tmp_path, tmp_path / "killed", 0.05, tmp_path / "never.json")
    done = tmp_path / "killed" / "last" / "done.json"
    deadline = time.time() + 120
    while time.time() < deadline:  # wait for the checkpoint of epoch 2, then kill inside epoch 3
        if done.exists() and json.loads(done.read_text())["epoch"] == 2:
            break
        time.sleep(0.01)
    time.sleep(0.2)
    killed.send_signal(signal.SIGKILL)
    killed.wait(30)
    assert not (tmp_path / "never.json").exists()
    resumed = _toy(tmp_path, tmp_path / "killed", 0.0, tmp_path / "resumed.json")
    assert resumed.wait(120) == 0, resumed.stderr.read().decode()
    a, b = json.loads((tmp_path / "straight.json").read_text()), json.loads((tmp_path / "resumed.json").read_text())
    assert a["history"] == b["history"]  # every epoch's loss and validation score, bit for bit
    assert a["weights"] == b["weights"]


class Flat(Task):
    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = nn.Linear(4, 1)
        self.x, self.y = torch.randn(64, 4), torch.randn(64)

    def num_train_examples(self) -> int:
        return 64

    def batch(self, indices, device):
        return self.x[indices], self.y[indices]

    def loss(self, model, batch):
        return ((model(batch[0]).squeeze(-1) - batch[1]) ** 2).mean(), {}

    def evaluate(self, model, split, accelerator):
        return {"score": 1.0}


def _cfg(**over) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 16, "monitor": "score", "patience": 0, "progress": False,
                          "mixed_precision": "no", **over})


class Boom:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling this creates the marker file


def test_a_planted_pickle_is_never_loaded(tmp_path):
    last = tmp_path / "last"
    last.mkdir()
    marker = tmp_path / "pwned"
    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin"):
        (last / name).write_bytes(pickle.dumps(Boom(str(marker))))
    (last / "done.json").write_text(json.dumps({"epoch": 1, "model": model_signature(Flat().model)}))
    with pytest.raises(RunFolderError, match="older genrec"):
        Trainer(_cfg(), tmp_path).fit(Flat())
    assert not marker.exists()


def test_changed_settings_are_refused_by_name_and_damaged_files_are_named(tmp_path):
    Trainer(_cfg(), tmp_path).fit(Flat())
    with pytest.raises(RunFolderError, match=r"train.lr: saved 0.001, requested 0.01.*train.resume=false"):
        Trainer(_cfg(epochs=3, lr=0.01), tmp_path).fit(Flat())
    fit = Trainer(_cfg(epochs=3), tmp_path).fit(Flat())  # raising epochs continues the run
    assert [h["epoch"] for h in fit["history"]] == [1, 2, 3]
    optimizer = tmp_path / "last" / "optimizer.safetensors"
    optimizer.write_bytes(optimizer.read_bytes()[: optimizer.stat().st_size // 2])
    with pytest.raises(RunFolderError, match="optimizer.safetensors is damaged or incomplete"):
        Trainer(_cfg(epochs=4), tmp_path).fit(Flat())
    optimizer.unlink()
    Trainer(_cfg(epochs=3, resume=False), tmp_path).fit(Flat())  # starting over replaces the damaged state
    best = tmp_path / "best_model.safetensors"
    best.write_bytes(best.read_bytes()[:100])
    with pytest.raises(RunFolderError, match="best_model.safetensors is damaged or incomplete"):
        Trainer(_cfg(epochs=4), tmp_path).fit(Flat())
    (tmp_path / "last" / "done.json").write_text('{"epoch": 3, "mod')
    with pytest.raises(RunFolderError, match="done.json is damaged or incomplete"):
        Trainer(_cfg(epochs=4), tmp_path).fit(Flat())
