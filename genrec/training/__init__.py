"""The one accelerate-based training loop shared by every recipe."""
from genrec.training.loop import Task, TrainConfig, Trainer, make_accelerator, release_process_group

__all__ = ["Task", "TrainConfig", "Trainer", "make_accelerator", "release_process_group"]
