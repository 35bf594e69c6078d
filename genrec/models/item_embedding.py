"""The item representation of the mission: `[small learned ID embedding ‖ quantized semantic vector]`,
projected to the model width (Lin et al. 2025). SASRec's item table and the seq2seq encoder's input
both come from this one module.

Only `id_dim` numbers per item are learned; the semantic half is shared codebook vectors. Optionally a third
part, the item's text vector itself (`text`, fixed), enters the same projection, so the model sees the text
directly and not only through its quantized codes; and the semantic half may be left out (`use_semantic`), for
the ablations ID only and text + ID without codes. Two sources for the semantic half:
* frozen: a fixed [items, latent] table (a trained tokenizer's quantized vectors);
* live: the tokenizer itself is a submodule and keeps learning from the recommender's loss
  (end-to-end training). `semantic` then caches its latest vectors (`refresh`), for steps and
  evaluations that do not need gradients through it.
"""
from __future__ import annotations

import torch
from torch import nn

from genrec.quantize.tokenizer import SemanticTokenizer, TokenizerOutput


class ItemEmbedding(nn.Module):
    def __init__(self, semantic: torch.Tensor, id_dim: int, d_model: int, tokenizer: SemanticTokenizer | None = None,
                 item_text: torch.Tensor | None = None, text: torch.Tensor | None = None, use_semantic: bool = True,
                 use_text: bool = True):
        """`text`: every item's text vector, kept with the model (the text view reads it); `use_text`: whether it also
        enters the projection as the third part."""
        super().__init__()
        if (tokenizer is None) != (item_text is None):
            raise ValueError("a live tokenizer needs the item text vectors it reads (`item_text`), and only it does")
        use_text = use_text and text is not None
        if not (id_dim or use_semantic or use_text):
            raise ValueError("an item needs at least one part: an ID (id_dim > 0), the semantic half or the text vector")
        num_items, semantic_dim = semantic.shape
        self.tokenizer, self.use_semantic, self.use_text = tokenizer, use_semantic, use_text
        self.register_buffer("semantic", semantic.detach().float().clone())
        if item_text is not None:
            self.register_buffer("item_text", item_text.float(), persistent=False)
        self.text: torch.Tensor | None
        self.register_buffer("text", None if text is None else text.detach().float().clone())  # saved: the model needs it
        self.ids = nn.Embedding(num_items, id_dim) if id_dim else None  # id_dim 0: no ID part
        if self.ids is not None:
            nn.init.normal_(self.ids.weight, std=0.02)
        text_dim = text.shape[1] if use_text else 0
        self.proj = nn.Linear(id_dim + (semantic_dim if use_semantic else 0) + text_dim, d_model)

    @classmethod
    def live(cls, tokenizer: SemanticTokenizer, item_text: torch.Tensor, id_dim: int, d_model: int,
             text: torch.Tensor | None = None, use_semantic: bool = True, use_text: bool = True) -> "ItemEmbedding":
        """Items whose semantic half is the tokenizer's current output (the tokenizer trains with the model)."""
        _, semantic = tokenizer.quantize_items(item_text.float())
        return cls(semantic, id_dim, d_model, tokenizer, item_text, text, use_semantic, use_text)

    @property
    def num_items(self) -> int:
        return self.semantic.shape[0]

    @torch.no_grad()
    def refresh(self) -> None:
        """Recompute the cached semantic vectors with the live tokenizer (after it has moved)."""
        if self.tokenizer is not None:
            self.semantic.copy_(self.tokenizer.quantize_items(self.item_text)[1])

    @property
    def reads_text(self) -> bool:
        """Whether an item needs its text vector (kept for the text view or the text part, or a live tokenizer's input)."""
        return self.text is not None or self.tokenizer is not None

    @torch.no_grad()
    def add_items(self, semantic: torch.Tensor, text: torch.Tensor | None = None) -> None:
        """Rows for items that arrive after training: their semantic vectors (and text vectors, which a model with a
        text part or a live tokenizer needs), and an ID row of zeros: nothing is learned about them yet, so they
        are scored by their content alone."""
        if text is None and self.reads_text:
            raise ValueError("this item table reads item text vectors: new items need theirs (`text`)")
        n = len(semantic)
        self.semantic = torch.cat([self.semantic, semantic.to(self.semantic)])
        if self.text is not None:
            self.text = torch.cat([self.text, text.to(self.text)])
        if self.tokenizer is not None:
            self.item_text = torch.cat([self.item_text, text.to(self.item_text)])
        if self.ids is not None:
            weight = self.ids.weight
            self.ids = nn.Embedding.from_pretrained(torch.cat([weight, weight.new_zeros(n, weight.shape[1])]), freeze=False)

    def quantize(self, items: torch.Tensor | None = None, recon_rows: torch.Tensor | None = None) -> TokenizerOutput:
        """The live tokenizer on `items` (all when None), with gradients and its RQ-VAE losses."""
        text = self.item_text if items is None else self.item_text[items]
        return self.tokenizer(text, recon_rows=recon_rows)

    @torch.no_grad()
    def current_semantic(self) -> torch.Tensor:
        """Every item's semantic vector now: the live tokenizer's output without losses, or the frozen table."""
        if self.tokenizer is None:
            return self.semantic
        return self.tokenizer.quantizer(self.tokenizer.encode(self.item_text)).quantized

    def forward(self, items: torch.Tensor, semantic: torch.Tensor | None = None) -> torch.Tensor:
        """items [...] -> [..., d_model]. `semantic` [..., latent] are those items' vectors (e.g. live ones
        with gradients); by default the cached/frozen table's."""
        parts = [] if self.ids is None else [self.ids(items)]
        if self.use_semantic:
            parts.append(self.semantic[items] if semantic is None else semantic)
        if self.use_text:
            parts.append(self.text[items])
        return self.proj(torch.cat(parts, dim=-1))

    def table(self, semantic: torch.Tensor | None = None) -> torch.Tensor:
        """[items, d_model] for every item (SASRec scores against it); `semantic` as in `forward`."""
        parts = [] if self.ids is None else [self.ids.weight]
        if self.use_semantic:
            parts.append(self.semantic if semantic is None else semantic)
        if self.use_text:
            parts.append(self.text)
        return self.proj(torch.cat([p.to(self.proj.weight.dtype) for p in parts], dim=-1))


def table_sizes(num_items: int, id_dim: int, codebook_size: int, levels: int, latent_dim: int, d_model: int) -> dict[str, float]:
    """Parameters that embed items in the unified form (ID embeddings + codebooks) against a per-item ID
    table of the model's width, which is what a plain ID-based recommender would need."""
    unified = num_items * id_dim + codebook_size * levels * latent_dim
    plain = num_items * d_model
    return {"unified": unified, "plain_id": plain, "reduction": 1 - unified / plain}
