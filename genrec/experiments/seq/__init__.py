"""The generative recommender's experiments: config, mode registry, tasks, joint schedule, runs."""
from genrec.experiments.seq.config import DecodeConfig, ItemInputConfig, SeqRunConfig
from genrec.experiments.seq.modes import MODES
from genrec.experiments.seq.run import run
from genrec.experiments.seq.saved import SavedRun

__all__ = ["DecodeConfig", "ItemInputConfig", "MODES", "SavedRun", "SeqRunConfig", "run"]
