"""The generative run's config: one dataclass per section, filled from YAML and `key=value` overrides."""
from __future__ import annotations

from dataclasses import dataclass, field

from genrec.config import check
from genrec.experiments.harness import DataConfig, RunConfig
from genrec.experiments.seq.schedule import JointConfig
from genrec.experiments.tokenizer import TokenizerFitConfig
from genrec.models.seq2seq import Seq2SeqConfig
from genrec.training import TrainConfig


@dataclass
class ItemInputConfig:
    """How history items enter the model in the `unified` and `joint` modes (and SASRec's unified items)."""

    id_dim: int = 16  # width of the per-item learned ID half of `[ID ‖ semantic]`; 0 drops it (ablation)


@dataclass
class ObjectiveConfig:
    """How training examples are formed and scored.

    window: one example per (history, next item), the encoder run once per prefix (TIGER, the reference);
    every_position: a causal encoder over each row of a user's history and, for every position t, the
      decoder emitting the codes of item t+1 (cross-attending to positions <= t) in one pass, plus a
      dense item head (the state at t scores every item through the item table, full-softmax CE)."""

    kind: str = "window"
    dense_weight: float = 1.0  # every_position: weight of the dense head's loss; 0 is the ablation
    # every_position: weight of the decoder's cross-entropy to the dense head's (detached) probability mass
    # under each code of each level (the dense head distilled into the decoder); 0 = off
    distill_weight: float = 0.0

    def validate(self) -> None:
        check(self.kind in ("window", "every_position"), f"kind must be window or every_position, got {self.kind!r}")
        check(self.dense_weight >= 0, f"dense_weight must not be negative, got {self.dense_weight}")
        check(self.distill_weight >= 0, f"distill_weight must not be negative, got {self.distill_weight}")
        check(self.distill_weight == 0 or self.kind == "every_position",
              "distill_weight needs the dense head of objective.kind=every_position")


@dataclass
class DecodeConfig:
    beam: int = 20
    topk: int = 10
    batch_size: int = 512
    valid_users: int = 0  # evaluate early stopping on this many fixed random validation users; 0 = all
    # models with a dense head: the hybrid ranking is beam search guided by the dense head, each prefix scored
    # alpha * sequence log-probability + (1 - alpha) * the dense head's log-probability mass under it; alpha is
    # chosen on validation after training (each mix is one more search). 0 and 1 are left out by default: they
    # are the dense head's own ranking (near enough) and the plain beam, both reported anyway
    hybrid_alphas: list[float] = field(default_factory=lambda: [0.1, 0.3, 0.5, 0.7, 0.9])

    def validate(self) -> None:
        check(self.beam >= 1 and self.batch_size >= 1, "beam and batch_size must be at least 1")
        check(1 <= self.topk <= self.beam, f"topk must be between 1 and the beam width {self.beam}, got {self.topk}")
        check(self.valid_users >= 0, f"valid_users must be 0 (all) or a positive count, got {self.valid_users}")
        check(len(self.hybrid_alphas) > 0 and all(0 <= a <= 1 for a in self.hybrid_alphas),
              f"hybrid_alphas must be weights in [0, 1], got {self.hybrid_alphas}")


@dataclass
class SeqRunConfig(RunConfig):
    name: str = "beauty_seq"
    tokenizer_path: str = ""  # two_stage: a saved semantic-ID table folder; empty = train one per seed
    # a name in genrec.experiments.seq.modes.MODES:
    # two_stage: TIGER (tokenizer, then a recommender over code tokens on fixed codes);
    # unified: history items enter as [ID embedding ‖ quantized vector], the stage-one tokenizer's vectors frozen;
    # joint: the unified input, and the tokenizer keeps learning from the recommendation loss (`joint` schedule)
    mode: str = "two_stage"
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerFitConfig = field(default_factory=TokenizerFitConfig)
    items: ItemInputConfig = field(default_factory=ItemInputConfig)
    model: Seq2SeqConfig = field(default_factory=Seq2SeqConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    joint: JointConfig = field(default_factory=JointConfig)  # mode=joint only

    def validate(self) -> None:
        super().validate()
        for option in ("start_from_state", "node_head"):
            check(not getattr(self.model, option) or self.objective.kind == "every_position",
                  f"model.{option} needs objective.kind=every_position (a causal encoder and its item table)")
        check(self.model.node_score in ("mean", "mass"), f"model.node_score must be mean or mass, got {self.model.node_score!r}")
        check(self.model.root_query in ("decoder", "encoder"),
              f"model.root_query must be decoder or encoder, got {self.model.root_query!r}")
        check(self.model.root_query == "decoder" or (self.model.node_head and self.model.node_score == "mass"),
              "model.root_query=encoder needs the mass node head (model.node_head=true, model.node_score=mass)")
