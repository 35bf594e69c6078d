"""CTR metrics over all rows of a split (scikit-learn): AUC and logloss."""
from __future__ import annotations

import numpy as np


def auc_logloss(labels: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    from scipy.special import expit  # the sigmoid without exp's overflow on large logits
    from sklearn.metrics import log_loss, roc_auc_score

    labels, logits = np.asarray(labels, dtype=np.float64), np.asarray(logits, dtype=np.float64)
    if not np.isfinite(logits).all():
        bad = np.flatnonzero(~np.isfinite(logits))
        raise FloatingPointError(f"{len(bad)} non-finite CTR score(s), first at row(s) {bad[:5].tolist()}")
    if len(np.unique(labels)) < 2:
        raise ValueError("AUC needs both positive and negative rows")
    probs = expit(logits)
    return {"auc": float(roc_auc_score(labels, logits)), "logloss": float(log_loss(labels, np.clip(probs, 1e-7, 1 - 1e-7)))}
