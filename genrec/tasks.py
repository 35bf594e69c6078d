"""Training tasks for the shared loop: the generative (TIGER-style) recommender and SASRec."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.data_loader import prepare_data_loader

from genrec.data.splits import LeaveOneOut, Split
from genrec.evaluation.ranking import metrics_from_ranks, target_ranks_from_scores, target_ranks_from_topk
from genrec.generation.beam import constrained_beam_search
from genrec.generation.trie import TensorTrie
from genrec.models.sasrec import SasRec, SasRecConfig, UnifiedItemEmbedding
from genrec.models.seq2seq import CodeVocab, Seq2SeqConfig, build_model
from genrec.quantize.semantic_ids import SemanticIdTable
from genrec.training.loop import index_loader


@dataclass
class DecodeConfig:
    beam: int = 20
    topk: int = 10
    batch_size: int = 512
    valid_users: int = 0  # evaluate early stopping on this many fixed random validation users; 0 = all


def _tensors(split: Split) -> dict[str, torch.Tensor]:
    return {"history": torch.from_numpy(split.history), "target": torch.from_numpy(split.target),
            "user": torch.from_numpy(split.user)}


class GenerativeTask:
    """Seq2seq over code tokens: history codes in, next item's code tuple out; beam-search evaluation."""

    def __init__(self, splits: LeaveOneOut, table: SemanticIdTable, model_cfg: Seq2SeqConfig, decode: DecodeConfig, seed: int):
        self.set_codes(table.codes, table.meta.level_sizes, model_cfg.user_buckets)
        self.model = build_model(model_cfg, self.vocab.size)
        self.set_data(splits, decode, seed)

    def set_codes(self, codes: torch.Tensor, level_sizes: list[int], user_buckets: int) -> None:
        """Targets (token tuples) and the trie of valid items, both from the code table."""
        self.vocab = CodeVocab(codes, level_sizes, user_buckets)
        self.trie = TensorTrie(codes, level_sizes)

    def set_data(self, splits: LeaveOneOut, decode: DecodeConfig, seed: int) -> None:
        self.decode = decode
        self.data = {name: _tensors(getattr(splits, name)) for name in ("train", "valid", "test")}
        if decode.valid_users and decode.valid_users < len(splits.valid):
            pick = np.random.default_rng(seed).choice(len(splits.valid), decode.valid_users, replace=False)
            self.data["valid"] = {k: v[torch.from_numpy(np.sort(pick))] for k, v in self.data["valid"].items()}

    def num_train_examples(self) -> int:
        return len(self.data["train"]["target"])

    def batch(self, indices: torch.Tensor, device: torch.device, split: str = "train") -> dict[str, torch.Tensor]:
        d = self.data[split]
        if d["target"].device != device:  # move a split once; batches are then gathers on the device
            d = self.data[split] = {k: v.to(device) for k, v in d.items()}
            self.vocab.item_tokens = self.vocab.item_tokens.to(device)
        indices = indices.to(device)
        history, user, target = d["history"][indices], d["user"][indices], d["target"][indices]
        input_ids, mask = self.vocab.encode_history(history, user)
        return {"input_ids": input_ids, "attention_mask": mask, "labels": self.vocab.item_tokens[target], "target": target}

    def loss(self, model, batch):
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        return out.loss, {}

    def on_epoch_end(self, model, epoch, accelerator):
        return {}

    @torch.no_grad()
    def predict(self, model, batch) -> tuple[torch.Tensor, torch.Tensor]:
        return constrained_beam_search(model, self.vocab, self.trie, batch["input_ids"], batch["attention_mask"],
                                       beam=self.decode.beam, topk=self.decode.topk)

    @torch.no_grad()
    def evaluate(self, model, split: str, accelerator: Accelerator) -> dict[str, float]:
        model.eval()
        self.trie.to(accelerator.device)
        ranks, invalid, dupes = [], [], []
        for batch in eval_batches(self, split, self.decode.batch_size, accelerator):
            with accelerator.autocast():
                items, _ = self.predict(model, batch)
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


def eval_batches(task, split: str, batch_size: int, accelerator: Accelerator):
    """A split's batches, sharded across processes (gather results with `gather_for_metrics`).
    The loader is not registered with the accelerator, so it adds nothing to checkpoints."""
    rows = len(next(iter(task.data[split].values())))
    loader = prepare_data_loader(index_loader(rows, batch_size, False, 0),
                                 accelerator.device, accelerator.num_processes, accelerator.process_index)
    for indices in loader:
        yield task.batch(indices, accelerator.device, split)


class SasRecTask:
    """SASRec-CE: the same leave-one-out examples, softmax cross-entropy over the whole catalogue,
    and full-ranking evaluation from scores (non-finite scores raise)."""

    def __init__(self, splits: LeaveOneOut, num_items: int, cfg: SasRecConfig, eval_batch_size: int = 1024,
                 unified: UnifiedItemEmbedding | None = None, tokenizer_lr_scale: float = 1.0):
        self.model = SasRec(num_items, cfg, unified)
        self.eval_batch_size = eval_batch_size
        self.tokenizer_lr_scale = tokenizer_lr_scale
        self.data = {name: _tensors(getattr(splits, name)) for name in ("train", "valid", "test")}

    def num_train_examples(self) -> int:
        return len(self.data["train"]["target"])

    def batch(self, indices: torch.Tensor, device: torch.device, split: str = "train") -> dict[str, torch.Tensor]:
        d = self.data[split]
        if d["target"].device != device:
            d = self.data[split] = {k: v.to(device) for k, v in d.items()}
        indices = indices.to(device)
        return {"history": d["history"][indices], "target": d["target"][indices]}

    def lr_scale(self, name: str) -> float:
        return self.tokenizer_lr_scale if ".tokenizer." in f".{name}" else 1.0

    def loss(self, model, batch):
        rec = F.cross_entropy(model(batch["history"]).float(), batch["target"])
        aux = getattr(model, "module", model).aux_loss()  # RQ-VAE losses when the item tokenizer trains jointly
        return rec + aux.to(rec.device), {"rec": rec.detach(), "rq": aux.detach()}

    def on_epoch_end(self, model, epoch, accelerator):
        return {}

    @torch.no_grad()
    def evaluate(self, model, split: str, accelerator: Accelerator) -> dict[str, float]:
        model.eval()
        ranks = []
        with accelerator.autocast():
            table = model.item_table()  # once per evaluation: unified items recompute it from the tokenizer
        for batch in eval_batches(self, split, self.eval_batch_size, accelerator):
            with accelerator.autocast():
                scores = model(batch["history"], table).float()
            ranks.append(accelerator.gather_for_metrics(target_ranks_from_scores(scores, batch["target"])))
        model.train()
        return metrics_from_ranks(torch.cat(ranks))


def popularity_metrics(counts: np.ndarray, split: Split) -> dict[str, float]:
    """Rank every item by training-part popularity (the same list for every user)."""
    scores = torch.from_numpy(counts).float().unsqueeze(0)
    targets = torch.from_numpy(split.target)
    ranks = torch.cat([target_ranks_from_scores(scores.expand(len(t), -1), t) for t in targets.split(4096)])
    return metrics_from_ranks(ranks)
