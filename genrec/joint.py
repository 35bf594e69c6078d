"""End-to-end joint training of tokenizer and recommender as a `Task` for the shared loop.

The schedule (`JointConfig.phases`) is a plan of epochs:
* `rec` epochs train the recommender (T5, ID embeddings, input projection) with the tokenizer
  frozen, so the target codes hold still while it learns them;
* `tok` epochs (ETEGRec's alternating recipe, simplified) train the tokenizer with the recommender
  frozen: the recommendation loss through the quantized history vectors, the RQ-VAE losses, and an
  alignment term (warmed up) that pulls the tokenizer's soft code assignment of each target toward
  what the recommender predicts;
* `both` epochs train the two together with the same losses. In a target-freeze window the codes
  are not refreshed after them, so the input side adapts while the targets stay learnable;
* after an epoch marked `refresh`, codes are re-assigned: an item keeps its code unless
  another is nearer by `refresh_margin` (tokenizer codes sit on boundaries, so a plain re-assignment
  after even a small update moves most items), collisions are re-resolved into a fixed-size suffix
  level (the vocabulary never changes) and the trie is rebuilt;
* the epochs after the last cycle fine-tune the recommender alone on the final codes.
Validation, early stopping and checkpoints are the loop's; a checkpoint carries its codes.
"""
from __future__ import annotations

import torch
from accelerate import Accelerator

from genrec.data.splits import LeaveOneOut
from genrec.generation.beam import constrained_beam_search
from genrec.models.joint import JointConfig, JointRecommender
from genrec.models.seq2seq import Seq2SeqConfig
from genrec.quantize.fit import build_table
from genrec.quantize.semantic_ids import SemanticIdTable
from genrec.quantize.tokenizer import SemanticTokenizer, TokenizerConfig
from genrec.tasks import DecodeConfig, GenerativeTask


def joint_level_sizes(tok_cfg: TokenizerConfig, joint: JointConfig) -> list[int]:
    """Code slots per level. The vocabulary must not move when codes are refreshed, so a dedup suffix
    level gets a fixed number of slots (codebook_size unless `joint.suffix_slots`)."""
    suffix = [joint.suffix_slots or tok_cfg.codebook_size] if tok_cfg.collision == "suffix" else []
    return [tok_cfg.codebook_size] * tok_cfg.num_levels + suffix


