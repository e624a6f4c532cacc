"""Beam-prediction scores: top-k accuracy and DeepSense's distance-based accuracy (DBA)."""
from __future__ import annotations

import numpy as np


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of windows whose label is among the k highest logits."""
    ranked = np.argsort(-logits, axis=1)[:, :k]
    return float((ranked == labels[:, None]).any(axis=1).mean()) if len(labels) else float('nan')


def distance_based_accuracy(logits: np.ndarray, labels: np.ndarray, *, top: int = 3,
                            delta: int = 5) -> float:
    """DeepSense 6G's DBA score: the mean over k = 1..top of
    Y_k = 1 - mean_n min_{k' <= k} min(|beam_{n,k'} - label_n| / delta, 1).

    A prediction ``delta`` or more beams away counts as fully wrong; a neighbouring beam, which
    still delivers most of the power, counts as nearly right.
    """
    if not len(labels):
        return float('nan')
    ranked = np.argsort(-logits, axis=1)[:, :top]                          # (W, top)
    error = np.minimum(np.abs(ranked - labels[:, None]) / delta, 1.0)      # (W, top)
    best_so_far = np.minimum.accumulate(error, axis=1)                     # min over k' <= k
    return float(np.mean(1.0 - best_so_far.mean(axis=0)))


def beam_scores(logits: np.ndarray, labels: np.ndarray) -> dict:
    labels = np.asarray(labels, dtype=np.int64)
    return {'n': int(len(labels)), **{f'top{k}': top_k_accuracy(logits, labels, k)
                                       for k in (1, 3, 5)},
            'dba': distance_based_accuracy(logits, labels)}
