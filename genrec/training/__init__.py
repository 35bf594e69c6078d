"""The one training loop and what it needs from a task."""
from genrec.training.loop import SplitTensors, Task, TrainConfig, Trainer, eval_batches, make_accelerator

__all__ = ["SplitTensors", "Task", "TrainConfig", "Trainer", "eval_batches", "make_accelerator"]