class JointTask(GenerativeTask):
    """Shares data handling and metrics with the two-stage task; swaps the model, the loss and the codes."""

    find_unused_parameters = True  # a phase freezes the tokenizer or the recommender (DDP must not wait for them)

    def __init__(self, splits: LeaveOneOut, tokenizer: SemanticTokenizer, item_text: torch.Tensor,
                 tok_cfg: TokenizerConfig, model_cfg: Seq2SeqConfig, joint: JointConfig, decode: DecodeConfig,
                 seed: int, epochs: int):
        self.tok_cfg = tok_cfg
        self.joint = joint
        self.phases = joint.phases(epochs)
        self.current = self.phases[0]
        self.tok_steps = 0
        self.item_text = item_text.float()
        self.level_sizes = joint_level_sizes(tok_cfg, joint)
        codes = self._codes(tokenizer)
        self.set_codes(codes, self.level_sizes, model_cfg.user_buckets)
        self.set_data(splits, decode, seed)
        self.model = JointRecommender(tokenizer, self.item_text, codes, model_cfg, self.vocab, joint.id_dim)

    # ------------------------------------------------------------------ schedule
    def lr_scale(self, name: str) -> float:
        return self.joint.tok_lr_scale if name.startswith("tokenizer.") else 1.0

    def on_epoch_start(self, model: JointRecommender, epoch: int, accelerator: Accelerator) -> None:
        self.current = self.phases[min(epoch, len(self.phases) - 1)]
        train_tokenizer = self.current.phase in ("tok", "both")
        train_recommender = self.current.phase in ("rec", "both")
        for p in model.tokenizer.parameters():
            p.requires_grad_(train_tokenizer)
        for module in (model.t5, model.item_proj, model.id_embedding):
            for p in module.parameters() if module is not None else []:
                p.requires_grad_(train_recommender)
        self._sync(model, accelerator.device)

    def on_epoch_end(self, model: JointRecommender, epoch: int, accelerator: Accelerator) -> dict[str, float]:
        if self.current.phase == "rec":
            return {}
        if not self.current.refresh:  # targets stay; the history inputs follow the tokenizer
            model.refresh_latent()
            return {}
        old = model.item_codes.clone()
        model.item_codes.copy_(self._codes(model.tokenizer, old.cpu()).to(old.device))
        model.tokenizer.train()
        model.refresh_latent()
        self._sync(model, accelerator.device)
        moved = old != model.item_codes
        return {"code_churn": moved.any(1).float().mean().item(), "unique_before_dedup": self.unique_before_dedup,
                **{f"code_churn_l{level + 1}": v for level, v in enumerate(moved.float().mean(0).tolist())}}

    def _codes(self, tokenizer: SemanticTokenizer, previous: torch.Tensor | None = None) -> torch.Tensor:
        """Codes with collisions resolved; with `previous` codes, a refresh keeps codes that are still
        nearly best (`joint.refresh_margin`), so targets stay learnable."""
        x = self.item_text.to(next(tokenizer.parameters()).device)
        if previous is None:
            table = build_table(tokenizer, x, self.tok_cfg)
        else:
            tokenizer.eval()
            with torch.no_grad():
                raw = tokenizer.quantizer.assign_sticky(tokenizer.encode(x), previous[:, : self.tok_cfg.num_levels],
                                                        self.joint.refresh_margin)
                last = tokenizer.last_level_distances(x) if self.tok_cfg.collision == "reassign" else None
            table = SemanticIdTable.build(raw, tokenizer.quantizer.decode_codes(raw).detach(),
                                          codebook_size=self.tok_cfg.codebook_size, collision=self.tok_cfg.collision,
                                          distances=tokenizer.distances, id_dim=self.tok_cfg.id_dim, seed=0,
                                          last_distances=last)
        self.unique_before_dedup = table.meta.unique_rate_before_dedup
        if any(used > size for used, size in zip(table.meta.level_sizes, self.level_sizes)):
            raise ValueError(f"code refresh: a collision group outgrew the {self.level_sizes[-1]} suffix slots "
                             f"(level sizes {table.meta.level_sizes}); raise joint.suffix_slots, or "
                             "lower joint.align_weight or joint.tok_epochs if the tokenizer is collapsing")
        return table.codes.cpu()

    def _sync(self, model: JointRecommender, device: torch.device) -> None:
        """Rebuild targets and trie from the model's codes (after a refresh, or a best-checkpoint reload)."""
        if torch.equal(model.item_codes.cpu(), self.vocab.item_tokens[:-1].cpu() - torch.tensor(self.vocab.level_offsets)):
            return
        self.set_codes(model.item_codes.cpu(), self.level_sizes, self.vocab.user_buckets)
        self.vocab.item_tokens = self.vocab.item_tokens.to(device)
        self.trie.to(device)

    # ------------------------------------------------------------------ training
    def batch(self, indices: torch.Tensor, device: torch.device, split: str = "train") -> dict[str, torch.Tensor]:
        d = self.data[split]
        if d["target"].device != device:
            d = self.data[split] = {k: v.to(device) for k, v in d.items()}
            self.vocab.item_tokens = self.vocab.item_tokens.to(device)
        indices = indices.to(device)
        target = d["target"][indices]
        return {"history": d["history"][indices], "user": d["user"][indices], "target": target,
                "labels": self.vocab.item_tokens[target]}

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

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def predict(self, model: JointRecommender, batch) -> tuple[torch.Tensor, torch.Tensor]:
        embeds, mask = model.encoder_inputs(batch["history"], batch["user"])
        return constrained_beam_search(model.t5, self.vocab, self.trie, None, mask, beam=self.decode.beam,
                                       topk=self.decode.topk, inputs_embeds=embeds)

    @torch.no_grad()
    def evaluate(self, model: JointRecommender, split: str, accelerator: Accelerator) -> dict[str, float]:
        self._sync(model, accelerator.device)
        return super().evaluate(model, split, accelerator)


def table_sizes(num_items: int, id_dim: int, codebook_size: int, levels: int, latent_dim: int, d_model: int) -> dict[str, int]:
    """Parameters that embed items: the unified form (ID embeddings + codebooks) against a per-item ID table of
    the model's width, which is what a plain ID-based recommender would need."""
    unified = num_items * id_dim + codebook_size * levels * latent_dim
    plain = num_items * d_model
    return {"unified": unified, "plain_id": plain, "reduction": 1 - unified / plain}

