"""A prefix trie of valid code tuples stored as tensors, so constraint masking is one gather."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class TensorTrie:
    """`children[node, code]` is the child node id or -1; `item[node]` maps leaf nodes to item indices.

    Node 0 is the root; the other nodes are numbered level by level (`level_ranges[l]`: the ids of the
    children chosen at level l). Only internal nodes have rows in `children` (leaves are numbered after
    them), so memory is (#prefixes of length < L) x max level size.
    """

    def __init__(self, codes: np.ndarray | torch.Tensor, level_sizes: list[int]):
        codes = np.asarray(codes.cpu() if isinstance(codes, torch.Tensor) else codes, dtype=np.int64)
        n, depth = codes.shape
        if len(np.unique(codes, axis=0)) != n:
            raise ValueError("code tuples must be unique (resolve collisions before building the trie)")
        self.depth, self.level_sizes = depth, list(level_sizes)
        width = max(level_sizes)
        node_of: dict[tuple, int] = {(): 0}
        starts = []  # numbered level by level, the children chosen at level l fill one id range
        for length in range(1, depth):  # internal nodes
            starts.append(len(node_of))
            for prefix in map(tuple, np.unique(codes[:, :length], axis=0)):
                node_of[prefix] = len(node_of)
        num_internal = len(node_of)
        starts.append(num_internal)  # the leaves
        self.level_ranges = list(zip(starts, starts[1:] + [num_internal + n]))
        children = np.full((num_internal, width), -1, dtype=np.int64)
        item = np.full(num_internal + n, -1, dtype=np.int64)
        for length in range(1, depth):
            for prefix in map(tuple, np.unique(codes[:, :length], axis=0)):
                children[node_of[prefix[:-1]], prefix[-1]] = node_of[prefix]
        for i, row in enumerate(codes):
            leaf = num_internal + i
            children[node_of[tuple(row[:-1])], row[-1]] = leaf
            item[leaf] = i
        self.children = torch.from_numpy(children)
        self.child_valid = self.children >= 0  # bool: a search's per-step mask reads 8x less memory than `children`
        self.item = torch.from_numpy(item)
        # [depth, n]: the node each item's first l+1 codes lead to (its leaf at the last level)
        prefix = np.zeros((depth, n), dtype=np.int64)
        for level in range(depth):
            prefix[level] = children[prefix[level - 1] if level else np.zeros(n, dtype=np.int64), codes[:, level]]
        self.prefix_nodes = torch.from_numpy(prefix)
        # items sorted by code tuple: every node's items are then the run [run_start, run_end) of that order
        self.code_order = torch.from_numpy(np.lexsort(codes.T[::-1]).copy())
        self.code_rank = torch.empty_like(self.code_order)  # item index -> its place in code order
        self.code_rank[self.code_order] = torch.arange(n)
        self.order_codes = torch.from_numpy(codes[self.code_order.numpy()])  # [n, depth]: the codes in that order
        run_start, run_end = np.zeros(num_internal + n, np.int64), np.full(num_internal + n, n, np.int64)  # root: all
        for level in range(depth):
            in_order = prefix[level][self.code_order.numpy()]
            first = np.flatnonzero(np.diff(in_order, prepend=-1))  # where a new node's run begins
            run_start[in_order[first]], run_end[in_order[first]] = first, np.append(first[1:], n)
        self.run_start, self.run_end = torch.from_numpy(run_start), torch.from_numpy(run_end)

    @property
    def num_nodes(self) -> int:
        return len(self.item)

    def node_log_mass(self, log_probs: torch.Tensor) -> torch.Tensor:
        """[B, nodes]: for a distribution over items [B, n], the log of the probability mass under every node
        (a leaf's mass is its item's probability). Node ids are unique across levels, so one tensor holds
        every level; a guided search computes it once per batch, whatever the number of mixes."""
        probs = log_probs.float().exp()
        mass = probs.new_zeros(probs.shape[0], self.num_nodes)
        for level in range(self.depth):
            mass.index_add_(1, self.prefix_nodes[level], probs)
        return mass.clamp_min(torch.finfo(torch.float32).tiny).log()

    def allowed_nodes(self, allowed: torch.Tensor) -> torch.Tensor:
        """[B, nodes] bool: for allowed items [B, items] (`generation.rules`), the nodes with an allowed item under
        them (the root when any item is allowed); a search that steps only into these never reaches an excluded item
        and never strands a beam where nothing allowed remains."""
        count = allowed.new_zeros(allowed.shape[0], self.num_nodes, dtype=torch.int32)
        ones = allowed.to(torch.int32)
        for level in range(self.depth):
            count.index_add_(1, self.prefix_nodes[level], ones)
        count[:, 0] = ones.sum(1)
        return count > 0

    def child_masses(self, probs: torch.Tensor, parents: torch.Tensor) -> list[torch.Tensor]:
        """Per level l, [n, level size]: for distributions over the items in code order `probs` [n, items]
        (column j is item `code_order[j]`), the probability mass under each child of `parents[:, l]` (0 where a
        code is not a valid child). One running sum serves every node: a node's items are a contiguous run in
        that order, and a caller that scores items in that order gathers no [n, items] tensor."""
        sums = probs.cumsum(-1)  # fp32: a mass is off by at most ~1e-6
        masses = []
        for level, size in enumerate(self.level_sizes):
            children = self.children[parents[:, level], :size]
            valid = children >= 0
            nodes = children.clamp_min(0)
            start, end = self.run_start[nodes], self.run_end[nodes]
            before = sums.gather(1, (start - 1).clamp_min(0)) * (start > 0)
            masses.append(((sums.gather(1, end - 1) - before).clamp_min(0)) * valid)
        return masses

    def root_log_mass(self, probs: torch.Tensor) -> torch.Tensor:
        """[n, first level size]: the log of each first-level code's mass under distributions over the items in
        code order `probs` [n, items] (-inf for a code no item has), with gradients (`child_masses` is the
        detached running-sum version for every level). A code's items are one run, so it is one index_add."""
        sums = probs.new_zeros(len(probs), self.level_sizes[0]).index_add_(1, self.order_codes[:, 0], probs)
        return _log_or_minus_inf(sums)

    def child_log_mass(self, queries: torch.Tensor, vectors: torch.Tensor, parents: torch.Tensor, level: int,
                       rows_per_chunk: int = 64, item_scores: torch.Tensor | None = None,
                       grouped: bool | None = None) -> torch.Tensor:
        """[..., level size]: for queries [..., d] and per-item vectors in code order `vectors` [items, d], the
        log of sum(exp(query . item)) over the items under each child of `parents` [...] at `level` (-inf where a
        code is not a valid child). Chained over a path, the per-level log-softmaxes of these masses give the
        items' full-softmax log-probabilities, so a decoder scoring codes this way is a factorised dense head.
        Below the root a parent's items are one run in code order (from one to a few hundred items), so only
        those are scored: rows sorted by run length, `rows_per_chunk` at a time, each chunk padded to its own
        longest run (padding every row to the longest would gather ~3x more vectors on Beauty's codes).
        `item_scores` [queries.shape[0], items] (code order): a score added to every item, one row for each group of
        queries along the first dimension (a user's beams); -inf leaves an item out. `grouped` (default: without gradients,
        when rows share parents, 8 or more a parent on average, as a batch's beams do just below the root): one matmul per
        distinct parent against its run, which gathers no [rows, run, d] copy of the vectors (`_grouped_log_mass`)."""
        size, dim = self.level_sizes[level], queries.shape[-1]
        flat, nodes = queries.reshape(-1, dim), parents.reshape(-1)
        owner = None if item_scores is None else torch.arange(len(flat), device=flat.device) // (len(flat) // len(item_scores))
        if level == 0:  # every parent is the root: all items, one matmul; each code's items are one run
            scores = flat @ vectors.T
            if item_scores is not None:
                scores = scores + item_scores[owner].to(scores.dtype)
            top = _finite_max(scores)  # held constant: the gradient is the same
            sums = scores.new_zeros(len(flat), size).index_add_(1, self.order_codes[:, 0], (scores - top).exp_())
            return _log_or_minus_inf(sums).add_(top).view(*queries.shape[:-1], size)
        start, end = self.run_start[nodes], self.run_end[nodes]
        first, last = self.level_ranges[level - 1]
        end = torch.where((nodes >= first) & (nodes < last), end, start + 1)  # a dead beam parked at the root
        if grouped is None:  # a search's batch (training keeps the gathered path its speed was measured with)
            grouped = not torch.is_grad_enabled() and len(torch.unique(nodes)) * 8 <= len(nodes)
        if grouped:
            return self._grouped_log_mass(flat, vectors, nodes, start, end, level, item_scores, owner).view(
                *queries.shape[:-1], size)
        order = torch.argsort(end - start)
        chunks = order.split(rows_per_chunk)
        wheres, insides = [], []
        for rows in chunks:
            width = int((end[rows] - start[rows]).max())
            where = start[rows, None] + torch.arange(width, device=nodes.device)
            insides.append(where < end[rows, None])
            wheres.append(where.clamp_max(len(vectors) - 1))
        # one gather for every chunk: each gather's backward adds a dense [items, d] gradient
        gathered = F.embedding(torch.cat([w.flatten() for w in wheres]), vectors).split([w.numel() for w in wheres])
        out = None
        for rows, where, inside, items in zip(chunks, wheres, insides, gathered):
            scores = torch.bmm(items.view(*where.shape, dim), flat[rows].unsqueeze(-1)).squeeze(-1)
            if item_scores is not None:  # one flat gather: [rows, width] positions in the [users, items] scores
                scores = scores + item_scores.reshape(-1)[owner[rows, None] * item_scores.shape[1] + where].to(scores.dtype)
            mass = _scatter_log_sum_exp(scores.masked_fill(~inside, float("-inf")), self.order_codes[where, level], size)
            out = mass.new_empty(len(flat), size) if out is None else out
            out.index_copy_(0, rows, mass)  # each chunk's rows in their place (autograd follows in-place copies)
        return out.view(*queries.shape[:-1], size)

    def _grouped_log_mass(self, flat: torch.Tensor, vectors: torch.Tensor, nodes: torch.Tensor, start: torch.Tensor,
                          end: torch.Tensor, level: int, item_scores: torch.Tensor | None,
                          owner: torch.Tensor | None) -> torch.Tensor:
        """`child_log_mass` below the root, one distinct parent at a time: its rows' queries against its run of
        vectors in one matmul, each code's mass summed by one index_add over the run's codes."""
        size = self.level_sizes[level]
        parents, inverse, counts = torch.unique(nodes, return_inverse=True, return_counts=True)
        order = torch.argsort(inverse, stable=True)
        # each parent's run: every row of a parent holds the same bounds, so any of them may be the one written
        bounds = torch.stack([start.new_empty(len(parents)).scatter_(0, inverse, start),
                              end.new_empty(len(parents)).scatter_(0, inverse, end)], 1).tolist()
        out = None
        for rows, (a, b) in zip(order.split(counts.tolist()), bounds):
            scores = flat[rows] @ vectors[a:b].T
            if item_scores is not None:
                scores = scores + item_scores[owner[rows], a:b].to(scores.dtype)
            top = _finite_max(scores)
            sums = scores.new_zeros(len(rows), size).index_add_(1, self.order_codes[a:b, level], (scores - top).exp_())
            mass = _log_or_minus_inf(sums).add_(top)
            out = mass.new_empty(len(flat), size) if out is None else out  # the scores' dtype (bf16 under autocast)
            out.index_copy_(0, rows, mass)
        return out

    def parents(self, codes: torch.Tensor) -> torch.Tensor:
        """[..., depth] code tuples (of real items) -> [..., depth]: the node each level's code is chosen under."""
        nodes = [torch.zeros_like(codes[..., 0])]
        for level in range(self.depth - 1):
            nodes.append(self.step(nodes[-1], codes[..., level]))
        return torch.stack(nodes, dim=-1)

    def to(self, device: torch.device | str) -> "TensorTrie":
        self.children, self.item = self.children.to(device), self.item.to(device)
        self.child_valid = self.child_valid.to(device)
        self.prefix_nodes = self.prefix_nodes.to(device)
        self.code_order, self.code_rank = self.code_order.to(device), self.code_rank.to(device)
        self.run_start, self.run_end = self.run_start.to(device), self.run_end.to(device)
        self.order_codes = self.order_codes.to(device)
        return self

    def valid_mask(self, nodes: torch.Tensor, level: int) -> torch.Tensor:
        """[..., level_size] bool: which codes extend each node to a real prefix."""
        return self.child_valid[nodes, : self.level_sizes[level]]

    def step(self, nodes: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return self.children[nodes, codes]


def _finite_max(scores: torch.Tensor) -> torch.Tensor:
    """Each row's largest score (detached) as the shift of a log-sum-exp; 0 for a row whose items are all left out
    (-inf), so the sum is an empty 0 and not NaN."""
    top = scores.amax(-1, keepdim=True).detach()
    return top.masked_fill(torch.isinf(top), 0.0)


def _scatter_log_sum_exp(scores: torch.Tensor, codes: torch.Tensor, size: int) -> torch.Tensor:
    """[R, size]: log of sum(exp(scores)) over the entries of each row [R, W] that carry each code; -inf for a
    code no entry carries. Shifted by the row's maximum (held constant: the gradient is the same)."""
    top = _finite_max(scores)
    return _log_or_minus_inf(scores.new_zeros(scores.shape[0], size).scatter_add_(1, codes, (scores - top).exp_())).add_(top)


def _log_or_minus_inf(sums: torch.Tensor) -> torch.Tensor:
    """log(sums), -inf where a sum is 0 without the infinite gradient log(0) would send into its entries."""
    empty = sums == 0
    return sums.masked_fill(empty, 1.0).log().masked_fill_(empty, float("-inf"))


def python_trie(codes: np.ndarray) -> dict:
    """Nested dicts {code: {...}}, leaves {code: item}; the plain structure the reference search and
    HF's `prefix_allowed_tokens_fn` use."""
    root: dict = {}
    for i, row in enumerate(np.asarray(codes)):
        node = root
        for c in row[:-1]:
            node = node.setdefault(int(c), {})
        node[int(row[-1])] = i
    return root
