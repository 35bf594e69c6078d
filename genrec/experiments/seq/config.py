"""The generative run's config: one dataclass per section, filled from YAML and `key=value` overrides."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from genrec.config import check
from genrec.experiments.harness import DataConfig, RunConfig
from genrec.experiments.seq.schedule import JointConfig
from genrec.experiments.tokenizer import TokenizerFitConfig
from genrec.models.item_embedding import ItemEmbedding
from genrec.models.seq2seq import Seq2SeqConfig
from genrec.quantize.tokenizer import SemanticTokenizer
from genrec.training import TrainConfig


@dataclass
class ItemInputConfig:
    """How items are represented in the `unified` and `joint` modes (and SASRec's unified items): the parts that
    enter the one projection to the model width."""

    id_dim: int = 16  # width of the per-item learned ID half of `[ID ‖ semantic]`; 0 drops it (ablation)
    semantic: bool = True  # the quantized semantic vector (the codes' own vectors); false: the ablations without it
    text: bool = False  # the item's text vector itself (fixed, 384 numbers), beside the ID and the semantic half

    def validate(self) -> None:
        check(self.id_dim >= 0, f"id_dim must not be negative, got {self.id_dim}")
        check(self.id_dim > 0 or self.semantic or self.text,
              "an item needs at least one part: items.id_dim > 0, items.semantic or items.text")

    def embedding(self, semantic: torch.Tensor, d_model: int, text: np.ndarray | torch.Tensor | None,
                  tokenizer: SemanticTokenizer | None = None, keep_text: bool = False) -> ItemEmbedding:
        """The item table these settings describe; `text`: every item's text vector (the tokenizer's input too),
        needed with `text`, `keep_text` (the text view reads them) or a live `tokenizer`; `semantic`: the frozen
        semantic half (ignored with a tokenizer)."""
        vectors = None if text is None else torch.tensor(np.asarray(text), dtype=torch.float32)  # an aligned copy
        kept = vectors if self.text or keep_text else None
        if tokenizer is not None:
            return ItemEmbedding.live(tokenizer, vectors, self.id_dim, d_model, kept, self.semantic, self.text)
        return ItemEmbedding(semantic, self.id_dim, d_model, text=kept, use_semantic=self.semantic, use_text=self.text)


@dataclass
class ObjectiveConfig:
    """How training examples are formed and scored.

    window: one example per (history, next item), the encoder run once per prefix (TIGER, the reference);
    every_position: a causal encoder over each row of a user's history and, for every position t, the
      decoder emitting the codes of item t+1 (cross-attending to positions <= t) in one pass, plus a
      dense item head (the state at t scores every item through the item table, full-softmax CE)."""

    kind: str = "every_position"
    dense_weight: float = 1.0  # every_position: weight of the dense head's loss; 0 is the ablation
    # every_position: weight of the decoder's cross-entropy to the dense head's (detached) probability mass
    # under each code of each level (the dense head distilled into the decoder); 0 = off. Off in the short main
    # job (its slower steps cost epochs: all-users validation beam R@10 .0630 with it, .0656 without), on in the
    # 20-minute benchmark (recipes/configs/budget/every_position.yaml)
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
    valid_users: int = 2000  # select the best epoch on this many fixed random validation users; 0 = all
    # models with a dense head: the hybrid ranking is beam search guided by the dense head, each prefix scored
    # alpha * sequence log-probability + (1 - alpha) * the dense head's log-probability mass under it; alpha is
    # chosen on validation after training (each mix is one more search over the validation users, and the chosen
    # one over the test users). Empty (the main job's default): no hybrid ranking. With the item-table decoder the
    # beam already follows the dense head's mass, and the hybrid comes out level with the beam (the 20-minute
    # benchmark, which reports it: recipes/configs/budget/every_position.yaml), at about half the evaluation's time
    hybrid_alphas: list[float] = field(default_factory=list)
    # the cold-start protocol: once the new items join the model, their scores get the offset at which they fill their
    # share of the catalogue in the top-k over the validation histories (as if as popular as the average item; no
    # test data is read); false: their raw scores, content alone against the known items' learned ID rows
    calibrate_new_items: bool = True
    # the text view: each item's score gets a weight times the cosine of its text vector to the last history item's,
    # the weight chosen on validation after training among these (one search over the validation users each; 0 is the
    # model alone); the items keep their text vectors for it. Empty: off. On by default: in the main job, validation
    # beam N@10 .0432 (0) against .0502 (4) for the same training (docs/results/item_text.md)
    text_view_weights: list[float] = field(default_factory=lambda: [0.0, 4.0, 8.0])

    def validate(self) -> None:
        check(self.beam >= 1 and self.batch_size >= 1, "beam and batch_size must be at least 1")
        check(1 <= self.topk <= self.beam, f"topk must be between 1 and the beam width {self.beam}, got {self.topk}")
        check(self.valid_users >= 0, f"valid_users must be 0 (all) or a positive count, got {self.valid_users}")
        check(all(w >= 0 for w in self.text_view_weights), f"text_view_weights must not be negative, got {self.text_view_weights}")
        check(all(0 <= a <= 1 for a in self.hybrid_alphas),
              f"hybrid_alphas must be weights in [0, 1], got {self.hybrid_alphas}")


def _tokenizer_fit() -> TokenizerFitConfig:
    fit = TokenizerFitConfig()
    return replace(fit, train=replace(fit.train, epochs=60, eval_every=20))  # unique rate .96 by epoch 60 on Beauty


def _seq_train() -> TrainConfig:
    """The main job's loop: a fixed 4 epochs, so a slow machine trains as many epochs as a fast one, with
    8 minutes of training as a safety cap only (an AVX2-only 2-core CPU needs about 7); 128 rows a step (~700
    targets); no early stopping (the cosine schedule anneals over the 4 epochs; epochs 2 and 4 are validated and the
    better kept: the last was the best in every run, and each validation costs an AVX2-only CPU ~8 s);
    lr 5e-3, which beat 3e-3 at 4 epochs (validation beam R@10 .0785 against .0640, 2,000 users) and 8e-3 at 3;
    fp32 outside the item scores (`model.item_score_precision`): whole-model bf16 autocast is slower here."""
    return TrainConfig(epochs=4, batch_size=128, lr=0.005, weight_decay=0.05, warmup_steps=50, eval_every=2,
                       patience=0, monitor="ndcg@10", max_minutes=8, mixed_precision="no")


@dataclass
class SeqRunConfig(RunConfig):
    """With no YAML, the shipped model: what `recipes/train_seq.py` trains on a CPU (every-position training,
    unified item input, the item-table decoder, 2+2 layers of width 64)."""

    name: str = "beauty_seq_cpu"
    tokenizer_path: str = ""  # two_stage: a saved semantic-ID table folder; empty = train one per seed
    # a name in genrec.experiments.seq.modes.MODES:
    # two_stage: TIGER (tokenizer, then a recommender over code tokens on fixed codes);
    # unified: history items enter as [ID embedding ‖ quantized vector], the stage-one tokenizer's vectors frozen;
    # joint: the unified input, and the tokenizer keeps learning from the recommendation loss (`joint` schedule)
    mode: str = "unified"
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerFitConfig = field(default_factory=_tokenizer_fit)
    items: ItemInputConfig = field(default_factory=ItemInputConfig)
    model: Seq2SeqConfig = field(default_factory=Seq2SeqConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    train: TrainConfig = field(default_factory=_seq_train)
    joint: JointConfig = field(default_factory=JointConfig)  # mode=joint only

    def validate(self) -> None:
        super().validate()
        check(self.model.decoder != "item_table" or self.objective.kind == "every_position",
              "model.decoder=item_table needs objective.kind=every_position (a causal encoder and its item table); "
              "the sliding window trains model.decoder=tiger")
        check(self.objective.kind == "window" or self.mode != "two_stage",
              "objective.kind=every_position needs item vectors as input (mode=unified or joint), not code tokens")
