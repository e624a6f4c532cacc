"""Metrics of a blockage predictor that test prediction, not persistence (issue 16, item 4).

Accuracy rewards persistence when blockages start abruptly, so every table also reports:

* **AUROC** of p_blocked against the label (rank statistic, ties count one half);
* **onset recall k frames ahead**: of the blockage onsets (the first window whose next frame
  is blocked, after a clear window of its scenario), the share the model had announced in
  each of the k windows up to and including the onset window, i.e. an alarm raised at least
  k frames (k x 300 ms) before the first blocked frame and held until then;
* **lead time**: per onset, how long the alarm run that reaches the onset had been on
  (0 for a missed onset), in frames and ms; the median over onsets;
* **false alarms per minute of clear link**: runs of alarms on clear windows that do not run
  into a blockage onset, per minute of windows labelled clear;
* **onset recall at a fixed false-alarm rate**: the lowest threshold whose false-alarm rate is
  at most ``max_false_alarms_per_min``, and the onset recall there (a threshold-free
  comparison of models, as a ROC curve's operating point);
* the **persistence** (blocked next iff blocked now) and **always clear** baselines.

Everything works on windows sorted by scenario, then time (``WindowDataset._in_time_order``);
``labels`` are always the next-frame labels (Eq. 8), whatever horizon a model was trained on.
"""
from __future__ import annotations

import numpy as np

FRAME_PERIOD_MS = 300.0            # the testbed's frame period (Section IV-B)
ONSET_FRAMES_AHEAD = (1, 2, 3, 5)  # 0.3, 0.6, 0.9, 1.5 s
DEFAULT_MAX_FALSE_ALARMS_PER_MIN = 1.0


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n_pos n_neg)); NaN with one class only."""
    scores, labels = np.asarray(scores, float), np.asarray(labels) == 1
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float('nan')
    order = np.argsort(scores, kind='mergesort')
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):                      # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def horizon_labels(labels: np.ndarray, groups: np.ndarray, horizon: int) -> np.ndarray:
    """Time-ordered next-frame labels -> 'blocked within the next ``horizon`` frames':
    window t is positive when any of the windows t ... t+H-1 of its scenario is (H = 1: the
    labels themselves). Near a scenario's end the horizon is cut at its last window."""
    if horizon < 1:
        raise ValueError(f'the label horizon must be >= 1 frame, got {horizon}')
    labels = np.asarray(labels, np.float32)
    out = labels.copy()
    for shift in range(1, horizon):
        ahead = np.zeros_like(labels)
        ahead[:-shift] = labels[shift:]
        same = np.zeros(len(labels), bool)
        same[:-shift] = groups[shift:] == groups[:-shift]
        out = np.maximum(out, np.where(same, ahead, 0.0))
    return out


def _starts(groups: np.ndarray) -> np.ndarray:
    first = np.ones(len(groups), bool)
    first[1:] = groups[1:] != groups[:-1]
    return first


