"""The mode registry: `{mode name: task builder}`, used to train a mode and to reload a saved run of it.

A builder gets what one seed of a run needs (`SeedContext`) and, when reloading, the saved model; it
returns the task that trains and evaluates that model. A new mode is one function and one entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from accelerate import Accelerator

from genrec.data import LeaveOneOut, SequenceData
from genrec.data.embeddings import encoder_spec
from genrec.data.splits import training_rows
from genrec.experiments.harness import log
from genrec.experiments.seq.config import SeqRunConfig
from genrec.experiments.seq.tasks import (GenerativeTask, JointTask, NewItems, check_fits, item_codes,
                                          joint_level_sizes)
from genrec.experiments.tokenizer import pretrained_tokenizer, seeded, semantic_table
from genrec.models.item_embedding import ItemEmbedding
from genrec.models.recommender import GenerativeRecommender
from genrec.quantize import SemanticIdTable
from genrec.quantize.tokenizer import SemanticTokenizer
from genrec.training.checkpoint import load_weights
from genrec.training.loop import BEST


@dataclass
class SeedContext:
    cfg: SeqRunConfig
    seed: int
    data: SequenceData
    splits: LeaveOneOut
    embeddings: np.ndarray | None  # item-text vectors (the tokenizer's input); None when reloading
    run_dir: Path
    accelerator: Accelerator

    @property
    def every_position(self) -> bool:
        return self.cfg.objective.kind == "every_position"  # the config's validate() allows only the two kinds

    @property
    def known(self) -> int:
        """The items a model is built and trained over: all, or the cold-start protocol's known items (the first)."""
        return self.data.num_items if self.splits.known is None else self.splits.known

    def recommender(self, codes: torch.Tensor, level_sizes: list[int], items: ItemEmbedding | None) -> GenerativeRecommender:
        catalog, n = self.data.catalog, len(codes)
        return GenerativeRecommender(codes, level_sizes, self.cfg.model, self.cfg.data.max_history, items,
                                     list(catalog.original_ids[:n]), [catalog.title(i) for i in range(n)],
                                     causal=self.every_position, user_ids=self.data.user_ids)

    def keep_tokenizer(self, model: GenerativeRecommender) -> None:
        """Keep this seed's stage-one tokenizer (and the text encoder's spec) with a trained model that has no live
        one, so the saved model takes new items by their text (`GenerativeRecommender.add_items`); a run that read
        its codes from `tokenizer_path` has no tokenizer to keep."""
        checkpoint = self.run_dir / "tokenizer" / BEST  # where `semantic_table` fitted it
        if model.tokenizer is None and not self.cfg.tokenizer_path and checkpoint.exists():
            tokenizer = SemanticTokenizer(self.embeddings.shape[1], seeded(self.cfg.tokenizer, self.seed))
            load_weights(tokenizer, checkpoint)
            model.keep_tokenizer(tokenizer, encoder_spec())
        elif model.tokenizer is not None:
            model.text_encoder = encoder_spec()

    def objective(self) -> dict:
        """The task's training-example settings: every-position rows and the dense head's and distillation's weights."""
        rows = training_rows(self.data, self.cfg.data.max_history, self.splits.known) if self.every_position else None
        return {"rows": rows, "dense_weight": self.cfg.objective.dense_weight,
                "distill_weight": self.cfg.objective.distill_weight}

    def new_items(self, table: SemanticIdTable) -> NewItems | None:
        """The cold-start protocol's new items as the fitted tokenizer encodes them (the table's last rows), with
        their text vectors; None under the standard protocol."""
        known, catalog = self.known, self.data.catalog
        if known == self.data.num_items:
            return None
        text = torch.tensor(self.embeddings[known:], dtype=torch.float32)
        return NewItems(table.codes[known:], table.semantic[known:], text, list(catalog.original_ids[known:]),
                        [catalog.title(i) for i in range(known, len(catalog))])

    def table(self) -> SemanticIdTable:
        """This seed's stage-one semantic-ID table (trained once per run folder), or `tokenizer_path`'s. Under the
        cold-start protocol the tokenizer is fitted without the new items' text and then encodes them too."""
        if self.cfg.tokenizer_path:
            if self.splits.known is not None:
                raise ValueError("the cold-start protocol (data.new_items) fits its own tokenizer without the new "
                                 "items' text; leave tokenizer_path empty")
            return SemanticIdTable.load(self.cfg.tokenizer_path)
        table = semantic_table(seeded(self.cfg.tokenizer, self.seed), self.embeddings, self.run_dir, self.accelerator,
                               self.splits.known)
        log(self.accelerator, f"seed {self.seed}: semantic IDs {table.num_items} items x {table.num_levels} levels "
                              f"(unique before dedup {table.meta.unique_rate_before_dedup:.4f}, "
                              f"level sizes {table.meta.level_sizes})")
        return table


