"""The joint-training schedule: a plan saying, for every epoch, which parts learn and whether the
item codes (the decoder's targets) are refreshed after it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class Epoch(NamedTuple):
    """One epoch of a joint schedule: which parts learn, and whether codes are refreshed after it."""

    phase: str  # rec (recommender only) | tok (tokenizer only) | both
    refresh: bool = False  # re-assign codes (the targets) and rebuild the trie at the end of this epoch

    def __str__(self) -> str:
        return self.phase + ("+refresh" if self.refresh else "")


REC, TOK = Epoch("rec"), Epoch("tok", refresh=True)


@dataclass
class JointConfig:
    # target_freeze: (rec_epochs x rec, freeze_epochs x both) per cycle; in the window both parts learn while the
    #   targets stay fixed, and with window_refresh the codes are re-assigned once at its end;
    # alternating (ETEGRec-style): (rec_epochs x rec, tok_epochs x tok) per cycle, codes refreshed after every tok epoch;
    # simultaneous: both parts learn every epoch and codes are refreshed after each (the ablation).
    # The defaults are the schedule chosen on validation (docs/results/joint.md): targets never move, and the
    # tokenizer learns from the recommendation loss at the recommender's rate, as sasrec_unified's does.
    schedule: str = "target_freeze"
    rec_epochs: int = 0  # per cycle: recommender only, tokenizer frozen, codes fixed
    tok_epochs: int = 1  # per alternating cycle: tokenizer only (recommender frozen)
    freeze_epochs: int = 2  # per target_freeze cycle: the length of the window
    window_refresh: bool = False  # target_freeze: re-assign the codes at the end of each window
    cycles: int = 1  # the epochs left after the cycles are a recommender-only fine-tune on the final codes
    tok_lr_scale: float = 1.0  # with refreshes, use ~0.01: tokenizer codes sit on boundaries and a refresh moves them
    rq_weight: float = 1.0  # RQ-VAE reconstruction + quantization losses while the tokenizer learns
    align_weight: float = 0.0  # tokenizer's soft code assignment of the target -> recommender's prediction
    align_temperature: float = 1.0
    align_warmup_steps: int = 200  # the alignment weight ramps up linearly over the first tokenizer steps
    refresh_margin: float = 0.5  # a refreshed code stays put unless another is nearer by this fraction
    suffix_slots: int = 0  # fixed size of the dedup-suffix level (0 = codebook_size); refreshes must fit in it


def plan_epochs(cfg: JointConfig, epochs: int) -> list[Epoch]:
    """The plan of every epoch."""
    if cfg.schedule == "simultaneous":
        return [Epoch("both", refresh=True)] * epochs
    if cfg.schedule == "alternating":
        cycle = [REC] * cfg.rec_epochs + [TOK] * cfg.tok_epochs
    elif cfg.schedule == "target_freeze":
        if cfg.freeze_epochs < 1:
            raise ValueError(f"joint.freeze_epochs must be at least 1, got {cfg.freeze_epochs}")
        window = [Epoch("both")] * (cfg.freeze_epochs - 1) + [Epoch("both", refresh=cfg.window_refresh)]
        cycle = [REC] * cfg.rec_epochs + window
    else:
        raise ValueError(f"joint.schedule must be 'alternating', 'target_freeze' or 'simultaneous', got {cfg.schedule!r}")
    plan = cycle * cfg.cycles
    if len(plan) >= epochs:
        raise ValueError(f"train.epochs={epochs} leaves no final recommender epoch after {cfg.cycles} cycle(s) of "
                         f"{len(cycle)} epochs ({' '.join(map(str, cycle))}); raise train.epochs or lower joint.cycles")
    return plan + [REC] * (epochs - len(plan))
