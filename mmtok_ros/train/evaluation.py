"""Scoring a trained model: predictions, the decision threshold, held-out evaluation.

The threshold is chosen on training windows (never on held-out ones); a result is scored by
the definitions of :mod:`mmtok_ros.train.metrics`, and ``rescore`` switches a stored result
between the proactive and the legacy false-alarm counts without predicting again.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..constants import DEFAULT_DECISION_THRESHOLD
from ..model import MultiModalTransformer
from .dataset import WindowDataset
from .metrics import DEFAULT_MAX_FALSE_ALARMS_PER_MIN, persistence_alarm, score_predictions


def accuracy_optimal_threshold(p_blocked: np.ndarray, labels: np.ndarray,
                               weights: np.ndarray | None = None) -> tuple[float, float]:
    """(threshold, weighted accuracy): the grid threshold 0.01 ... 0.99 that classifies the
    windows best (predicted blocked when p >= threshold); among equally good thresholds the
    middle one, so that a plateau does not push the decision to its edge."""
    weights = np.ones(len(labels)) if weights is None else np.asarray(weights, float)
    grid = np.round(np.arange(0.01, 1.0, 0.01), 2)
    correct = ((p_blocked[None, :] >= grid[:, None]) == (labels[None, :] == 1))   # (G, W)
    accuracy = (correct * weights).sum(1) / weights.sum()
    best = np.flatnonzero(accuracy >= accuracy.max() - 1e-12)
    i = best[len(best) // 2]
    return float(grid[i]), float(accuracy[i])


def training_window_sample(data: WindowDataset, *, max_windows: int, radius: int = 3,
                           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rows, weights): every window near a label change and a random sample of the steady
    ones, weighted back to their share, so that at most ``max_windows`` windows (plus the
    near ones) cost an inference pass."""
    rows, weights = np.arange(len(data)), np.ones(len(data))
    if len(data) > max_windows:
        near = data.near_transition(radius)
        steady = np.flatnonzero(~near)
        n_steady = max(1, min(len(steady), max_windows - int(near.sum())))
        keep = np.random.default_rng(seed).choice(steady, size=n_steady, replace=False)
        rows = np.concatenate([np.flatnonzero(near), keep])
        weights = np.concatenate([np.ones(int(near.sum())), np.full(n_steady,
                                                                     len(steady) / n_steady)])
    return rows, weights


def persistence_prediction(data: WindowDataset) -> np.ndarray:
    """(W,) bool in ``data``'s row order: the link is blocked now (the previous window of the
    scenario has a blocked next frame), persistence's prediction of any horizon's label."""
    order = np.lexsort((data.newest_stamp_ns, data.groups))
    out = np.zeros(len(data), bool)
    out[order] = persistence_alarm(data.next_frame_labels()[order], data.groups[order])
    return out


def training_window_scores(model: MultiModalTransformer, data: WindowDataset, *,
                           max_windows: int, choose: bool = True, radius: int = 3,
                           seed: int = 0) -> dict:
    """The model on (training) windows beside persistence and always-clear, all weighted
    accuracies on the sample of ``training_window_sample``; ``choose``: the decision threshold
    is the one that classifies the sample best, else the default."""
    rows, weights = training_window_sample(data, max_windows=max_windows, radius=radius,
                                           seed=seed)
    sub = data.subset(rows)
    labels = sub.labels == 1
    p_blocked = torch.sigmoid(torch.from_numpy(predict(model, sub)[:, 0])).numpy()

    def accuracy(pred):
        return float(((pred == labels) * weights).sum() / weights.sum())

    if choose:
        threshold, _ = accuracy_optimal_threshold(p_blocked, sub.labels, weights)
    else:
        threshold = DEFAULT_DECISION_THRESHOLD
    return {'threshold': threshold, 'accuracy': accuracy(p_blocked >= threshold),
            'accuracy_at_default_threshold': accuracy(p_blocked >= DEFAULT_DECISION_THRESHOLD),
            'persistence_accuracy': accuracy(persistence_prediction(data)[rows]),
            'always_clear_accuracy': accuracy(np.zeros(len(rows), bool)),
            'n_windows': int(len(rows)), 'of_windows': int(len(data))}


def choose_threshold(model: MultiModalTransformer, data: WindowDataset, *, max_windows: int,
                     radius: int = 3, seed: int = 0) -> dict:
    """The decision threshold chosen on (training) windows (``training_window_scores``)."""
    s = training_window_scores(model, data, max_windows=max_windows, radius=radius, seed=seed)
    return {'value': s['threshold'], 'criterion': 'accuracy on training windows',
            'train_accuracy': s['accuracy'],
            'train_accuracy_at_0.5': s['accuracy_at_default_threshold'],
            'n_windows': s['n_windows'], 'of_windows': s['of_windows']}


