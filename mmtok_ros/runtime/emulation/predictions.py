"""Each RSU's model output on the frames of a timeline, and running the models on a bag.

A window belongs to the frame of its newest stamp (``timeline.frame_index``); an RSU without
a window at a frame (its stream lost the frame, or it has no sensors) has p_blocked NaN and
stamp -1 there.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ...constants import DEFAULT_DECISION_THRESHOLD
from .timeline import Timeline, frame_index


@dataclass(frozen=True)
class FramePredictions:
    """Per RSU and frame: p_blocked (NaN: no window) and the window's newest stamp (-1)."""

    p_blocked: dict[str, np.ndarray]
    stamp_ns: dict[str, np.ndarray]

    @classmethod
    def from_windows(cls, timeline: Timeline,
                     windows: Mapping[str, Sequence[tuple[int, float]]]) -> FramePredictions:
        """(newest stamp ns, p_blocked) per window and RSU -> per frame (a later window for
        the same frame wins)."""
        n = len(timeline.t_ns)
        p = {r: np.full(n, np.nan) for r in timeline.rsus}
        s = {r: np.full(n, -1, dtype=np.int64) for r in timeline.rsus}
        for rsu in timeline.rsus:
            for stamp, prob in windows.get(rsu, ()):
                k = frame_index(timeline.t_ns, int(stamp), timeline.period_ns)
                if k is not None:
                    p[rsu][k], s[rsu][k] = float(prob), int(stamp)
        return cls(p, s)

    @classmethod
    def constant(cls, timeline: Timeline, p_blocked: float,
                 rsus: Sequence[str] | None = None) -> FramePredictions:
        """``rsus`` (default: all) have a window at every frame, stamped at the frame."""
        n, have = len(timeline.t_ns), timeline.rsus if rsus is None else tuple(rsus)
        return cls({r: np.full(n, float(p_blocked) if r in have else np.nan)
                    for r in timeline.rsus},
                   {r: timeline.t_ns.copy() if r in have else np.full(n, -1, dtype=np.int64)
                    for r in timeline.rsus})

    def has_window(self, rsu: str, k: int) -> bool:
        return int(self.stamp_ns[rsu][k]) >= 0


def prediction_scores(timeline: Timeline, preds: FramePredictions,
                      threshold: float) -> dict[str, dict]:
    """Per RSU with windows: how often p_blocked >= threshold at frame k matched the link's
    true blockage at frame k + 1 (the model's task: the next frame)."""
    out = {}
    for r in timeline.rsus:
        p = preds.p_blocked[r][:-1]
        nxt = timeline.rssi_dbm[r][1:] < timeline.s_th_dbm
        have = np.isfinite(p)
        if not have.any():
            continue
        pred, truth = p[have] >= threshold, nxt[have]
        out[r] = {'windows': int(have.sum()), 'accuracy': float(np.mean(pred == truth)),
                  'blocked_next': int(truth.sum()), 'predicted_blocked': int(pred.sum()),
                  'hits': int(np.sum(pred & truth))}
    return out


def topic_maps_of(truth: Mapping) -> dict[str, dict[str, str]]:
    """Which RSU reads which topics, from a sidecar: a road's ``window_topic_maps``; on the
    testbed only RSU 1 has sensors, on the testbed's default topics."""
    if truth.get('window_topic_maps'):
        return {r: dict(m) for r, m in truth['window_topic_maps'].items()}
    from ...data.topics import default_topic_map
    return {'rsu1': default_topic_map()}


def predict_bag(bag: str | Path, model, topic_maps: Mapping[str, Mapping[str, str]], *,
                device='cpu', progress: bool = False) -> dict[str, dict]:
    """Every RSU's model output on one bag through the node's own path: its topic map,
    ``WindowStream`` and ``StreamingPredictor`` (token cache).

    Returns per RSU: ``windows`` [(newest stamp ns, p_blocked)], ``inference_ms`` per window,
    its ``topic_map`` and the stream's counters.
    """
    from tqdm import tqdm

    from ...data.bag import read_bag_messages
    from ...data.stream import StreamConfig, WindowStream
    from ..predictor import StreamingPredictor

    threshold = float(getattr(model, 'decision_threshold', DEFAULT_DECISION_THRESHOLD))
    out = {}
    for rsu, topic_map in tqdm(topic_maps.items(), desc=f'{Path(bag).name} RSUs',
                               disable=not progress, leave=False):
        stream = WindowStream(model.cfg, topic_map, StreamConfig())
        predictor = StreamingPredictor(model, device=device, threshold=threshold)
        windows, times = [], []
        messages = read_bag_messages(bag, list(topic_map), decode=False)
        for assembled in stream.assembled(messages, raw=True):
            if assembled.window is None:
                continue
            pred = predictor.predict(assembled.window)
            windows.append((pred.newest_stamp_ns, pred.p_blocked))
            times.append(pred.inference_ms)
        out[rsu] = {'windows': windows, 'inference_ms': times, 'topic_map': dict(topic_map),
                    'stats': stream.stats()}
    return out


__all__ = ['FramePredictions', 'predict_bag', 'prediction_scores', 'topic_maps_of']
