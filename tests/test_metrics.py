import math

import numpy as np
import pytest
import torch

from genrec.data.splits import Split
from genrec.evaluation.ranking import metrics_from_ranks, target_ranks_from_scores, target_ranks_from_topk
from genrec.experiments.harness import popularity_metrics


def test_hand_computed_recall_and_ndcg():
    topk = torch.tensor([[5, 3, 9, 1, 0, 2, 4, 6, 7, 8],   # target 3 at rank 1
                         [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],  # target 11 missing
                         [4, 0, 0, 0, 0, 0, 0, 0, 0, 0],   # target 4 at rank 0
                         [0, 1, 2, 3, 4, 5, 6, 7, 9, 8]])  # target 8 at rank 9
    targets = torch.tensor([3, 11, 4, 8])
    ranks = target_ranks_from_topk(topk, targets)
    assert ranks.tolist() == [1, 10, 0, 9]
    m = metrics_from_ranks(ranks)
    assert m["recall@5"] == pytest.approx(2 / 4)
    assert m["recall@10"] == pytest.approx(3 / 4)
    assert m["ndcg@5"] == pytest.approx((1 / math.log2(3) + 1) / 4)
    assert m["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 + 1 / math.log2(11)) / 4)


def test_score_ranking_breaks_ties_by_index_not_optimistically():
    scores = torch.tensor([[0.1, 0.5, 0.5, 0.2]])
    assert target_ranks_from_scores(scores, torch.tensor([1])).tolist() == [0]
    assert target_ranks_from_scores(scores, torch.tensor([2])).tolist() == [1]
    assert target_ranks_from_scores(scores, torch.tensor([0])).tolist() == [3]


def test_nan_scores_raise_instead_of_ranking_first():
    scores = torch.tensor([[float("nan"), float("nan"), float("nan")]])
    with pytest.raises(FloatingPointError, match="non-finite"):
        target_ranks_from_scores(scores, torch.tensor([0]))


def test_popularity_baseline():
    counts = np.array([1, 10, 5, 0])
    split = Split(np.zeros((3, 2), np.int64), np.array([1, 2, 3]), np.arange(3))
    m = metrics_from_ranks(torch.tensor([0, 1, 3]))
    assert popularity_metrics(counts, split) == pytest.approx(m)