def onset_indices(labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Time-ordered rows that are blockage onsets (blocked after a clear row of the same
    scenario)."""
    labels = np.asarray(labels)
    prev = np.r_[1.0, labels[:-1]]
    return np.flatnonzero(~_starts(groups) & (labels == 1) & (prev == 0))


def lead_frames(alarm: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per onset, the length of the run of alarms that ends at the onset window (0: missed),
    counted back over clear windows of the same scenario."""
    alarm, labels = np.asarray(alarm, bool), np.asarray(labels)
    starts = _starts(groups)
    leads = []
    for i in onset_indices(labels, groups):
        n = 0
        j = i
        while j >= 0 and alarm[j] and (j == i or labels[j] == 0):
            n += 1
            if starts[j]:
                break
            j -= 1
        leads.append(n)
    return np.array(leads, dtype=np.int64)


def false_alarms(alarm: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> int:
    """Runs of alarms on clear windows that do not run into an onset (an alarm run that goes
    on until the blockage is an early warning, not a false alarm)."""
    alarm, labels = np.asarray(alarm, bool), np.asarray(labels)
    starts = _starts(groups)
    count, i, n = 0, 0, len(alarm)
    while i < n:
        if alarm[i] and labels[i] == 0:
            j = i
            while j + 1 < n and not starts[j + 1] and alarm[j + 1] and labels[j + 1] == 0:
                j += 1
            runs_into_onset = j + 1 < n and not starts[j + 1] and labels[j + 1] == 1
            count += 0 if runs_into_onset else 1
            i = j + 1
        else:
            i += 1
    return count


def clear_minutes(labels: np.ndarray, period_ms: float = FRAME_PERIOD_MS) -> float:
    return float((np.asarray(labels) == 0).sum()) * period_ms / 60_000.0


def alarm_scores(alarm: np.ndarray, labels: np.ndarray, groups: np.ndarray, *,
                 period_ms: float = FRAME_PERIOD_MS) -> dict:
    """Onset recall 1/2/3/5 frames ahead, lead times and false alarms of binary alarms."""
    leads = lead_frames(alarm, labels, groups)
    minutes = clear_minutes(labels, period_ms)
    n_false = false_alarms(alarm, labels, groups)
    out = {'onsets': int(len(leads)),
           'onset_recall_ahead': {str(k): float((leads >= k).mean()) if len(leads)
                                  else float('nan') for k in ONSET_FRAMES_AHEAD},
           'lead_frames': leads.tolist(),
           'median_lead_ms': float(np.median(leads) * period_ms) if len(leads) else float('nan'),
           'false_alarms': n_false, 'clear_minutes': minutes,
           'false_alarms_per_min': n_false / minutes if minutes > 0 else float('nan')}
    return out


def recall_at_false_alarm_rate(p_blocked: np.ndarray, labels: np.ndarray, groups: np.ndarray, *,
                               max_per_min: float = DEFAULT_MAX_FALSE_ALARMS_PER_MIN,
                               period_ms: float = FRAME_PERIOD_MS) -> dict:
    """Onset recall (1 frame ahead) at the lowest grid threshold (0.01 ... 1.0) whose false
    alarms per minute of clear link are at most ``max_per_min``."""
    minutes = clear_minutes(labels, period_ms)
    for threshold in np.round(np.arange(0.01, 1.001, 0.01), 2):
        alarm = p_blocked >= threshold
        rate = false_alarms(alarm, labels, groups) / minutes if minutes > 0 else 0.0
        if rate <= max_per_min:
            leads = lead_frames(alarm, labels, groups)
            return {'max_false_alarms_per_min': max_per_min, 'threshold': float(threshold),
                    'false_alarms_per_min': rate,
                    'onset_recall': float((leads >= 1).mean()) if len(leads) else float('nan')}
    return {'max_false_alarms_per_min': max_per_min, 'threshold': float('nan'),
            'false_alarms_per_min': float('nan'), 'onset_recall': 0.0}


def persistence_alarm(labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Blocked next iff blocked now: the previous window's next-frame label is this window's
    newest frame; a scenario's first window counts as clear."""
    labels = np.asarray(labels, np.float32)
    prev = np.r_[0.0, labels[:-1]]
    return np.where(_starts(groups), 0.0, prev) == 1


def prediction_scores(p_blocked: np.ndarray, labels: np.ndarray, groups: np.ndarray, *,
                      threshold: float, target: np.ndarray | None = None,
                      max_false_alarms_per_min: float = DEFAULT_MAX_FALSE_ALARMS_PER_MIN,
                      period_ms: float = FRAME_PERIOD_MS) -> dict:
    """Every metric above for one predictor, on time-ordered windows. ``target``: the label
    the model was trained for (horizon labels), for accuracy and AUROC; default ``labels``."""
    target = labels if target is None else target
    alarm = p_blocked >= threshold
    return {'accuracy': float((alarm == (target == 1)).mean()) if len(target) else float('nan'),
            'auroc': auroc(p_blocked, target),
            **alarm_scores(alarm, labels, groups, period_ms=period_ms),
            'at_fixed_false_alarm_rate': recall_at_false_alarm_rate(
                p_blocked, labels, groups, max_per_min=max_false_alarms_per_min,
                period_ms=period_ms)}


def baseline_scores(labels: np.ndarray, groups: np.ndarray, *, target: np.ndarray | None = None,
                    period_ms: float = FRAME_PERIOD_MS) -> dict:
    """Persistence and always-clear, scored like a model (their p is 0 or 1)."""
    persistence = persistence_alarm(labels, groups).astype(float)
    clear = np.zeros(len(labels))
    return {name: prediction_scores(p, labels, groups, threshold=0.5, target=target,
                                    period_ms=period_ms)
            for name, p in (('persistence', persistence), ('always_clear', clear))}
