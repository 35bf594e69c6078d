"""Training tasks of the generative recommender for the shared loop.

`GenerativeTask` trains a `GenerativeRecommender` on sliding-window examples (each history -> the
next item's code tuple) and evaluates it by constrained beam search. `JointTask` adds the joint
schedule: which parts learn in each epoch, and when the codes (the decoder's targets) are refreshed.
"""
from __future__ import annotations

import numpy as np
import torch
from accelerate import Accelerator

from genrec.data.splits import LeaveOneOut
from genrec.evaluation.ranking import metrics_from_ranks, target_ranks_from_topk
from genrec.experiments.seq.config import DecodeConfig
from genrec.experiments.seq.schedule import JointConfig, plan_epochs
from genrec.models.recommender import GenerativeRecommender
from genrec.quantize.semantic_ids import SemanticIdTable
from genrec.quantize.tokenizer import SemanticTokenizer, TokenizerConfig
from genrec.training import SplitTensors, Task, eval_batches


class GenerativeTask(Task):
    def __init__(self, model: GenerativeRecommender, splits: LeaveOneOut, decode: DecodeConfig, seed: int):
        self.model = model
        self.decode = decode
        self.data = SplitTensors(splits.tensors())
        if decode.valid_users and decode.valid_users < len(splits.valid):
            pick = np.random.default_rng(seed).choice(len(splits.valid), decode.valid_users, replace=False)
            self.data.select("valid", torch.from_numpy(np.sort(pick)))

    def num_train_examples(self) -> int:
        return self.data.rows("train")

    def batch(self, indices: torch.Tensor, device: torch.device, split: str = "train") -> dict[str, torch.Tensor]:
        batch = self.data.gather(split, indices, device)
        self.model.codes_on(device)
        batch["labels"] = self.model.vocab.item_tokens[batch["target"]]
        return batch

    def loss(self, model, batch):
        losses = model(batch["history"], batch["user"], batch["labels"])
        return losses["rec"], {k: v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def evaluate(self, model: GenerativeRecommender, split: str, accelerator: Accelerator) -> dict[str, float]:
        """Recall/NDCG of the beam's top-k, plus the share of top-k slots holding an invalid item or a
        duplicate (slots left empty because fewer valid items exist count as invalid)."""
        model.eval()
        model.sync_codes()
        ranks, invalid, dupes = [], [], []
        for batch in eval_batches(self, split, self.decode.batch_size, accelerator):
            with accelerator.autocast():
                items, _ = model.generate(batch["history"], batch["user"], self.decode.beam, self.decode.topk)
            ranks.append(accelerator.gather_for_metrics(target_ranks_from_topk(items, batch["target"])))
            invalid.append(accelerator.gather_for_metrics((items < 0).sum(1)))
            sorted_items = items.sort(1).values
            dupes.append(accelerator.gather_for_metrics(((sorted_items[:, 1:] == sorted_items[:, :-1]) & (sorted_items[:, 1:] >= 0)).sum(1)))
        model.train()
        metrics = metrics_from_ranks(torch.cat(ranks))
        slots = len(torch.cat(ranks)) * self.decode.topk
        metrics["invalid_rate"] = torch.cat(invalid).sum().item() / slots
        metrics["duplicate_rate"] = torch.cat(dupes).sum().item() / slots
        return metrics


def joint_level_sizes(tok_cfg: TokenizerConfig, suffix_slots: int = 0) -> list[int]:
    """Code slots per level when codes may move. The vocabulary must not change when codes are refreshed,
    so a dedup suffix level gets a fixed number of slots (codebook_size unless `suffix_slots`)."""
    suffix = [suffix_slots or tok_cfg.codebook_size] if tok_cfg.collision == "suffix" else []
    return [tok_cfg.codebook_size] * tok_cfg.num_levels + suffix


def item_codes(tokenizer: SemanticTokenizer, item_text: torch.Tensor, level_sizes: list[int],
               previous: torch.Tensor | None = None, margin: float = 0.0) -> tuple[torch.Tensor, float]:
    """Every item's code tuple with collisions resolved, and the unique rate before resolving. With
    `previous` codes, an item keeps its code unless another is nearer by `margin` (a refresh), so
    targets stay learnable. The tuples must fit `level_sizes` (the fixed vocabulary)."""
    cfg = tokenizer.cfg
    x = item_text.to(next(tokenizer.parameters()).device)
    if previous is None:
        table = SemanticIdTable.from_tokenizer(tokenizer, x)
    else:
        was = tokenizer.training
        tokenizer.eval()
        with torch.no_grad():
            raw = tokenizer.quantizer.assign_sticky(tokenizer.encode(x), previous[:, : cfg.num_levels], margin)
            last = tokenizer.last_level_distances(x) if cfg.collision == "reassign" else None
        tokenizer.train(was)
        table = SemanticIdTable.build(raw, tokenizer.quantizer.decode_codes(raw).detach(), codebook_size=cfg.codebook_size,
                                      collision=cfg.collision, distances=tokenizer.distances, last_distances=last)
    if any(used > size for used, size in zip(table.meta.level_sizes, level_sizes)):
        raise ValueError(f"a collision group outgrew the {level_sizes[-1]} suffix slots (level sizes "
                         f"{table.meta.level_sizes}); raise joint.suffix_slots, or lower joint.align_weight or "
                         "joint.tok_epochs if the tokenizer is collapsing")
    return table.codes.cpu(), table.meta.unique_rate_before_dedup


class JointTask(GenerativeTask):
    """The tokenizer lives in the model (`model.items.tokenizer`) and learns by the `joint` schedule:
    * `rec` epochs train the recommender (T5, ID embeddings, input projection) with the tokenizer frozen;
    * `tok` epochs train the tokenizer with the recommender frozen: the recommendation loss through the
      quantized history vectors, the RQ-VAE losses, and a warmed-up alignment term;
    * `both` epochs train the two together. Inside a target-freeze window codes are not refreshed, so the
      input side adapts while the targets stay learnable;
    * after an epoch marked `refresh`, codes are re-assigned (sticky, by `refresh_margin`), collisions are
      re-resolved into the fixed-size suffix level and the trie is rebuilt.
    Validation, early stopping and checkpoints are the loop's; a checkpoint carries its codes."""

    find_unused_parameters = True  # a phase freezes the tokenizer or the recommender (DDP must not wait for them)

    def __init__(self, model: GenerativeRecommender, splits: LeaveOneOut, decode: DecodeConfig, seed: int,
                 joint: JointConfig, epochs: int):
        super().__init__(model, splits, decode, seed)
        if model.items is None or model.items.tokenizer is None:
            raise ValueError("joint training needs a model whose item embedding holds a live tokenizer")
        self.joint = joint
        self.phases = plan_epochs(joint, epochs)
        self.current = self.phases[0]
        self.tok_steps = 0

    def lr_scale(self, parameter_name: str) -> float:
        return self.joint.tok_lr_scale if parameter_name.startswith("items.tokenizer.") else 1.0

    def on_epoch_start(self, model: GenerativeRecommender, epoch: int, accelerator: Accelerator) -> None:
        self.current = self.phases[min(epoch, len(self.phases) - 1)]
        train_tokenizer = self.current.phase in ("tok", "both")
        train_recommender = self.current.phase in ("rec", "both")
        for p in model.items.tokenizer.parameters():
            p.requires_grad_(train_tokenizer)
        for module in (model.t5, model.items.proj, model.items.ids):
            for p in module.parameters() if module is not None else []:
                p.requires_grad_(train_recommender)
        model.sync_codes()

    def on_epoch_end(self, model: GenerativeRecommender, epoch: int, accelerator: Accelerator) -> dict[str, float]:
        if self.current.phase == "rec":
            return {}
        if not self.current.refresh:  # targets stay; the history inputs follow the tokenizer
            model.items.refresh()
            return {}
        old = model.item_codes.clone()
        codes, unique_rate = item_codes(model.items.tokenizer, model.items.item_text, model.level_sizes, old.cpu(),
                                        self.joint.refresh_margin)
        model.set_codes(codes)
        model.items.tokenizer.train()
        model.items.refresh()
        moved = old != model.item_codes
        return {"code_churn": moved.any(1).float().mean().item(), "unique_before_dedup": unique_rate,
                **{f"code_churn_l{level + 1}": v for level, v in enumerate(moved.float().mean(0).tolist())}}

    def loss(self, model, batch):
        live = self.current.phase != "rec"
        losses = model(batch["history"], batch["user"], batch["labels"], batch["target"], live,
                       self.joint.align_temperature)
        loss = losses["rec"]
        if live:
            ramp = min(1.0, (self.tok_steps + 1) / max(1, self.joint.align_warmup_steps))
            self.tok_steps += 1
            loss = loss + self.joint.rq_weight * losses["rq"] + self.joint.align_weight * ramp * losses["align"]
        return loss, {k: v.detach() for k, v in losses.items()}
