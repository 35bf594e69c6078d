"""Every item's code tuple, the decoder's tokens for it and the trie over them, as one module.

The three must agree at all times, and live on the device the model runs on. `ItemCodes` keeps the codes as
a buffer (saved with the model, so a checkpoint pairs weights with their codes) and rebuilds the token
table and the trie whenever the codes change: after `set` (a code refresh in joint training) and after a
state dict is loaded (a best-checkpoint reload). `Module.to` moves all of it, so no caller moves or syncs them.

Token ids: 0 = pad (also the decoder start), 1 = eos, then one block of codes per level
(`level_offsets`), then optional hashed user tokens.
"""
from __future__ import annotations

import torch
from torch import nn

from genrec.generation.trie import TensorTrie

PAD, EOS, NUM_SPECIAL = 0, 1, 2


def user_token(users: torch.Tensor, offset: int, buckets: int) -> torch.Tensor:
    """A fixed multiplicative hash, so bucket assignment does not depend on the process."""
    return offset + (users * 2654435761 % (2**31)) % buckets


class CodeVocab:
    """Maps (level, code) and users to token ids; `item_tokens[i]` is item i's token tuple."""

    def __init__(self, codes: torch.Tensor, level_sizes: list[int], user_buckets: int):
        self.level_sizes = list(level_sizes)
        offsets = [NUM_SPECIAL]
        for size in self.level_sizes[:-1]:
            offsets.append(offsets[-1] + size)
        self.level_offsets = offsets
        self.user_offset = offsets[-1] + self.level_sizes[-1]
        self.user_buckets = user_buckets
        self.size = self.user_offset + user_buckets
        tokens = codes.long() + torch.tensor(offsets, device=codes.device)
        # an extra all-pad row at index -1 lets padded history positions (-1) gather pad tokens
        self.item_tokens = torch.cat([tokens, torch.full((1, tokens.shape[1]), PAD, device=codes.device)], 0)

    @property
    def depth(self) -> int:
        return len(self.level_sizes)

    def user_token(self, users: torch.Tensor) -> torch.Tensor:
        return user_token(users, self.user_offset, self.user_buckets)

    def encode_history(self, history: torch.Tensor, users: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """history [B, H] of item indices (-1 = pad) -> input_ids [B, (1) + H*L] and attention mask."""
        ids = self.item_tokens.to(history.device)[history].flatten(1)
        if self.user_buckets and users is not None:
            ids = torch.cat([self.user_token(users).unsqueeze(1), ids], 1)
        return ids, ids != PAD


class ItemCodes(nn.Module):
    """Codes [items, levels] (`codes`), their token table (`vocab`) and trie (`trie`), always in step."""

    def __init__(self, codes: torch.Tensor, level_sizes: list[int], user_buckets: int = 0):
        super().__init__()
        self.level_sizes, self.user_buckets = list(level_sizes), user_buckets
        self.register_buffer("codes", codes.long().clone())
        self._rebuild()
        self.register_load_state_dict_post_hook(lambda module, _keys: module._rebuild_if_changed())

    def _rebuild(self) -> None:
        device = self.codes.device
        self.vocab = CodeVocab(self.codes, self.level_sizes, self.user_buckets)
        self.trie = TensorTrie(self.codes.cpu(), self.level_sizes).to(device)

    def _rebuild_if_changed(self) -> None:
        """After a state-dict load: a best-checkpoint reload may bring other codes (joint training refreshes them);
        a saved model's own codes, already built, are not rebuilt (a trie build is ~0.2 s on Beauty)."""
        codes, trie = self.codes.cpu(), self.trie
        if not torch.equal(codes[trie.code_order.cpu()], trie.order_codes.cpu()):
            self._rebuild()

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        device = self.codes.device  # `to`, `cuda`, `cpu`: token table and trie follow the codes
        if self.vocab.item_tokens.device != device:
            self.vocab.item_tokens = self.vocab.item_tokens.to(device)
            self.trie.to(device)
        return self

    def set(self, codes: torch.Tensor) -> None:
        """New codes (a refresh in joint training): the vocabulary keeps its size, tokens and trie follow."""
        self.codes.copy_(codes.to(self.codes.device))
        self._rebuild()

    def add(self, codes: torch.Tensor) -> None:
        """Append items (new code tuples, unique and within the vocabulary): the token table and trie follow."""
        codes = codes.long().to(self.codes.device)
        if codes.ndim != 2 or codes.shape[1] != self.depth:
            raise ValueError(f"new items need code tuples of {self.depth} levels, got shape {tuple(codes.shape)}")
        too_big = codes >= torch.tensor(self.level_sizes, device=codes.device)
        if too_big.any() or (codes < 0).any():
            raise ValueError(f"new item codes outside the vocabulary (level sizes {self.level_sizes}): first at row "
                             f"{int((too_big | (codes < 0)).any(1).nonzero()[0])}")
        merged = torch.cat([self.codes, codes])
        if len(torch.unique(merged, dim=0)) != len(merged):
            raise ValueError("new item code tuples must differ from each other and from the known items' "
                             "(resolve collisions first)")
        self.codes = merged  # a registered buffer: replaced, still saved with the model
        self._rebuild()

    @property
    def num_items(self) -> int:
        return len(self.codes)

    @property
    def depth(self) -> int:
        return len(self.level_sizes)

    @property
    def level_offsets(self) -> list[int]:
        return self.vocab.level_offsets

    def tokens(self, items: torch.Tensor) -> torch.Tensor:
        """Item indices [...] (-1 = none) -> their decoder tokens [..., levels] (pad for -1)."""
        return self.vocab.item_tokens[items]

    def encode_history(self, history: torch.Tensor, users: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.vocab.encode_history(history, users)