@torch.no_grad()
def predict(model: MultiModalTransformer, data: WindowDataset, *, batch_size: int = 16) -> np.ndarray:
    """Logits (W, n_classes) for every window of ``data``."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    for i in range(0, len(data), batch_size):
        batch, _ = data.batch(np.arange(i, min(i + batch_size, len(data))), device)
        out.append(model(batch).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.cfg.n_classes))


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion. Windows of one scenario overlap in four of
    five frames, so they are not independent: read it as a lower bound on the uncertainty."""
    if n == 0:
        return float('nan'), float('nan')
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def onset_scores(data: WindowDataset, pred: np.ndarray) -> dict:
    """What a proactive handover needs, beyond accuracy (which persistence already wins when
    blockages start abruptly): of the windows whose next frame is the FIRST blocked one
    (the previous window of the same scenario was labelled clear), how many were predicted
    blocked, i.e. the blockage was announced one frame ahead."""
    order, onset = data.onset_order()
    n = int(onset.sum())
    hits = int((pred[order][onset] == 1).sum())
    return {'onsets': n, 'onsets_predicted': hits,
            'onset_recall': hits / n if n else float('nan')}


def evaluate(model: MultiModalTransformer, data: WindowDataset, *, batch_size: int = 16,
             threshold: float = DEFAULT_DECISION_THRESHOLD, horizon: int = 1,
             max_false_alarms_per_min: float = DEFAULT_MAX_FALSE_ALARMS_PER_MIN,
             metrics: str = 'proactive', keep_predictions: bool = False) -> dict:
    """Accuracy (and blocked-class precision/recall, or top-k for beams) on ``data``; a window
    is predicted blocked when p_blocked >= ``threshold`` (the node's ``blocked_threshold``).

    Link status also gets the metrics of ``metrics.py`` (AUROC, onset recall ahead, lead time,
    false alarms by the ``metrics`` definition and late all-clears per minute of clear link,
    onset recall at a fixed false-alarm rate), the node's decision (model OR reactive floor)
    and the persistence and always-clear baselines. ``horizon`` H > 1: accuracy, precision,
    recall and AUROC are against 'blocked within the next H frames'. ``keep_predictions``:
    also return the time-ordered p_blocked, labels and groups (``predictions``), from which
    ``rescore`` computes the scores again under another definition."""
    logits = predict(model, data, batch_size=batch_size)
    labels = data.labels
    if logits.shape[1] == 1:
        p_blocked = torch.sigmoid(torch.from_numpy(logits[:, 0])).numpy()  # as node, emulate
        order, sorted_labels, groups, _ = data._in_time_order()
        extra = score_predictions(p_blocked[order], sorted_labels, groups, threshold=threshold,
                                  horizon=horizon, definition=metrics,
                                  max_false_alarms_per_min=max_false_alarms_per_min)
        if keep_predictions:
            extra['predictions'] = {'p_blocked': np.round(p_blocked[order], 6).tolist(),
                                    'labels': sorted_labels.tolist(), 'groups': groups.tolist(),
                                    'max_false_alarms_per_min': max_false_alarms_per_min}
        target = horizon_labels_in_row_order(data, horizon)
        return {**_binary_scores(p_blocked >= threshold, target), 'threshold': threshold,
                **onset_scores(data, (p_blocked >= threshold).astype(np.float32)), **extra}
    ranked = np.argsort(-logits, axis=1)
    result = {'n': int(len(labels))}
    for k in (1, 3, 5):
        result[f'top{k}'] = float((ranked[:, :k] == labels[:, None]).any(1).mean())
    result['accuracy'] = result['top1']
    return result


def horizon_labels_in_row_order(data: WindowDataset, horizon: int) -> np.ndarray:
    from .metrics import horizon_labels
    order, sorted_labels, groups, _ = data._in_time_order()
    labels = np.empty_like(sorted_labels)
    labels[order] = horizon_labels(sorted_labels, groups, horizon)
    return labels


def _binary_scores(alarm: np.ndarray, labels: np.ndarray) -> dict:
    pred = alarm.astype(np.float32)
    tp = float(((pred == 1) & (labels == 1)).sum())
    correct = int((pred == labels).sum())
    return {'n': int(len(labels)),
            'accuracy': correct / len(labels) if len(labels) else float('nan'),
            'accuracy_ci95_wilson': wilson_interval(correct, len(labels)),
            'precision_blocked': tp / max(1.0, float(pred.sum())),
            'recall_blocked': tp / max(1.0, float(labels.sum())),
            'blocked_fraction': float(labels.mean()) if len(labels) else float('nan')}


def rescore(result: dict, metrics: str) -> dict | None:
    """``result`` of ``evaluate(keep_predictions=True)`` scored under the false-alarm
    definition ``metrics``; None when it carries no predictions."""
    kept = result.get('predictions')
    if kept is None:
        return None
    if result.get('false_alarm_definition', 'legacy') == metrics:
        return result
    scores = score_predictions(np.asarray(kept['p_blocked']), np.asarray(kept['labels']),
                               np.asarray(kept['groups']), threshold=result['threshold'],
                               horizon=result['label_horizon_frames'], definition=metrics,
                               max_false_alarms_per_min=kept['max_false_alarms_per_min'])
    return {**result, **scores}


__all__ = ['accuracy_optimal_threshold', 'choose_threshold', 'evaluate', 'horizon_labels_in_row_order', 'onset_scores', 'persistence_prediction', 'predict', 'rescore', 'training_window_sample', 'training_window_scores', 'wilson_interval']
