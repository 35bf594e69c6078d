"""The obvious alternative to our search: HF `generate` with a Python `prefix_allowed_tokens_fn`.

Kept as a library function so the benchmark and a test use the same code, and so that a change in
transformers' beam search (it moved in 4.49+/5.x) shows up as a failing agreement test.
"""
from __future__ import annotations

import torch

from genrec.generation.trie import python_trie
from genrec.generation.codes import PAD, ItemCodes


@torch.no_grad()
def hf_constrained_generate(model, item_codes: ItemCodes, input_ids: torch.Tensor | None,
                            attention_mask: torch.Tensor, beam: int = 20, topk: int = 10,
                            inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """[B, topk] item indices from `model.generate` constrained by a Python trie callback (a nested-dict trie
    over `item_codes`). The encoder reads `input_ids`, or `inputs_embeds` when given, as in our search."""
    trie = python_trie(item_codes.codes.cpu().numpy())
    offsets, depth = item_codes.level_offsets, item_codes.depth

    def walk(tokens: list[int]):
        node = trie
        for level, tok in enumerate(tokens):
            node = node[tok - offsets[level]]
        return node

    def allowed(_batch_id: int, sent: torch.Tensor) -> list[int]:
        level = len(sent) - 1  # sent starts with the decoder start token
        return [offsets[level] + c for c in walk(sent.tolist()[1:])]

    encoder_input = {"inputs_embeds": inputs_embeds} if inputs_embeds is not None else {"input_ids": input_ids}
    out = model.generate(**encoder_input, attention_mask=attention_mask, num_beams=beam, num_return_sequences=topk,
                         max_new_tokens=depth, min_new_tokens=depth, prefix_allowed_tokens_fn=allowed,
                         length_penalty=0.0, do_sample=False, decoder_start_token_id=PAD)
    seqs = out[:, 1:].reshape(-1, topk, depth).cpu().tolist()
    return torch.tensor([[walk(row) for row in user] for user in seqs])
