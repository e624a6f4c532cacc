"""Metrics of a blockage predictor that test prediction, not persistence.

Accuracy rewards persistence when blockages start abruptly, so every table also reports:

* **AUROC** of p_blocked against the label (rank statistic, ties count one half);
* **onset recall k frames ahead**: of the blockage onsets (the first window whose next frame
  is blocked, after a clear window of its scenario), the share the model had announced in
  each of the k windows up to and including the onset window, i.e. an alarm raised at least
  k frames before the first blocked frame and held until then;
* **lead time**: per onset, how long the alarm run that reaches the onset had been on
  (0 for a missed onset), in frames and ms; the median over onsets;
* **false alarms per minute of clear link**, by one of two definitions
  (``FALSE_ALARM_DEFINITIONS``). ``proactive`` (the default): an alarm run that *starts* on a
  window whose link is clear now, with no blocked frame within the label horizon, unless it
  is held until a blockage it announced at most ``MAX_LEAD_FRAMES`` ahead (an early warning);
  runs that start while the link is blocked are the reaction to it. ``legacy`` (the
  tables before): every run of alarms on clear windows that does not run into a blockage
  onset, the tail of an alarm after a blockage included;
* **late all-clears** (with either definition): blockage ends after which the alarm is still
  on in the first clear window, i.e. the alarm runs past the end of the blockage; counted
  apart because the node does not act on the end of a blockage;
* **onset recall at a fixed false-alarm rate**: the lowest threshold whose false-alarm rate is
  at most ``max_false_alarms_per_min``, and the onset recall there (a threshold-free
  comparison of models, as a ROC curve's operating point);
* the **persistence** (blocked next iff blocked now) and **always clear** baselines, and the
  **node's decision** (the model's alarm OR the own link measured below S_th now: the
  reactive floor of the handover decision).

Everything works on windows sorted by scenario, then time (``WindowDataset._in_time_order``);
``labels`` are always the next-frame labels (Eq. 8), whatever horizon a model was trained on,
so the link is blocked *now* at window t when the label of window t - 1 is.
"""
from __future__ import annotations

import numpy as np

from ..constants import DEFAULT_DECISION_THRESHOLD, FRAME_PERIOD_MS, ONSET_FRAMES_AHEAD
from ..errors import UserInputError

DEFAULT_MAX_FALSE_ALARMS_PER_MIN = 1.0
FALSE_ALARM_DEFINITIONS = ('proactive', 'legacy')
# the longest lead (frames) for which an alarm held until a blockage counts as its warning
MAX_LEAD_FRAMES = max(ONSET_FRAMES_AHEAD)


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
        raise UserInputError(f'the label horizon must be >= 1 frame, got {horizon}')
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


def false_alarms(alarm: np.ndarray, labels: np.ndarray, groups: np.ndarray, *,
                 definition: str = 'proactive', horizon: int = 1) -> int:
    """False alarms of binary ``alarm``s by ``definition`` (see the module docstring).

    ``proactive``: alarm runs that start on a window whose link is clear now (the previous
    window's label is clear, or the window starts its scenario) and whose next ``horizon``
    frames are all clear, unless the run is held until a blockage that it announced at most
    ``MAX_LEAD_FRAMES`` frames ahead (the longest lead onset recall credits): such a run is an
    early warning. An alarm held from far ahead (an alarm that never goes off) is false.
    ``legacy``: runs of alarms on clear windows that do not run into an onset, the alarm left
    on after a blockage included."""
    alarm, labels = np.asarray(alarm, bool), np.asarray(labels)
    if definition == 'legacy':
        return _legacy_false_alarms(alarm, labels, groups)
    if definition != 'proactive':
        raise UserInputError(f'unknown false-alarm definition {definition!r}; choose from '
                         f'{FALSE_ALARM_DEFINITIONS}')
    starts = _starts(groups)
    blocked_now = persistence_alarm(labels, groups)
    ahead = horizon_labels(labels, groups, horizon) == 1
    count = 0
    for i in np.flatnonzero(alarm & (starts | ~np.r_[False, alarm[:-1]])):   # run starts
        if blocked_now[i] or ahead[i]:
            continue
        j = i
        while j < len(alarm) and alarm[j] and (j == i or not starts[j]) and labels[j] == 0:
            j += 1
        reaches_blockage = (j < len(alarm) and alarm[j] and not starts[j])   # labels[j] == 1
        early_warning = reaches_blockage and j - i + 1 <= MAX_LEAD_FRAMES      # its lead
        count += 0 if early_warning else 1
    return count


