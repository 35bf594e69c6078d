"""Load a saved run (`runs/<name>/seed_<s>/`) for recommending, benchmarking or re-evaluation.

Two-stage runs keep a `save_pretrained` T5 and their semantic-ID table; unified and joint runs keep
one state dict (`best_model.pt`) that holds the tokenizer, the ID embeddings, the T5 and the codes
it was trained against, and read the item-text embeddings again (from the cache) for the tokenizer.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import T5ForConditionalGeneration

from genrec.config import load_config
from genrec.data import SequenceData, item_embeddings, leave_one_out, load_dataset
from genrec.generation.beam import constrained_beam_search
from genrec.generation.trie import TensorTrie
from genrec.joint import joint_level_sizes
from genrec.models.joint import JointRecommender
from genrec.models.seq2seq import CodeVocab
from genrec.pipeline import SeqRunConfig
from genrec.quantize import SemanticIdTable, SemanticTokenizer


@dataclass
class SavedRun:
    cfg: SeqRunConfig
    data: SequenceData
    codes: torch.Tensor  # [items, levels] each item's code tuple (the trie's contents)
    vocab: CodeVocab
    trie: TensorTrie
    model: T5ForConditionalGeneration
    unified: JointRecommender | None = None  # unified/joint runs: builds the encoder inputs from item vectors

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> "SavedRun":
        folder = Path(folder)
        if not (folder / "run_config.yaml").exists():
            raise FileNotFoundError(f"{folder} is not a finished run (no run_config.yaml); point at runs/<name>/seed_<s>")
        cfg = load_config(SeqRunConfig, folder / "run_config.yaml")
        data = load_dataset(cfg.data.dataset)
        if cfg.mode != "two_stage":
            return cls._load_unified(cfg, data, folder, device)
        table = SemanticIdTable.load(cfg.tokenizer_path or folder / "semantic_ids")
        model = T5ForConditionalGeneration.from_pretrained(folder / "model").to(device).eval()
        vocab = CodeVocab(table.codes, table.meta.level_sizes, cfg.model.user_buckets)
        return cls(cfg, data, table.codes, vocab, TensorTrie(table.codes, table.meta.level_sizes).to(device), model)

    @classmethod
    def _load_unified(cls, cfg: SeqRunConfig, data: SequenceData, folder: Path, device: str) -> "SavedRun":
        state = torch.load(folder / "best_model.pt", map_location="cpu", weights_only=True)
        codes = state["item_codes"]
        level_sizes = joint_level_sizes(cfg.tokenizer, cfg.joint)
        vocab = CodeVocab(codes, level_sizes, cfg.model.user_buckets)
        item_text = torch.as_tensor(item_embeddings(data.catalog, progress=False))
        tokenizer = SemanticTokenizer(item_text.shape[1], cfg.tokenizer)
        model = JointRecommender(tokenizer, item_text, codes, cfg.model, vocab, cfg.joint.id_dim)
        model.load_state_dict(state)
        model.to(device).eval()
        return cls(cfg, data, codes, vocab, TensorTrie(codes, level_sizes).to(device), model.t5, model)

    def encoder_inputs(self, history: torch.Tensor, users: torch.Tensor | None) -> dict[str, Any]:
        """Keyword arguments for `constrained_beam_search`: code tokens, or unified item vectors."""
        if self.unified is None:
            ids, mask = self.vocab.encode_history(history, users)
            return {"input_ids": ids, "attention_mask": mask}
        embeds, mask = self.unified.encoder_inputs(history, users)
        return {"input_ids": None, "attention_mask": mask, "inputs_embeds": embeds}

    def test_inputs(self, device: str = "cpu") -> tuple[dict[str, Any], torch.Tensor]:
        """Encoder inputs (as `encoder_inputs`) and targets of every test user: the benchmark's input."""
        split = leave_one_out(self.data, self.cfg.data.max_history).test
        history, users = torch.from_numpy(split.history).to(device), torch.from_numpy(split.user).to(device)
        with torch.no_grad():
            inputs = self.encoder_inputs(history, users)
        return inputs, torch.from_numpy(split.target).to(device)

    @torch.no_grad()
    def recommend(self, history: list[str], k: int = 10, beam: int | None = None, user: int | None = None) -> list[dict]:
        """Top-k items after a history of original item ids (oldest first)."""
        index = [self.data.catalog.index_of(i) for i in history][-self.cfg.data.max_history:]
        device = self.model.device
        hist = torch.tensor([index], device=device)
        inputs = self.encoder_inputs(hist, torch.tensor([user], device=device) if user is not None else None)
        items, scores = constrained_beam_search(self.model, self.vocab, self.trie, beam=max(beam or self.cfg.decode.beam, k),
                                                topk=k, **inputs)
        return [{"item_id": self.data.catalog.original_ids[i], "title": self.data.catalog.title(i), "score": float(s)}
                for i, s in zip(items[0].tolist(), scores[0].tolist()) if i >= 0]
