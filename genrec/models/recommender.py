"""The generative recommender's public face: build, train (`forward`), generate, recommend, save and load.

History items enter the encoder either as code tokens (two-stage TIGER) or as one
`[ID embedding ‖ quantized semantic vector]` vector each (`ItemEmbedding`, frozen or with a live tokenizer);
the decoder emits the next item's code tuple, scored level by level by the code head (`code_head`) and decoded
by trie-constrained beam search (`generation.beam`). The parts live in their own modules: the codes, tokens and
trie in `generation.codes.ItemCodes`, the losses in `models.losses`. `save_pretrained` / `from_pretrained` keep
every mode in one format: `config.json`, `model.safetensors` (no pickles) and `items.json` (raw item ids and
titles, for `recommend`).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from genrec.data.embeddings import encode_texts, item_text
from genrec.errors import GenrecError, MissingFileError
from genrec.files import save_folder
from genrec.generation.beam import constrained_beam_search
from genrec.generation.codes import ItemCodes
from genrec.generation.rules import allowed_items, rule_scores
from genrec.models import losses
from genrec.models.code_head import CodeHead
from genrec.models.item_embedding import ItemEmbedding
from genrec.models.new_items import offset_for_share
from genrec.models.seq2seq import Seq2SeqConfig, build_model
from genrec.models.text_view import text_view_scores
from genrec.quantize.semantic_ids import extend_codes
from genrec.quantize.tokenizer import SemanticTokenizer, TokenizerConfig

FORMAT = 2  # bump when the saved layout changes; from_pretrained refuses other versions
# where each format began: 1, the restructure that introduced saved folders (older run folders hold best_model.pt
# only); 2, one decoder setting (`seq2seq.decoder`) and the codes, trie and code head as modules of their own
FORMAT_COMMIT = "the restructure that introduced saved model folders"


class UnknownIdError(GenrecError, KeyError):
    """An item (or user) id that the model does not know."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def additive(allowed: torch.Tensor) -> torch.Tensor:
    """A boolean attention pattern as the additive float mask HF attention takes (a large negative, not -inf,
    so a query with no allowed key gets a uniform, finite softmax)."""
    return torch.zeros(allowed.shape, device=allowed.device).masked_fill(~allowed, -1e9)


def causal_attention(valid: torch.Tensor) -> torch.Tensor:
    """[B, S] input positions -> [B, 1, S, S] additive mask: position t sees inputs at positions <= t."""
    positions = torch.arange(valid.shape[1], device=valid.device)
    return additive((positions[None, :] <= positions[:, None])[None] & valid[:, None, :].bool())[:, None]


def architecture(cfg: TokenizerConfig) -> dict[str, Any]:
    """The fields that shape a tokenizer (a subclass's fitting settings left out)."""
    return {f.name: getattr(cfg, f.name) for f in fields(TokenizerConfig)}