def _legacy_false_alarms(alarm: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> int:
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


def late_all_clears(alarm: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> tuple[int, int]:
    """(blockage ends the alarm runs past, alarmed clear windows in those tails): a blockage
    ends at window e when e is labelled blocked and e + 1 (same scenario) clear; window e + 1
    sees the last blocked frame and should say clear. The tail is the run of alarms on clear
    windows from e + 1 on."""
    alarm, labels = np.asarray(alarm, bool), np.asarray(labels)
    starts = _starts(groups)
    ends = np.flatnonzero((labels[:-1] == 1) & (labels[1:] == 0) & ~starts[1:]) + 1
    count = frames = 0
    for i in ends:
        if not alarm[i]:
            continue
        count += 1
        j = i
        while j < len(alarm) and alarm[j] and labels[j] == 0 and (j == i or not starts[j]):
            frames += 1
            j += 1
    return count, frames


def clear_minutes(labels: np.ndarray, period_ms: float = FRAME_PERIOD_MS) -> float:
    return float((np.asarray(labels) == 0).sum()) * period_ms / 60_000.0


def alarm_scores(alarm: np.ndarray, labels: np.ndarray, groups: np.ndarray, *,
                 period_ms: float = FRAME_PERIOD_MS, definition: str = 'proactive',
                 horizon: int = 1) -> dict:
    """Onset recall 1/2/3/5 frames ahead, lead times, false alarms and late all-clears of
    binary alarms."""
    leads = lead_frames(alarm, labels, groups)
    minutes = clear_minutes(labels, period_ms)
    n_false = false_alarms(alarm, labels, groups, definition=definition, horizon=horizon)
    n_late, late_frames = late_all_clears(alarm, labels, groups)
    out = {'onsets': int(len(leads)),
           'onset_recall_ahead': {str(k): float((leads >= k).mean()) if len(leads)
                                  else float('nan') for k in ONSET_FRAMES_AHEAD},
           'lead_frames': leads.tolist(),
           'median_lead_ms': float(np.median(leads) * period_ms) if len(leads) else float('nan'),
           'false_alarm_definition': definition,
           'false_alarms': n_false, 'clear_minutes': minutes,
           'false_alarms_per_min': n_false / minutes if minutes > 0 else float('nan'),
           'late_all_clears': n_late, 'late_all_clear_frames': late_frames,
           'late_all_clears_per_min': n_late / minutes if minutes > 0 else float('nan')}
    return out


def recall_at_false_alarm_rate(p_blocked: np.ndarray, labels: np.ndarray, groups: np.ndarray, *,
                               max_per_min: float = DEFAULT_MAX_FALSE_ALARMS_PER_MIN,
                               period_ms: float = FRAME_PERIOD_MS,
                               definition: str = 'proactive', horizon: int = 1) -> dict:
    """Onset recall (1 frame ahead) at the lowest grid threshold (0.01 ... 1.0) whose false
    alarms per minute of clear link are at most ``max_per_min``."""
    minutes = clear_minutes(labels, period_ms)
    for threshold in np.round(np.arange(0.01, 1.001, 0.01), 2):
        alarm = p_blocked >= threshold
        n_false = false_alarms(alarm, labels, groups, definition=definition, horizon=horizon)
        rate = n_false / minutes if minutes > 0 else 0.0
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
                      period_ms: float = FRAME_PERIOD_MS, definition: str = 'proactive',
                      horizon: int = 1) -> dict:
    """Every metric above for one predictor, on time-ordered windows. ``target``: the label
    the model was trained for (horizon labels), for accuracy and AUROC; default ``labels``.
    ``horizon``: the label horizon of the proactive false-alarm definition."""
    target = labels if target is None else target
    alarm = p_blocked >= threshold
    return {'accuracy': float((alarm == (target == 1)).mean()) if len(target) else float('nan'),
            'auroc': auroc(p_blocked, target),
            **alarm_scores(alarm, labels, groups, period_ms=period_ms, definition=definition,
                           horizon=horizon),
            'at_fixed_false_alarm_rate': recall_at_false_alarm_rate(
                p_blocked, labels, groups, max_per_min=max_false_alarms_per_min,
                period_ms=period_ms, definition=definition, horizon=horizon)}


def node_decision_p(p_blocked: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """p of the decision the node acts on: the model's p, or 1 when the own link is measured
    below S_th now (the reactive floor), so it alarms at any threshold."""
    return np.maximum(np.asarray(p_blocked, float),
                      persistence_alarm(labels, groups).astype(float))


def baseline_scores(labels: np.ndarray, groups: np.ndarray, *, target: np.ndarray | None = None,
                    period_ms: float = FRAME_PERIOD_MS, definition: str = 'proactive',
                    horizon: int = 1,
                    max_false_alarms_per_min: float = DEFAULT_MAX_FALSE_ALARMS_PER_MIN) -> dict:
    """Persistence and always-clear, scored like a model (their p is 0 or 1)."""
    persistence = persistence_alarm(labels, groups).astype(float)
    clear = np.zeros(len(labels))
    return {name: prediction_scores(p, labels, groups, threshold=DEFAULT_DECISION_THRESHOLD,
                                    target=target, period_ms=period_ms, definition=definition,
                                    horizon=horizon,
                                    max_false_alarms_per_min=max_false_alarms_per_min)
            for name, p in (('persistence', persistence), ('always_clear', clear))}


def score_predictions(p_blocked: np.ndarray, labels: np.ndarray, groups: np.ndarray, *,
                      threshold: float, horizon: int = 1, definition: str = 'proactive',
                      max_false_alarms_per_min: float = DEFAULT_MAX_FALSE_ALARMS_PER_MIN) -> dict:
    """The model, the node's decision (model OR reactive floor) and the baselines on
    time-ordered windows with next-frame ``labels``: what ``evaluate`` reports beside accuracy,
    and what a stored run is scored again from when the definition changes."""
    p_blocked, labels = np.asarray(p_blocked, float), np.asarray(labels, np.float32)
    groups = np.asarray(groups)
    target = horizon_labels(labels, groups, horizon)
    kw = dict(target=target, definition=definition, horizon=horizon,
              max_false_alarms_per_min=max_false_alarms_per_min)
    model = prediction_scores(p_blocked, labels, groups, threshold=threshold, **kw)
    node = prediction_scores(node_decision_p(p_blocked, labels, groups), labels, groups,
                             threshold=threshold, **kw)
    return {'label_horizon_frames': horizon, 'false_alarm_definition': definition,
            'auroc': model['auroc'],
            **{k: model[k] for k in ('onset_recall_ahead', 'lead_frames', 'median_lead_ms',
                                     'false_alarms', 'clear_minutes', 'false_alarms_per_min',
                                     'late_all_clears', 'late_all_clear_frames',
                                     'late_all_clears_per_min', 'at_fixed_false_alarm_rate')},
            'node_decision': node,
            'baselines': baseline_scores(labels, groups, **kw)}
