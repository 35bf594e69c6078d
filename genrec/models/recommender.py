"""The generative recommender as one object: item codes, the trie over them, the item input, and the T5.

History items enter the encoder either as code tokens (two-stage TIGER) or as one
`[ID embedding ‖ quantized semantic vector]` vector each (`ItemEmbedding`, frozen or with a live
tokenizer); the decoder emits the next item's code tuple, decoded by trie-constrained beam search. With
a causal encoder the decoder may also start from the encoder state and score codes against the item
table (`Seq2SeqConfig.start_from_state`, `node_head`), so what the dense head learns reaches it at once.
`save_pretrained` / `from_pretrained` keep every mode in one format: `config.json`,
`model.safetensors` (no pickles) and `items.json` (raw item ids and titles, for `recommend`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from genrec.errors import GenrecError, MissingFileError
from genrec.files import save_folder
from genrec.generation.beam import constrained_beam_search
from genrec.generation.trie import TensorTrie
from genrec.models.item_embedding import ItemEmbedding
from genrec.models.seq2seq import PAD, CodeVocab, Seq2SeqConfig, build_model, output_scale, user_token
from genrec.quantize.tokenizer import SemanticTokenizer, TokenizerConfig

FORMAT = 1  # bump when the saved layout changes; from_pretrained refuses other versions
FORMAT_COMMIT = "the restructure of issue 15"  # where the format began: older run folders hold best_model.pt only


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
        for option in ("start_from_state", "node_head"):
            if getattr(seq2seq, option) and not causal:
                raise ValueError(f"{option} needs a causal encoder (objective.kind=every_position): the decoder "
                                 "reads the encoder state at the target's position and the dense head's item table")
        self.seq2seq, self.max_history, self.level_sizes = seq2seq, max_history, list(level_sizes)
        self.causal = causal
        self.register_buffer("item_codes", codes.long().clone())  # a checkpoint pairs weights with their codes
        self.items = items
        self._set_decoding(codes)
        self.t5 = build_model(seq2seq, self.vocab.size)
        # zero-initialised: a node-head model starts as the plain decoder and learns how much to use the item table
        self.node_proj = nn.Linear(seq2seq.d_model, seq2seq.d_model, bias=False) if seq2seq.node_head else None
        if self.node_proj is not None:
            nn.init.zeros_(self.node_proj.weight)
        self.item_ids = item_ids or [str(i) for i in range(len(codes))]
        self.titles = titles or [""] * len(codes)
        self._index = {item: i for i, item in enumerate(self.item_ids)}
        self.user_ids = list(user_ids or []) if seq2seq.user_buckets else []
        self._user_index = {user: i for i, user in enumerate(self.user_ids)}

    # ------------------------------------------------------------------ codes
    def _set_decoding(self, codes: torch.Tensor) -> None:
        self.vocab = CodeVocab(codes.cpu(), self.level_sizes, self.seq2seq.user_buckets)
        self.trie = TensorTrie(codes.cpu(), self.level_sizes)

    def set_codes(self, codes: torch.Tensor) -> None:
        """New targets (after a code refresh): the vocabulary keeps its size, the trie is rebuilt."""
        self.item_codes.copy_(codes.to(self.item_codes.device))
        self._set_decoding(codes)

    def sync_codes(self) -> None:
        """Rebuild targets and trie if `item_codes` changed underneath them (a best-checkpoint reload)."""
        current = self.vocab.item_tokens[:-1].cpu() - torch.tensor(self.vocab.level_offsets)
        if not torch.equal(self.item_codes.cpu(), current):
            self._set_decoding(self.item_codes)

    def codes_on(self, device: torch.device) -> None:
        """Targets and trie live on the device the model runs on (moved once)."""
        if self.vocab.item_tokens.device != device:
            self.vocab.item_tokens = self.vocab.item_tokens.to(device)
            self.trie.to(device)

    @property
    def num_items(self) -> int:
        return len(self.item_codes)

    # ------------------------------------------------------------------ encoder input
    def encoder_inputs(self, history: torch.Tensor, users: torch.Tensor | None,
                       live: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, Any]:
        """history [B, H] item indices (-1 = pad) -> T5 encoder keyword arguments: code tokens, or item
        vectors. `live` = (sorted item indices, their semantic vectors computed with gradients this step)."""
        if self.items is None:
            ids, mask = self.vocab.encode_history(history, users)
            return {"input_ids": ids, "attention_mask": mask}
        valid = history >= 0
        items = history.clamp_min(0)
        semantic = None if live is None else live[1][torch.searchsorted(live[0], items)]
        embeds = self.items(items, semantic) * valid.unsqueeze(-1)
        mask = valid
        if self.seq2seq.user_buckets and users is not None:
            user = self.t5.shared(user_token(users, self.vocab.user_offset, self.seq2seq.user_buckets)).unsqueeze(1)
            embeds = torch.cat([user, embeds], dim=1)
            mask = torch.cat([torch.ones_like(valid[:, :1]), valid], dim=1)
        return {"input_ids": None, "inputs_embeds": embeds, "attention_mask": mask}

    def encode(self, history: torch.Tensor, users: torch.Tensor | None,
               live: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states [B, S, d] and which positions hold an input [B, S] (a user token first, if any)."""
        inputs = self.encoder_inputs(history, users, live)
        valid = inputs["attention_mask"]
        if self.causal:
            inputs["attention_mask"] = causal_attention(valid)
        return self.t5.encoder(**inputs).last_hidden_state, valid

    @property
    def has_dense_head(self) -> bool:
        return self.causal

    # ------------------------------------------------------------------ training
    def decoder_start(self, states: torch.Tensor) -> torch.Tensor | None:
        """What the decoder's start token adds: the encoder state at the target's position [n, d], or nothing."""
        return states if self.seq2seq.start_from_state else None

    def decoder_states(self, hidden: torch.Tensor, sees: torch.Tensor, tokens: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Teacher-forced decoder states [n, L, d] for the code tokens [n, L] (state l predicts token l), the
        decoder cross-attending to `hidden` [n, S, d] where `sees` [n, S]; `states` [n, d] are the encoder
        states at the targets' positions."""
        embeds = self.t5.decoder.embed_tokens(torch.cat([torch.full_like(tokens[:, :1], PAD), tokens[:, :-1]], dim=-1))
        start = self.decoder_start(states)
        if start is not None:
            embeds = torch.cat([embeds[:, :1] + start.unsqueeze(1).to(embeds.dtype), embeds[:, 1:]], dim=1)
        return self.t5.decoder(inputs_embeds=embeds, encoder_hidden_states=hidden, encoder_attention_mask=sees).last_hidden_state

    def node_vectors(self, table: torch.Tensor | None = None, ordered: torch.Tensor | None = None) -> list[torch.Tensor] | None:
        """The node head's item-side vectors per level (None without a node head): for `node_score` "mean", [that
        level's trie nodes, d], the mean item vector under each prefix; for "mass", the item table in code order
        [items, d] at every level. `table`: `items.table()`, and `ordered`: it in code order, when the caller has them."""
        if self.node_proj is None:
            return None
        table = self.items.table() if table is None else table
        self.codes_on(table.device)
        if self.seq2seq.node_score == "mass":
            ordered = table.index_select(0, self.trie.code_order) if ordered is None else ordered
            return [ordered] * self.trie.depth
        return self.trie.node_means(table)

    def level_log_probs(self, hidden: torch.Tensor, parents: torch.Tensor, level: int,
                        nodes: list[torch.Tensor] | None = None, root: torch.Tensor | None = None) -> torch.Tensor:
        """Log-probabilities [..., size] of level `level`'s codes after the prefixes ending at trie nodes
        `parents` [...], from decoder states `hidden` [..., d]. The plain decoder: T5's tied LM head, normalised
        over the whole vocabulary (as TIGER trains). With a node head: plus the projected state against each
        child's mean item vector, or its items' summed exp-scores (`node_score`; `nodes`, from `node_vectors`),
        normalised over the valid children only. `root` [..., size]: with `root_query` "encoder", the first level's
        node term, the dense head's log-mass under each code (`root_log_mass`)."""
        offset, size = self.vocab.level_offsets[level], self.vocab.level_sizes[level]
        logits = self.t5.lm_head(hidden * output_scale(self.t5)).float()
        if self.node_proj is None:
            return torch.log_softmax(logits, dim=-1)[..., offset : offset + size]
        vectors = (self.node_vectors() if nodes is None else nodes)[level]
        first = self.trie.level_ranges[level][0]
        children = self.trie.children[parents, :size]
        valid = children >= 0
        if level == 0 and self.seq2seq.root_query == "encoder":
            if root is None:
                raise GenrecError("model.root_query=encoder: the first level's scores need the encoder states' root term")
            node_term = root
        else:
            projected = self.node_proj(hidden).float()
            if self.seq2seq.node_score == "mass":
                node_term = self.trie.child_log_mass(projected, vectors.float(), parents, level)
            elif len(vectors) <= size:  # a level with few nodes (the root's children): score them all in one matmul
                node_term = (projected @ vectors.float().T).gather(-1, (children - first).clamp(0, len(vectors) - 1))
            else:  # score each row's valid children only: below the first level most prefixes have a few
                where = valid.nonzero(as_tuple=True)
                scores = (projected[where[:-1]] * vectors[children[where] - first].float()).sum(-1)
                node_term = torch.zeros(children.shape, device=hidden.device).index_put(where, scores)
        logits = (logits[..., offset : offset + size] + node_term).masked_fill(~valid, float("-inf"))
        return torch.log_softmax(logits, dim=-1)

    def root_term(self, states: torch.Tensor, nodes: list[torch.Tensor] | None = None) -> torch.Tensor | None:
        """With `root_query` "encoder", the first level's node term [..., size] for encoder states [..., d]: the
        dense head's log-mass under each code (None otherwise). Training gets it from the dense head's own
        softmax (`every_position`); this is the same up to a per-row constant, which the level's softmax removes."""
        if self.seq2seq.root_query != "encoder":
            return None
        ordered = (self.node_vectors() if nodes is None else nodes)[0]
        parents = torch.zeros(states.shape[:-1], dtype=torch.long, device=states.device)
        return self.trie.child_log_mass(states.float(), ordered.float(), parents, 0)

    def code_loss(self, decoder_states: torch.Tensor, tokens: torch.Tensor, nodes: list[torch.Tensor] | None = None,
                  teacher: torch.Tensor | None = None, root: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        """Cross-entropy [n] of each target's code tuple (mean over levels); the per-level code distributions
        [n, size] (log) under each target's own prefix that it came from; and, given `teacher` (distributions
        over the items in code order [n, items], see `TensorTrie.child_masses`), the cross-entropy [n] of those
        distributions to soft targets: at each level the teacher's probability mass under each child of the
        target's prefix, renormalised (None without). `root`: as in `level_log_probs`."""
        self.codes_on(tokens.device)
        codes = tokens - torch.tensor(self.vocab.level_offsets, device=tokens.device)
        parents = self.trie.parents(codes)
        log_probs = [self.level_log_probs(decoder_states[:, level], parents[:, level], level, nodes, root)
                     for level in range(tokens.shape[1])]
        picked = torch.stack([lp.gather(-1, codes[:, level : level + 1]).squeeze(-1) for level, lp in enumerate(log_probs)], -1)
        if teacher is None:
            return -picked.mean(-1), log_probs, None
        soft = []
        for lp, mass in zip(log_probs, self.trie.child_masses(teacher, parents)):
            target = mass / mass.sum(-1, keepdim=True).clamp_min(torch.finfo(mass.dtype).tiny)
            soft.append(-torch.where(target > 0, target * lp, torch.zeros_like(lp)).sum(-1))  # 0 * -inf off the trie
        return -picked.mean(-1), log_probs, torch.stack(soft, -1).mean(-1)

    def item_logits(self, queries: torch.Tensor, ordered: torch.Tensor) -> torch.Tensor:
        """fp32 scores [n, items] of queries [n, d] against the item table in code order; in training with
        `bf16_item_scores`, the matmul in bf16."""
        if self.training and self.seq2seq.bf16_item_scores:
            return (queries.bfloat16() @ ordered.bfloat16().T).float()
        return (queries @ ordered.T).float()

    def every_position(self, history: torch.Tensor, users: torch.Tensor, target: torch.Tensor,
                       labels: torch.Tensor, live: tuple[torch.Tensor, torch.Tensor] | None = None,
                       distill: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One causal pass over rows: history [B, H], target [B, H] (the item after each position, -1 = none),
        labels [B, H, L] its code tokens. Returns, for the n positions with a target (row-major order), the
        code losses [n] (mean over the L levels: the sliding-window loss of that prefix), the dense head's
        full-softmax cross-entropies [n], and with `distill` the decoder's cross-entropy [n] to the dense head's
        (detached) distribution over each level's codes. Heads run on those positions only: most of a
        left-padded row is padding."""
        length = history.shape[1]
        hidden, valid = self.encode(history, users, live)
        offset = hidden.shape[1] - length  # a user token sits before the items
        rows, positions = (target >= 0).nonzero(as_tuple=True)
        # one decoder sequence per position t, cross-attending to its row's encoder states at positions <= t
        keys = torch.arange(hidden.shape[1], device=history.device)
        sees = (keys[None, :] <= positions[:, None] + offset) & valid[rows].bool()
        tokens = labels[rows, positions]  # [n, L]
        states = hidden[rows, positions + offset]  # [n, d]
        table = self.items.table()
        # the dense head scores the items in code order (a permutation: the same loss), so the teacher's mass
        # under each trie node is a contiguous run, and one log-softmax serves both the loss and the teacher
        self.codes_on(table.device)
        ordered = table.index_select(0, self.trie.code_order)
        nodes = self.node_vectors(table, ordered)
        log_probs = torch.log_softmax(self.item_logits(states, ordered), dim=-1)
        dense_loss = -log_probs.gather(1, self.trie.code_rank[target[rows, positions]].unsqueeze(1)).squeeze(1)
        encoder_root = self.seq2seq.root_query == "encoder"
        probs = log_probs.exp() if distill or encoder_root else None
        # the root level's node term: the dense head's own mass under each first-level code
        root = self.trie.root_log_mass(probs) if encoder_root else None
        teacher = probs.detach() if distill else None
        decoded = self.decoder_states(hidden[rows], sees, tokens, states)
        code_loss, _, soft = self.code_loss(decoded, tokens, nodes, teacher, root)
        return code_loss, dense_loss, soft

    def forward(self, history: torch.Tensor, users: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None = None,
                live: bool = False, align_temperature: float = 1.0, every_position: bool = False,
                distill: bool = False) -> dict[str, torch.Tensor]:
        """Losses of one batch (through `forward`, so DDP sees every step).

        Sliding window: history [B, H] -> one target per row, labels [B, L]. Every position (`every_position`,
        causal model): rows with target [B, H] and labels [B, H, L]; `rec` is the code loss over every real
        position and `dense` the dense head's full-softmax cross-entropy; with `distill` also `distill`, the
        code distributions' cross-entropy to the dense head's mass under each code. With `live` (a tokenizer
        that trains with the model), the inputs' semantic vectors come from the tokenizer with gradients and
        its RQ-VAE loss (`rq`) is added; in the sliding window also an alignment loss (`align`: cross-entropy from the
        recommender's per-level code distribution, held fixed, to the tokenizer's soft assignment of the target)."""
        losses: dict[str, torch.Tensor] = {}
        live_semantic = None
        if live:
            uniq = torch.unique(torch.cat([history.clamp_min(0).flatten(), target.clamp_min(0).flatten()]))
            tok = self.items.quantize(uniq)
            live_semantic = (uniq, tok.quantized)
            losses["rq"] = tok.loss
        if every_position:
            code_loss, dense_loss, soft = self.every_position(history, users, target, labels, live_semantic, distill)
            losses["rec"] = code_loss.mean()
            losses["dense"] = dense_loss.mean()
            if soft is not None:
                losses["distill"] = soft.mean()
            return losses
        hidden, valid = self.encode(history, users, live_semantic)
        decoded = self.decoder_states(hidden, valid, labels, hidden[:, -1])
        code_loss, log_probs, _ = self.code_loss(decoded, labels, root=self.root_term(hidden[:, -1]))
        losses["rec"] = code_loss.mean()
        if live:
            tokenizer = self.items.tokenizer
            soft = tokenizer.quantizer.soft_assignments(tokenizer.encode(self.items.item_text[target]), align_temperature)
            align = 0.0
            for level, log_q in enumerate(soft):  # the dedup suffix level has no soft assignment
                predicted = F.softmax(log_probs[level].detach(), dim=-1)  # over this level's codes
                align = align - (predicted * log_q).sum(-1).mean()
            losses["align"] = align
        return losses

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def generate(self, history: torch.Tensor, users: torch.Tensor | None = None, beam: int = 20, topk: int = 10,
                 encoded: tuple[torch.Tensor, torch.Tensor] | None = None, alpha: float = 1.0,
                 guide: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k distinct valid items [B, k] (-1 where fewer exist) and their sequence log-probabilities.
        `encoded`: this batch's `encode(history, users)`, when the caller already has it. `alpha` < 1 (a model
        with a dense head): the search is guided by the dense head, every prefix scored alpha * its sequence
        log-prob + (1 - alpha) * the dense head's log-mass under it (`guide`: `trie.node_log_mass` of the
        dense scores, when the caller already has it, e.g. for several mixes)."""
        self.codes_on(history.device)
        hidden, valid = self.encode(history, users) if encoded is None else encoded
        if alpha != 1.0 and guide is None:
            if not self.has_dense_head:
                raise GenrecError("a guided search (alpha < 1) needs a model with a dense head (objective.kind=every_position)")
            guide = self.trie.node_log_mass(self.dense_scores(history, users, None, (hidden, valid)))
        return constrained_beam_search(self.t5, self.vocab, self.trie, None, valid, beam=beam, topk=topk,
                                       encoder_hidden=hidden, prior=guide if alpha != 1.0 else None, alpha=alpha,
                                       start=self.decoder_start(hidden[:, -1]), scorer=self.beam_scorer(hidden[:, -1]))

    def beam_scorer(self, states: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor] | None:
        """The search's per-level scorer: `level_log_probs` with this batch's node vectors (and, with `root_query`
        "encoder", root term from the encoder states [B, d]) made once (None: the search's own T5 LM-head
        scoring, the same thing for a plain decoder)."""
        if self.node_proj is None:
            return None
        nodes = self.node_vectors()
        root = self.root_term(states.unsqueeze(1), nodes)  # the search starts with one beam per user
        return lambda hidden, parents, level: self.level_log_probs(hidden, parents, level, nodes, root)

    @torch.no_grad()
    def dense_scores(self, history: torch.Tensor, users: torch.Tensor | None = None, table: torch.Tensor | None = None,
                     encoded: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """[B, items] fp32 log-probabilities of the next item from the dense head (the last position's state
        against the item table; `table`: a precomputed `items.table()`; `encoded` as in `generate`)."""
        hidden, _ = self.encode(history, users) if encoded is None else encoded
        table = self.items.table() if table is None else table
        with torch.autocast(hidden.device.type, enabled=False):
            return torch.log_softmax(hidden[:, -1].float() @ table.float().T, dim=-1)

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
                  alpha: float = 1.0) -> list[dict[str, Any]]:
        """The next k items after a history of raw item ids (oldest first): item id, title, score (the
        sequence log-probability; with `alpha` < 1, the search guided by the dense head, as `generate`).
        `user`, a raw user id, matters only to a model trained with user tokens."""
        if k < 1:
            raise GenrecError(f"k must be at least 1, got {k}")
        if not history:
            raise GenrecError("recommend needs a history of at least one item id")
        was = self.training
        self.eval()
        device = self.item_codes.device
        index = [self.item_index(i) for i in history][-self.max_history:]
        users = torch.tensor([self.user_index(user)], device=device) if user is not None and self.user_ids else None
        items, scores = self.generate(torch.tensor([index], device=device), users, beam=max(beam, k), topk=k, alpha=alpha)
        self.train(was)
        return [{"item_id": self.item_ids[i], "title": self.titles[i], "score": float(s)}
                for i, s in zip(items[0].tolist(), scores[0].tolist()) if i >= 0]

    # ------------------------------------------------------------------ saving
    def config(self) -> dict[str, Any]:
        items = None
        if self.items is not None:
            tokenizer = self.items.tokenizer
            items = {"id_dim": 0 if self.items.ids is None else self.items.ids.embedding_dim,
                     "semantic_dim": self.items.semantic.shape[1],
                     "tokenizer": None if tokenizer is None else architecture(tokenizer.cfg),
                     "item_text_dim": None if tokenizer is None else self.items.item_text.shape[1]}
        return {"format": FORMAT, "num_items": self.num_items, "level_sizes": self.level_sizes,
                "max_history": self.max_history, "causal": self.causal, "seq2seq": asdict(self.seq2seq), "items": items}

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
            raise GenrecError(f"{config_path}: saved model format {cfg.get('format')!r}, this genrec reads {FORMAT}")
        num_items, items = cfg["num_items"], None  # the parameters are placeholders until load_model
        if cfg["items"] is not None:
            spec = cfg["items"]
            semantic = torch.zeros(num_items, spec["semantic_dim"])
            d_model = cfg["seq2seq"]["d_model"]
            if spec["tokenizer"] is None:
                items = ItemEmbedding(semantic, spec["id_dim"], d_model)
            else:
                tokenizer = SemanticTokenizer(spec["item_text_dim"], TokenizerConfig(**spec["tokenizer"]))
                text = load_file(str(folder / "item_text.safetensors"))["item_text"]
                items = ItemEmbedding(semantic, spec["id_dim"], d_model, tokenizer, text)
        catalog = json.loads((folder / "items.json").read_text())
        with safe_open(str(folder / "model.safetensors"), "pt") as weights:
            codes = weights.get_tensor("item_codes")
        model = cls(codes, cfg["level_sizes"],
                    Seq2SeqConfig(**cfg["seq2seq"]), cfg["max_history"], items, catalog["item_ids"], catalog["titles"],
                    cfg.get("causal", False), catalog.get("user_ids"))
        load_model(model, str(folder / "model.safetensors"), device="cpu")
        return model.to(device).eval()
