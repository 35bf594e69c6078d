"""Diagnostics of semantic codes: usage, uniqueness, collisions, NMI, spectrum and field correlation."""
from __future__ import annotations

from collections import Counter

import numpy as np


def level_usage(codes: np.ndarray, codebook_size: int) -> list[float]:
    """Fraction of each level's codewords used by at least one item."""
    codes = np.asarray(codes)
    return [len(np.unique(codes[:, level])) / codebook_size for level in range(codes.shape[1])]


def unique_rate(codes: np.ndarray) -> float:
    """Distinct code tuples / items: 1.0 means no two items collide."""
    codes = np.asarray(codes)
    return len(np.unique(codes, axis=0)) / len(codes)


def collision_group_sizes(codes: np.ndarray) -> dict[int, int]:
    """{group size: number of tuples shared by that many items}, sizes >= 2 only."""
    _, counts = np.unique(np.asarray(codes), axis=0, return_counts=True)
    return dict(sorted(Counter(int(c) for c in counts if c > 1).items()))


def nmi(codes: np.ndarray, labels: list) -> float:
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(labels, np.asarray(codes)))


def singular_spectrum(vectors: np.ndarray) -> np.ndarray:
    """Singular values of the centred representation, normalised to sum to 1 (a collapse shows as a steep drop)."""
    x = np.asarray(vectors, dtype=np.float64)
    s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    return s / s.sum()


def effective_rank(vectors: np.ndarray) -> float:
    p = singular_spectrum(vectors)
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def field_correlation(codes: np.ndarray) -> np.ndarray:
    """Pearson correlation between code fields (levels or parallel codebooks)."""
    c = np.asarray(codes, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(c, rowvar=False)
    return np.nan_to_num(np.atleast_2d(corr))


def code_report(codes: np.ndarray, codebook_size: int, categories: list | None = None) -> dict:
    report = {
        "level_usage": [round(u, 4) for u in level_usage(codes, codebook_size)],
        "unique_rate_before_dedup": round(unique_rate(codes), 4),
        "collision_groups": collision_group_sizes(codes),
        "max_collision_group": max(collision_group_sizes(codes) or {1: 0}),
    }
    if categories is not None:
        report["nmi_level1_vs_category"] = round(nmi(np.asarray(codes)[:, 0], categories), 4)
    return report
