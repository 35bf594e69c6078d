"""Training tasks of the generative recommender for the shared loop.

`GenerativeTask` trains a `GenerativeRecommender` on sliding-window examples (each history -> the
next item's code tuple) and evaluates it by constrained beam search. `JointTask` adds the joint
schedule: which parts learn in each epoch, and when the codes (the decoder's targets) are refreshed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from accelerate import Accelerator

from genrec.data.splits import LeaveOneOut, Rows
from genrec.evaluation.ranking import (protocol_metrics, target_ranks_from_scores,
                                       target_ranks_from_topk)
from genrec.experiments.harness import log
from genrec.experiments.seq.config import DecodeConfig
from genrec.experiments.seq.schedule import JointConfig, plan_epochs
from genrec.models.recommender import GenerativeRecommender
from genrec.models.text_view import choose_weight
from genrec.quantize.semantic_ids import SemanticIdTable
from genrec.quantize.tokenizer import SemanticTokenizer, TokenizerConfig
from genrec.training import SplitTensors, Task, eval_batches


@dataclass
class NewItems:
    """The cold-start protocol's new items, which arrive after training (`GenerativeRecommender.add_items`)."""

    codes: torch.Tensor
    semantic: torch.Tensor | None
    text: torch.Tensor | None
    item_ids: list[str]
    titles: list[str]


