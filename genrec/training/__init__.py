"""The one accelerate-based training loop shared by every recipe."""
from genrec.training.loop import Task, TrainConfig, Trainer, make_accelerator

__all__ = ["Task", "TrainConfig", "Trainer", "make_accelerator"]
