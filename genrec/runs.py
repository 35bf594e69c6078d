"""Load a saved run (`runs/<name>/seed_<s>/`) for recommending, benchmarking or re-evaluation."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import T5ForConditionalGeneration

from genrec.config import load_config
from genrec.data import SequenceData, leave_one_out, load_dataset
from genrec.generation.beam import constrained_beam_search
from genrec.generation.trie import TensorTrie
from genrec.models.seq2seq import CodeVocab
from genrec.pipeline import SeqRunConfig
from genrec.quantize import SemanticIdTable


@dataclass
class SavedRun:
    cfg: SeqRunConfig
    data: SequenceData
    table: SemanticIdTable
    vocab: CodeVocab
    trie: TensorTrie
    model: T5ForConditionalGeneration

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> "SavedRun":
        folder = Path(folder)
        if not (folder / "run_config.yaml").exists():
            raise FileNotFoundError(f"{folder} is not a finished run (no run_config.yaml); point at runs/<name>/seed_<s>")
        cfg = load_config(SeqRunConfig, folder / "run_config.yaml")
        if cfg.mode != "two_stage":
            raise ValueError(f"{folder} is a {cfg.mode} run; SavedRun loads two-stage runs only (the joint model's "
                             "weights and codes are in best_model.pt)")
        table = SemanticIdTable.load(cfg.tokenizer_path or folder / "semantic_ids")
        model = T5ForConditionalGeneration.from_pretrained(folder / "model").to(device).eval()
        vocab = CodeVocab(table.codes, table.meta.level_sizes, cfg.model.user_buckets)
        return cls(cfg, load_dataset(cfg.data.dataset), table, vocab, TensorTrie(table.codes, table.meta.level_sizes).to(device), model)

    def test_inputs(self, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        split = leave_one_out(self.data, self.cfg.data.max_history).test
        history, users = torch.from_numpy(split.history).to(device), torch.from_numpy(split.user).to(device)
        ids, mask = self.vocab.encode_history(history, users)
        return ids, mask, torch.from_numpy(split.target).to(device)

    @torch.no_grad()
    def recommend(self, history: list[str], k: int = 10, beam: int | None = None, user: int | None = None) -> list[dict]:
        """Top-k items after a history of original item ids (oldest first)."""
        index = [self.data.catalog.index_of(i) for i in history][-self.cfg.data.max_history:]
        device = self.model.device
        hist = torch.tensor([index], device=device)
        ids, mask = self.vocab.encode_history(hist, torch.tensor([user], device=device) if user is not None else None)
        items, scores = constrained_beam_search(self.model, self.vocab, self.trie, ids, mask, beam=max(beam or self.cfg.decode.beam, k), topk=k)
        return [{"item_id": self.data.catalog.original_ids[i], "title": self.data.catalog.title(i), "score": float(s)}
                for i, s in zip(items[0].tolist(), scores[0].tolist()) if i >= 0]