def two_stage(ctx: SeedContext, model: GenerativeRecommender | None = None) -> GenerativeTask:
    """TIGER: a fixed tokenizer's codes, and history items enter the encoder as code tokens."""
    new = None
    if model is None:
        table = ctx.table()
        model, new = ctx.recommender(table.codes[: ctx.known], table.meta.level_sizes, None), ctx.new_items(table)
    return GenerativeTask(model, ctx.splits, ctx.cfg.decode, ctx.seed, **ctx.objective(), new_items=new)


def unified(ctx: SeedContext, model: GenerativeRecommender | None = None) -> GenerativeTask:
    """History items enter as `[ID embedding ‖ quantized semantic vector]`; the semantic half is the
    stage-one tokenizer's, frozen. The suffix level has codebook_size slots, as in joint mode."""
    new = None
    if model is None:
        table = ctx.table()
        level_sizes = joint_level_sizes(ctx.cfg.tokenizer)
        check_fits(table.meta.level_sizes, level_sizes)
        known = ctx.known
        items = ctx.cfg.items.embedding(table.semantic[:known], ctx.cfg.model.d_model, ctx.embeddings[:known],
                                        keep_text=bool(ctx.cfg.decode.text_view_weights))
        model, new = ctx.recommender(table.codes[:known], level_sizes, items), ctx.new_items(table)
    return GenerativeTask(model, ctx.splits, ctx.cfg.decode, ctx.seed, **ctx.objective(), new_items=new)


def joint(ctx: SeedContext, model: GenerativeRecommender | None = None) -> JointTask:
    """The unified input with the tokenizer inside the model, learning by the `joint` schedule."""
    cfg = ctx.cfg
    if ctx.splits.known is not None:
        raise ValueError("the cold-start protocol (data.new_items) runs the unified and two_stage modes: joint training "
                         "re-assigns codes, and new items would need codes from a tokenizer that moved")
    if model is None:
        tokenizer = pretrained_tokenizer(seeded(cfg.tokenizer, ctx.seed), ctx.embeddings, ctx.run_dir, ctx.accelerator)
        level_sizes = joint_level_sizes(cfg.tokenizer, cfg.joint.suffix_slots)
        codes, _ = item_codes(tokenizer, torch.tensor(ctx.embeddings, dtype=torch.float32), level_sizes)
        items = cfg.items.embedding(None, cfg.model.d_model, ctx.embeddings, tokenizer)
        model = ctx.recommender(codes, level_sizes, items)
    task = JointTask(model, ctx.splits, cfg.decode, ctx.seed, cfg.joint, cfg.train.epochs, **ctx.objective())
    log(ctx.accelerator, f"seed {ctx.seed}: joint schedule, epochs {' '.join(map(str, task.phases))}")
    return task


TaskBuilder = Callable[..., GenerativeTask]
MODES: dict[str, TaskBuilder] = {"two_stage": two_stage, "unified": unified, "joint": joint}


def build_task(ctx: SeedContext, model: GenerativeRecommender | None = None) -> GenerativeTask:
    if ctx.cfg.mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, got {ctx.cfg.mode!r}")
    return MODES[ctx.cfg.mode](ctx, model)