class GenerativeRecommender(nn.Module):
    def __init__(self, codes: torch.Tensor, level_sizes: list[int], seq2seq: Seq2SeqConfig, max_history: int,
                 items: ItemEmbedding | None = None, item_ids: list[str] | None = None,
                 titles: list[str] | None = None, causal: bool = False, user_ids: list[str] | None = None):
        """`items` is built before the T5 (the order parameters are drawn from the seed). `causal`: the
        encoder attends only to earlier positions, so one pass yields a state per history position
        (every-position training) and the item table scores every item from each state (the dense head).
        `item_ids`/`titles`: the raw catalogue; `user_ids`: the raw users, kept when the model has user tokens."""
        super().__init__()
        if causal and items is None:
            raise ValueError("a causal encoder with a dense head needs item vectors (`items`), not code tokens")
        if seq2seq.decoder == "item_table" and not causal:
            raise ValueError("the item-table decoder needs a causal encoder (objective.kind=every_position): it "
                             "starts from the encoder state at the target's position and reads the dense head's items")
        self.seq2seq, self.max_history, self.level_sizes = seq2seq, max_history, list(level_sizes)
        self.causal = causal
        self.codes = ItemCodes(codes, level_sizes, seq2seq.user_buckets)
        self.items = items
        self.t5 = build_model(seq2seq, self.codes.vocab.size)
        self.head = CodeHead(seq2seq.decoder, seq2seq.d_model)
        self.item_ids = item_ids or [str(i) for i in range(len(codes))]
        self.titles = titles or [""] * len(codes)
        self._index = {item: i for i, item in enumerate(self.item_ids)}
        self.user_ids = list(user_ids or []) if seq2seq.user_buckets else []
        self._user_index = {user: i for i, user in enumerate(self.user_ids)}
        # items from `new_from` on arrived after training (`add_items`); their scores get `new_item_bias` added
        self.new_from: int | None = None
        self.new_item_bias = 0.0
        # the text view: every item's score gets this weight times the cosine of its text vector to the last history
        # item's (a model whose items carry their text vectors; chosen on validation after training, 0 = off)
        self.text_view_weight = 0.0
        # what encodes new items (`add_items`): the stage-one tokenizer when the item table has no live one, and the
        # text encoder's spec (`keep_tokenizer`)
        self.catalog_tokenizer: SemanticTokenizer | None = None
        self.text_encoder: dict[str, Any] | None = None

    @property
    def num_items(self) -> int:
        return self.codes.num_items

    @property
    def has_dense_head(self) -> bool:
        return self.causal

    def item_scores(self, history: torch.Tensor) -> torch.Tensor | None:
        """[B, items]: what each user's item scores get added beyond the state's dot product with the item rows, or
        None: the new items' bias, and the text view (its weight times each item's text cosine to the last history
        item, the item itself left out: a user's own last item is not its own text neighbour)."""
        if not self.text_view_weight and not (self.new_from is not None and self.new_item_bias):
            return None
        scores = torch.zeros(len(history), self.num_items, device=self.codes.codes.device)
        if self.new_from is not None:
            scores[:, self.new_from :] = self.new_item_bias
        if self.text_view_weight:
            if self.items is None or self.items.text is None:
                raise GenrecError("the text view needs items that carry their text vectors (a model trained with "
                                  "items.text=true or decode.text_view_weights)")
            scores += text_view_scores(self.items.text, history[:, -1], self.text_view_weight)  # left-padded: newest last
        return scores

    # ------------------------------------------------------------------ encoder
    def encoder_inputs(self, history: torch.Tensor, users: torch.Tensor | None,
                       live: losses.Live | None = None) -> dict[str, Any]:
        """history [B, H] item indices (-1 = pad) -> T5 encoder keyword arguments: code tokens, or item
        vectors. `live` = (sorted item indices, their semantic vectors computed with gradients this step)."""
        if self.items is None:
            ids, mask = self.codes.encode_history(history, users)
            return {"input_ids": ids, "attention_mask": mask}
        valid = history >= 0
        items = history.clamp_min(0)
        semantic = None if live is None else live[1][torch.searchsorted(live[0], items)]
        embeds = self.items(items, semantic) * valid.unsqueeze(-1)
        mask = valid
        if self.seq2seq.user_buckets and users is not None:
            user = self.t5.shared(self.codes.vocab.user_token(users)).unsqueeze(1)
            embeds = torch.cat([user, embeds], dim=1)
            mask = torch.cat([torch.ones_like(valid[:, :1]), valid], dim=1)
        return {"input_ids": None, "inputs_embeds": embeds, "attention_mask": mask}

    def encode(self, history: torch.Tensor, users: torch.Tensor | None,
               live: losses.Live | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states [B, S, d] and which positions hold an input [B, S] (a user token first, if any)."""
        inputs = self.encoder_inputs(history, users, live)
        valid = inputs["attention_mask"]
        if self.causal:
            inputs["attention_mask"] = causal_attention(valid)
        return self.t5.encoder(**inputs).last_hidden_state, valid

    def decoder_start(self, states: torch.Tensor) -> torch.Tensor | None:
        """What the decoder's start token adds: the encoder state at the target's position [n, d] (the
        item-table decoder reads its query directly instead of finding the newest position by cross-attention,
        which carries no position information in T5), or nothing."""
        return states if self.head.uses_item_table else None

    # ------------------------------------------------------------------ training
    def forward(self, history: torch.Tensor, users: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None = None,
                live: bool = False, align_temperature: float = 1.0, every_position: bool = False,
                distill: bool = False) -> dict[str, torch.Tensor]:
        """Losses of one batch (through `forward`, so DDP sees every step; `models.losses` says how each is made).

        Sliding window: history [B, H] -> one target per row, labels [B, L]. Every position (`every_position`,
        causal model): rows with target [B, H] and labels [B, H, L]; `rec` is the code loss over every real
        position and `dense` the dense head's full-softmax cross-entropy; with `distill` also `distill`. With
        `live` (a tokenizer that trains with the model), the inputs' semantic vectors come from the tokenizer
        with gradients and its RQ-VAE loss (`rq`) is added; in the sliding window also `align`."""
        out: dict[str, torch.Tensor] = {}
        live_semantic = None
        if live:
            uniq = torch.unique(torch.cat([history.clamp_min(0).flatten(), target.clamp_min(0).flatten()]))
            tok = self.items.quantize(uniq)
            live_semantic = (uniq, tok.quantized)
            out["rq"] = tok.loss
        if every_position:
            code_loss, dense_loss, soft = losses.every_position(self, history, users, target, labels, live_semantic, distill)
            out["rec"], out["dense"] = code_loss.mean(), dense_loss.mean()
            if soft is not None:
                out["distill"] = soft.mean()
            return out
        code_loss, log_probs = losses.sliding_window(self, history, users, labels, live_semantic)
        out["rec"] = code_loss.mean()
        if live:
            out["align"] = losses.alignment(self, log_probs, target, align_temperature)
        return out

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def generate(self, history: torch.Tensor, users: torch.Tensor | None = None, beam: int = 20, topk: int = 10,
                 encoded: tuple[torch.Tensor, torch.Tensor] | None = None, alpha: float = 1.0,
                 guide: torch.Tensor | None = None, table: torch.Tensor | None = None,
                 extra: torch.Tensor | None = None, allowed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k distinct valid items [B, k] (-1 where fewer exist) and their sequence log-probabilities.
        `allowed` [B, items] bool (`generation.rules.allowed_items`): only these items come out; the search is
        restricted to them, not filtered afterwards, so it returns k items wherever k are allowed.
        `encoded`: this batch's `encode(history, users)`, `table`: `items.table()`, and `extra`: its
        `item_scores(history)`, when the caller already has them. `alpha` < 1 (a model with a dense head): the search is guided by the dense head, every prefix
        scored alpha * its sequence log-prob + (1 - alpha) * the dense head's log-mass under it (`guide`:
        `trie.node_log_mass` of the dense scores, when the caller already has it, e.g. for several mixes)."""
        hidden, valid = self.encode(history, users) if encoded is None else encoded
        guided = alpha != 1.0
        if table is None and (self.head.uses_item_table or (guided and guide is None)):
            table = self.items.table()
        extra = self.item_scores(history) if extra is None else extra
        if allowed is not None:  # the item-table decoder counts the allowed items only: a code with none scores -inf,
            # so its search needs no node mask; the TIGER decoder, which does not read items, gets one
            extra = rule_scores(allowed) if extra is None else extra + rule_scores(allowed)
        if guided and guide is None:
            if not self.has_dense_head:
                raise GenrecError("a guided search (alpha < 1) needs a model with a dense head (objective.kind=every_position)")
            guide = self.codes.trie.node_log_mass(self.dense_scores(history, users, table, (hidden, valid), extra))
        states = hidden[:, -1]
        score = self.head.scorer(self.t5, self.codes, states, table, extra)
        return constrained_beam_search(self.t5, self.codes, hidden, valid, score, beam=beam, topk=topk,
                                       start=self.decoder_start(states), prior=guide if guided else None, alpha=alpha,
                                       allowed=None if allowed is None or self.head.uses_item_table
                                       else self.codes.trie.allowed_nodes(allowed))

    @torch.no_grad()
    def dense_scores(self, history: torch.Tensor, users: torch.Tensor | None = None, table: torch.Tensor | None = None,
                     encoded: tuple[torch.Tensor, torch.Tensor] | None = None,
                     extra: torch.Tensor | None = None, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """[B, items] fp32 log-probabilities of the next item from the dense head (the last position's state
        against the item table, plus `item_scores`; `table`, `encoded`, `extra`, `allowed` as in `generate`: an item
        not allowed gets -inf, the allowed ones share the probability)."""
        hidden, _ = self.encode(history, users) if encoded is None else encoded
        table = self.items.table() if table is None else table
        extra = self.item_scores(history) if extra is None else extra
        if allowed is not None:
            extra = rule_scores(allowed) if extra is None else extra + rule_scores(allowed)
        with torch.autocast(hidden.device.type, enabled=False):
            logits = hidden[:, -1].float() @ table.float().T
            return torch.log_softmax(logits if extra is None else logits + extra, dim=-1)

    def item_index(self, item_id: str) -> int:
        if str(item_id) not in self._index:
            raise UnknownIdError(f"item {item_id!r} is not in this model's catalogue ({self.num_items} items)")
        return self._index[str(item_id)]

    def user_index(self, user_id: str) -> int:
        if str(user_id) not in self._user_index:
            raise UnknownIdError(f"user {user_id!r} is not among this model's {len(self.user_ids)} training users")
        return self._user_index[str(user_id)]

    @torch.no_grad()
    def recommend(self, history: list[str], k: int = 10, beam: int = 20, user: str | None = None,
                  alpha: float = 1.0, exclude: list[str] | None = None, only: list[str] | None = None,
                  exclude_history: bool = False) -> list[dict[str, Any]]:
        """The next k items after a history of raw item ids (oldest first): item id, title, score (the
        sequence log-probability; with `alpha` < 1, the search guided by the dense head, as `generate`).
        `user`, a raw user id, matters only to a model trained with user tokens. Rules, applied inside the search:
        `exclude` (item ids never to return; `exclude_history` adds the history's), `only` (the item ids that may be
        returned). Fewer than k entries come back only when fewer than k items are allowed."""
        return self.recommend_many([history], k, beam, [user], alpha, [exclude] if exclude else None,
                                   None if only is None else [only], exclude_history)[0]

    @torch.no_grad()
    def recommend_many(self, histories: list[list[str]], k: int = 10, beam: int = 20,
                       users: list[str | None] | None = None, alpha: float = 1.0,
                       exclude: list[list[str]] | None = None, only: list[list[str] | None] | None = None,
                       exclude_history: bool = False) -> list[list[dict[str, Any]]]:
        """`recommend` for many users in one batched search (one list per history; `users`, `exclude` and `only` one
        entry per history, an `only` entry None for no allow-list)."""
        if k < 1:
            raise GenrecError(f"k must be at least 1, got {k}")
        for row, history in enumerate(histories):
            if not history:
                raise GenrecError(f"recommend needs a history of at least one item id (history {row} is empty)")
        device = self.codes.codes.device
        indices = [[self.item_index(i) for i in history] for history in histories]
        batch = torch.full((len(indices), self.max_history), -1, dtype=torch.long)
        for row, index in enumerate(indices):
            recent = index[-self.max_history:]
            batch[row, self.max_history - len(recent):] = torch.tensor(recent)  # left-padded: newest last
        user_rows = None
        if self.user_ids and users is not None and any(u is not None for u in users):
            if any(u is None for u in users):
                raise GenrecError("give a user id for every history or for none")
            user_rows = torch.tensor([self.user_index(u) for u in users], device=device)
        excluded = None
        if exclude is not None or exclude_history:
            excluded = [[self.item_index(i) for i in (exclude[row] if exclude is not None else [])]
                        + (indices[row] if exclude_history else []) for row in range(len(indices))]
        if only is not None and all(o is None for o in only):
            only = None
        allowed_only = None if only is None else [None if o is None else [self.item_index(i) for i in o] for o in only]
        # no rule at all: the plain search (a mask allowing everything would only cost time)
        allowed = None if not any(excluded or []) and allowed_only is None else allowed_items(
            self.num_items, len(indices), excluded, allowed_only, per_user_only=True, device=device)
        was = self.training
        self.eval()
        try:
            items, scores = self.generate(batch.to(device), user_rows, beam=max(beam, k), topk=k, alpha=alpha,
                                          allowed=allowed)
        finally:
            self.train(was)
        return [[{"item_id": self.item_ids[i], "title": self.titles[i], "score": float(s)}
                 for i, s in zip(row_items, row_scores) if i >= 0]
                for row_items, row_scores in zip(items.tolist(), scores.tolist())]

    @torch.no_grad()
    def add_items(self, item_ids: Sequence[str], texts: Sequence[str | Mapping[str, Any]],
                  titles: Sequence[str] | None = None) -> None:
        """Add items by their text, without retraining, so the search and the dense head can return them. Each text is
        a string, or the item's fields (title, brand, categories, description, ...: formatted as the training
        catalogue's were). The model's text encoder embeds them, its tokenizer gives each a code tuple (collisions
        resolved after the known items', as in training), and the trie, code vocabulary and item table grow (text
        and semantic rows; the ID row starts empty). `save_pretrained` keeps them. Titles default to the fields'."""
        item_ids = [str(i) for i in item_ids]
        if len(texts) != len(item_ids):
            raise GenrecError(f"{len(item_ids)} item ids but {len(texts)} texts")
        self._check_new_ids(item_ids)
        strings = [item_text(t, i) if isinstance(t, Mapping) else str(t) for i, t in zip(item_ids, texts)]
        empty = [i for i, t, s in zip(item_ids, texts, strings)
                 if not (any(str(v).strip() for v in t.values() if v) if isinstance(t, Mapping) else s.strip())]
        if empty:
            raise GenrecError(f"new items need a text; empty for item ids {empty[:5]}" + (" ..." if len(empty) > 5 else ""))
        tokenizer = self.tokenizer
        if tokenizer is None or self.text_encoder is None:
            raise GenrecError("this model was saved without its tokenizer and text encoder (trained with tokenizer_path, "
                              "or before models kept them): add items by their codes with add_encoded_items")
        if titles is None:
            titles = [str(t.get("title") or "") if isinstance(t, Mapping) else "" for t in texts]
        device = self.codes.codes.device
        vectors = torch.from_numpy(encode_texts(strings, max_length=self.text_encoder["max_length"],
                                                device=device.type, progress=False, encoder=self.text_encoder["model"]))
        vectors = vectors.to(device)
        raw, semantic = tokenizer.quantize_items(vectors)
        collision = tokenizer.cfg.collision
        last = tokenizer.last_level_distances(vectors).cpu().numpy() if collision == "reassign" else None
        codes = extend_codes(self.codes.codes.cpu().numpy(), raw.cpu().numpy(), collision, last)
        try:
            self.add_encoded_items(torch.from_numpy(codes), semantic, vectors, item_ids, list(titles))
        except ValueError as error:  # a collision group past the code vocabulary's last level
            raise GenrecError(f"the new items' codes do not fit this model's code vocabulary: {error}") from None

    @property
    def tokenizer(self) -> SemanticTokenizer | None:
        """The tokenizer that gives new items their codes: the live one inside the item table, or the stage-one
        tokenizer kept with the model (`keep_tokenizer`)."""
        if self.items is not None and self.items.tokenizer is not None:
            return self.items.tokenizer
        return self.catalog_tokenizer

    def keep_tokenizer(self, tokenizer: SemanticTokenizer, text_encoder: dict[str, Any]) -> None:
        """Keep the tokenizer that made the codes, and the text encoder (`data.embeddings.encoder_spec`) that made its
        inputs, with the model (saved with it, not trained), so a saved model can take new items by their text."""
        self.catalog_tokenizer = tokenizer.requires_grad_(False).eval()
        self.text_encoder = dict(text_encoder)

    def _check_new_ids(self, item_ids: list[str]) -> None:
        clash = sorted(set(item_ids) & set(self._index)) or sorted(i for i, n in Counter(item_ids).items() if n > 1)
        if clash:
            raise GenrecError(f"item ids already in the catalogue or given twice: {clash[:5]}"
                              + (" ..." if len(clash) > 5 else ""))

    @torch.no_grad()
    def add_encoded_items(self, codes: torch.Tensor, semantic: torch.Tensor | None = None,
                          text: torch.Tensor | None = None, item_ids: list[str] | None = None,
                          titles: list[str] | None = None) -> None:
        """`add_items` from what the text encoder and tokenizer give: the items' code tuples (collisions resolved after
        the known items'), and for a model with an item table their semantic vectors and, where it reads them, text
        vectors (the ID rows start at zero)."""
        n = len(codes)
        item_ids = [str(i) for i in item_ids] if item_ids is not None else [str(self.num_items + i) for i in range(n)]
        self._check_new_ids(item_ids)
        if self.items is not None and (semantic is None or (text is None and self.items.reads_text)):
            raise GenrecError("this model embeds items: new items need their semantic vectors"
                              + (" and text vectors" if self.items.reads_text else ""))
        known = self.num_items
        self.codes.add(codes)  # checked before anything changes
        if self.items is not None:
            self.items.add_items(semantic, text)
        self.new_from = known if self.new_from is None else self.new_from
        self.item_ids = self.item_ids + item_ids
        self.titles = self.titles + (list(titles) if titles is not None else [""] * n)
        self._index.update({item: len(self._index) + i for i, item in enumerate(item_ids)})

    @torch.no_grad()
    def calibrate_new_items(self, history: torch.Tensor, users: torch.Tensor | None = None, share: float | None = None,
                            beam: int = 20, topk: int = 10, batch_size: int = 512, steps: int = 12) -> float:
        """Set `new_item_bias` so that the items added after training fill `share` of the top-k slots of the search
        over these histories [n, H] (default: their share of the catalogue; `genrec.models.new_items`); returns it.
        The histories are encoded once. Applies to the dense head and the item-table decoder (the TIGER decoder
        scores codes, not items)."""
        if self.new_from is None:
            raise GenrecError("no items were added after training: nothing to calibrate")
        share = (self.num_items - self.new_from) / self.num_items if share is None else share
        was = self.training
        self.eval()
        table = self.items.table() if self.items is not None else None
        rows = history.split(batch_size)
        batches = list(zip(rows, users.split(batch_size) if users is not None else [None] * len(rows)))
        encoded = [self.encode(h, u) for h, u in batches]
        self.new_item_bias = 0.0
        # each batch's item scores without the offset (the text view's, or none), computed once for every offset tried
        fixed = [self.item_scores(h) for h, _ in batches]
        fixed = [torch.zeros(len(h), self.num_items, device=h.device) if f is None else f for (h, _), f in zip(batches, fixed)]
        new = torch.zeros(self.num_items, device=self.codes.codes.device)
        new[self.new_from :] = 1.0

        def new_share(bias: float) -> float:
            found = torch.cat([self.generate(h, u, beam, topk, e, table=table, extra=f + bias * new)[0]
                               for (h, u), e, f in zip(batches, encoded, fixed)])
            filled = found >= 0
            return ((found >= self.new_from) & filled).sum().item() / max(1, filled.sum().item())

        self.new_item_bias = offset_for_share(new_share, share, steps=steps)
        self.train(was)
        return self.new_item_bias

    # ------------------------------------------------------------------ saving
    def config(self) -> dict[str, Any]:
        items = None
        if self.items is not None:
            tokenizer = self.items.tokenizer
            items = {"id_dim": 0 if self.items.ids is None else self.items.ids.embedding_dim,
                     "semantic_dim": self.items.semantic.shape[1], "use_semantic": self.items.use_semantic,
                     "text_dim": 0 if self.items.text is None else self.items.text.shape[1],
                     "use_text": self.items.use_text,
                     "tokenizer": None if tokenizer is None else architecture(tokenizer.cfg),
                     "item_text_dim": None if tokenizer is None else self.items.item_text.shape[1]}
        return {"format": FORMAT, "num_items": self.num_items, "level_sizes": self.level_sizes,
                "max_history": self.max_history, "causal": self.causal, "seq2seq": asdict(self.seq2seq), "items": items,
                "new_items": {"from": self.new_from, "bias": self.new_item_bias}, "text_view_weight": self.text_view_weight,
                "catalog_tokenizer": None if self.catalog_tokenizer is None else {
                    "input_dim": self.catalog_tokenizer.mean.shape[0], "config": architecture(self.catalog_tokenizer.cfg)},
                "text_encoder": self.text_encoder}

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the model folder whole (staged, then swapped in)."""
        def fill(staged: Path) -> None:
            (staged / "config.json").write_text(json.dumps(self.config(), indent=1))
            ids = {"item_ids": self.item_ids, "titles": self.titles, **({"user_ids": self.user_ids} if self.user_ids else {})}
            (staged / "items.json").write_text(json.dumps(ids))
            if self.items is not None and self.items.tokenizer is not None:
                # the tokenizer's input is not a parameter, but refreshing or training the tokenizer needs it
                save_file({"item_text": self.items.item_text.contiguous().cpu()}, str(staged / "item_text.safetensors"))
            save_model(self, str(staged / "model.safetensors"))

        return save_folder(folder, fill)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu") -> "GenerativeRecommender":
        folder = Path(folder)
        config_path = folder / "config.json"
        if not config_path.exists():
            hint = (f" (it holds best_model.pt: a run saved before {FORMAT_COMMIT}; retrain it to get a loadable model)"
                    if (folder / "best_model.pt").exists() or (folder.parent / "best_model.pt").exists() else "")
            raise MissingFileError(f"{folder} is not a saved genrec model: no config.json{hint}")
        cfg = json.loads(config_path.read_text())
        if cfg.get("format") != FORMAT:
            older = (" (format 1 is the node_head/node_score/root_query layout of genrec before commit e26dbe3: load it "
                     "there, or retrain)" if cfg.get("format") == 1 else "")
            raise GenrecError(f"{config_path}: saved model format {cfg.get('format')!r}, this genrec reads {FORMAT}{older}")
        num_items, items = cfg["num_items"], None  # the parameters are placeholders until load_model
        if cfg["items"] is not None:
            spec = cfg["items"]
            semantic = torch.zeros(num_items, spec["semantic_dim"])
            d_model = cfg["seq2seq"]["d_model"]
            parts = {"text": torch.zeros(num_items, spec["text_dim"]) if spec.get("text_dim") else None,
                     "use_semantic": spec.get("use_semantic", True), "use_text": spec.get("use_text", True)}
            if spec["tokenizer"] is None:
                items = ItemEmbedding(semantic, spec["id_dim"], d_model, **parts)
            else:
                tokenizer = SemanticTokenizer(spec["item_text_dim"], TokenizerConfig(**spec["tokenizer"]))
                text = load_file(str(folder / "item_text.safetensors"))["item_text"]
                items = ItemEmbedding(semantic, spec["id_dim"], d_model, tokenizer, text, **parts)
        catalog = json.loads((folder / "items.json").read_text())
        with safe_open(str(folder / "model.safetensors"), "pt") as weights:
            codes = weights.get_tensor("codes.codes")
        model = cls(codes, cfg["level_sizes"],
                    Seq2SeqConfig(**cfg["seq2seq"]), cfg["max_history"], items, catalog["item_ids"], catalog["titles"],
                    cfg.get("causal", False), catalog.get("user_ids"))
        if cfg.get("catalog_tokenizer"):
            spec = cfg["catalog_tokenizer"]
            model.catalog_tokenizer = SemanticTokenizer(spec["input_dim"], TokenizerConfig(**spec["config"]))
        model.text_encoder = cfg.get("text_encoder")
        load_model(model, str(folder / "model.safetensors"), device="cpu")
        if model.catalog_tokenizer is not None:
            model.keep_tokenizer(model.catalog_tokenizer, model.text_encoder)
        new = cfg.get("new_items") or {}
        model.new_from, model.new_item_bias = new.get("from"), new.get("bias", 0.0)
        model.text_view_weight = cfg.get("text_view_weight", 0.0)
        return model.to(device).eval()