class GenerativeTask(Task):
    """Trains on sliding windows (one example per history), or, given `rows` (`training_rows`) and a causal
    model, on every position of each row in one pass with the dense head's loss weighted by `dense_weight` (and,
    with `distill_weight` > 0, the decoder also trained toward the dense head's mass under each code).
    Evaluation ranks by beam search; a model with a dense head is also ranked by the dense head alone
    (`dense_*`) and by the beam's candidates re-scored with it (`hybrid_*`, the mix chosen on validation).
    Under the cold-start protocol (`splits.cold`) the `new_items` join the model before the test, which is also
    reported over cold and warm targets, with the share of new items among the top k."""

    def __init__(self, model: GenerativeRecommender, splits: LeaveOneOut, decode: DecodeConfig, seed: int,
                 rows: Rows | None = None, dense_weight: float = 1.0, distill_weight: float = 0.0,
                 new_items: NewItems | None = None):
        if rows is not None and not model.causal:
            raise ValueError("every-position training needs a causal model (objective.kind=every_position)")
        self.model = model
        self.decode = decode
        self.every_position = rows is not None
        self.dense_weight, self.distill_weight = dense_weight, distill_weight
        self.data = SplitTensors({**splits.tensors(), **({"train": rows.tensors()} if rows is not None else {})})
        if decode.valid_users and decode.valid_users < len(splits.valid):
            pick = np.random.default_rng(seed).choice(len(splits.valid), decode.valid_users, replace=False)
            self.data.select("valid", torch.from_numpy(np.sort(pick)))
        self.alpha: float | None = None  # the hybrid mix chosen on validation
        self.text_view_metrics: dict[float, dict[str, float]] = {}  # validation metrics of every text-view weight tried
        self.mix_metrics: dict[float, dict[str, float]] = {}  # validation metrics of every mix tried
        self.row_targets = torch.from_numpy((rows.target >= 0).sum(1)) if rows is not None else None
        self.known, self.new_items = splits.known, new_items

    def before_test(self, model: GenerativeRecommender, accelerator: Accelerator) -> None:
        """The cold-start protocol's new items join the model; the text view's weight is chosen on validation; the new
        items' score offset is set on the validation histories."""
        adding = self.new_items is not None and model.num_items == self.known
        if adding:
            new = self.new_items
            model.add_encoded_items(new.codes, new.semantic, new.text, new.item_ids, new.titles)
        if self.decode.text_view_weights and model.items is not None and model.items.text is not None:
            self.choose_text_view(model, accelerator)
        if adding and self.decode.calibrate_new_items and model.head.uses_item_table:
            valid = self.data.gather("valid", torch.arange(self.data.rows("valid")), model.codes.codes.device)
            bias = model.calibrate_new_items(valid["history"], valid["user"], beam=self.decode.beam,
                                             topk=self.decode.topk, batch_size=self.decode.batch_size)
            log(accelerator, f"{len(new.item_ids)} new items added; their score offset {bias:.3f} gives them their share "
                             f"of the catalogue in the top {self.decode.topk} over {len(valid['history'])} validation users")

    def choose_text_view(self, model: GenerativeRecommender, accelerator: Accelerator) -> None:
        """Set the text view's weight to the one of `decode.text_view_weights` with the best validation beam N@10
        (ties: the smaller weight); every weight's validation metrics are kept in `text_view_metrics`."""
        def validate(weight: float) -> dict[str, float]:
            model.text_view_weight = weight
            return self.evaluate(model, "valid", accelerator)

        model.text_view_weight, self.text_view_metrics = choose_weight(self.decode.text_view_weights, validate)
        log(accelerator, f"text view weight {model.text_view_weight:g} chosen on validation (beam N@10 by weight: "
                         + ", ".join(f"{w:g} {m['ndcg@10']:.4f}" for w, m in self.text_view_metrics.items()) + ")")

    def targets_in(self, indices: torch.Tensor) -> int:
        return len(indices) if self.row_targets is None else int(self.row_targets[indices].sum())

    def num_train_examples(self) -> int:
        return self.data.rows("train")

    def batch(self, indices: torch.Tensor, device: torch.device, split: str = "train") -> dict[str, torch.Tensor]:
        batch = self.data.gather(split, indices, device)
        batch["labels"] = self.model.codes.tokens(batch["target"])  # [B, L], or [B, H, L] for rows
        return batch

    def losses(self, model, batch, live: bool = False, align_temperature: float = 1.0) -> dict[str, torch.Tensor]:
        return model(batch["history"], batch["user"], batch["labels"], batch["target"], live, align_temperature,
                     every_position=self.every_position, distill=self.every_position and self.distill_weight > 0)

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        weights = {"rec": 1.0, "dense": self.dense_weight, "distill": self.distill_weight}
        return sum(weights[name] * losses[name] for name in weights if name in losses)

    def loss(self, model, batch):
        losses = self.losses(model, batch)
        return self.combine(losses), {k: v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def evaluate(self, model: GenerativeRecommender, split: str, accelerator: Accelerator,
                 mixes: list[float] | None = None) -> dict[str, float]:
        """Recall/NDCG of the beam's top-k, plus the share of top-k slots holding an invalid item (not in the
        catalogue), a duplicate, or nothing (`empty_rate`: the search found fewer than k items, as it must
        when the catalogue is smaller than k). With a dense head also `dense_*` (full ranking by the dense
        head) and, off the validation split, `hybrid_*`: beam search guided by the dense head (alpha *
        sequence log-prob + (1 - alpha) * dense log-prob; `hybrid_alpha`), the mix chosen on validation
        first. Each mix is one more search, so the epochs' validation leaves the hybrid out unless given `mixes`
        (on validation: the mixes to choose from; elsewhere: the one mix to report)."""
        dense = model.has_dense_head
        if dense and split != "valid" and mixes is None and self.decode.hybrid_alphas:
            self.evaluate(model, "valid", accelerator, mixes=self.decode.hybrid_alphas)  # sets self.alpha
            mixes = [self.alpha]
        mixes = list(mixes or []) if dense else []
        model.eval()
        table = model.items.table() if dense else None
        ranks: dict[str, list[torch.Tensor]] = {"beam": [], "dense": [], **{a: [] for a in mixes}}
        found: dict[str, list[torch.Tensor]] = {key: [] for key in ranks}  # top-k lists, for the new items' share
        targets, invalid, dupes, empty = [], [], [], []
        for batch in eval_batches(self, split, self.decode.batch_size, accelerator):
            history, users, target = batch["history"], batch["user"], batch["target"]
            with accelerator.autocast():
                encoded, extra = model.encode(history, users), model.item_scores(history)  # once for every ranking
                items, _ = model.generate(history, users, self.decode.beam, self.decode.topk, encoded, table=table,
                                          extra=extra)
                dense_logp = model.dense_scores(history, users, table, encoded, extra) if dense else None
                guide = model.codes.trie.node_log_mass(dense_logp) if mixes else None  # once for every mix
                guided = {a: model.generate(history, users, self.decode.beam, self.decode.topk, encoded,
                                            alpha=a, guide=guide, table=table, extra=extra)[0] for a in mixes}
            ranks["beam"].append(accelerator.gather_for_metrics(target_ranks_from_topk(items, target)))
            targets.append(accelerator.gather_for_metrics(target))
            found["beam"].append(accelerator.gather_for_metrics(items))
            invalid.append(accelerator.gather_for_metrics((items >= model.num_items).sum(1)))
            empty.append(accelerator.gather_for_metrics((items < 0).sum(1)))
            sorted_items = items.sort(1).values
            dupes.append(accelerator.gather_for_metrics(((sorted_items[:, 1:] == sorted_items[:, :-1]) & (sorted_items[:, 1:] >= 0)).sum(1)))
            if dense:
                ranks["dense"].append(accelerator.gather_for_metrics(target_ranks_from_scores(dense_logp, target)))
                found["dense"].append(accelerator.gather_for_metrics(dense_logp.topk(self.decode.topk, -1).indices))
            for alpha, guided_items in guided.items():
                ranks[alpha].append(accelerator.gather_for_metrics(target_ranks_from_topk(guided_items, target)))
                found[alpha].append(accelerator.gather_for_metrics(guided_items))
        model.train()
        cold = self.known is not None and model.num_items > self.known
        target = torch.cat(targets)

        def scored(key) -> dict[str, float]:
            return protocol_metrics(torch.cat(ranks[key]), target, torch.cat(found[key]), self.known, model.num_items,
                                    self.decode.topk)

        metrics = scored("beam")
        if cold:
            metrics["new_item_bias"] = model.new_item_bias
        if self.decode.text_view_weights and split != "valid":  # chosen on validation after training
            metrics["text_view_weight"] = model.text_view_weight
        slots = len(torch.cat(ranks["beam"])) * self.decode.topk
        metrics["invalid_rate"] = torch.cat(invalid).sum().item() / slots
        metrics["duplicate_rate"] = torch.cat(dupes).sum().item() / slots
        metrics["empty_rate"] = torch.cat(empty).sum().item() / slots
        if dense:
            metrics.update({f"dense_{k}": v for k, v in scored("dense").items()})
        if mixes:
            by_alpha = {a: scored(a) for a in mixes}
            if split == "valid":
                self.alpha = max(mixes, key=lambda a: (by_alpha[a]["ndcg@10"], a))  # ties: the more generative mix
                self.mix_metrics = by_alpha  # what the choice saw, for reports
            chosen = self.alpha if split == "valid" else mixes[0]
            metrics.update({f"hybrid_{k}": v for k, v in by_alpha[chosen].items()}, hybrid_alpha=chosen)
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
    check_fits(table.meta.level_sizes, level_sizes)
    return table.codes.cpu(), table.meta.unique_rate_before_dedup


def check_fits(used: list[int], slots: list[int]) -> None:
    """Codes must fit the fixed vocabulary: a collision group larger than the suffix level means the
    tokenizer collapsed (or, in joint training, drifted)."""
    if any(u > s for u, s in zip(used, slots)):
        raise ValueError(f"a collision group outgrew the {slots[-1]} suffix slots (level sizes {used}); train the "
                         "tokenizer longer or check tokenizer.*; in joint training raise joint.suffix_slots, or "
                         "lower joint.align_weight or joint.tok_epochs")


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
                 joint: JointConfig, epochs: int, rows: Rows | None = None, dense_weight: float = 1.0,
                 distill_weight: float = 0.0):
        super().__init__(model, splits, decode, seed, rows, dense_weight, distill_weight)
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

    def on_epoch_end(self, model: GenerativeRecommender, epoch: int, accelerator: Accelerator) -> dict[str, float]:
        if self.current.phase == "rec":
            return {}
        if not self.current.refresh:  # targets stay; the history inputs follow the tokenizer
            model.items.refresh()
            return {}
        old = model.codes.codes.clone()
        codes, unique_rate = item_codes(model.items.tokenizer, model.items.item_text, model.level_sizes, old.cpu(),
                                        self.joint.refresh_margin)
        model.codes.set(codes)
        model.items.tokenizer.train()
        model.items.refresh()
        moved = old != model.codes.codes
        return {"code_churn": moved.any(1).float().mean().item(), "unique_before_dedup": unique_rate,
                **{f"code_churn_l{level + 1}": v for level, v in enumerate(moved.float().mean(0).tolist())}}

    def loss(self, model, batch):
        live = self.current.phase != "rec"
        losses = self.losses(model, batch, live, self.joint.align_temperature)
        loss = self.combine(losses)
        if live:
            ramp = min(1.0, (self.tok_steps + 1) / max(1, self.joint.align_warmup_steps))
            self.tok_steps += 1
            loss = loss + self.joint.rq_weight * losses["rq"]
            if "align" in losses:  # the sliding window's alignment term
                loss = loss + self.joint.align_weight * ramp * losses["align"]
        return loss, {k: v.detach() for k, v in losses.items()}
