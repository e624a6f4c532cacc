"""Handover emulation for N RSUs along a road (ROS-free): who serves the car, frame by frame.

Inputs per scenario: the truth sidecar of ``sim/road.py`` (true and measured RSSI of every
link per frame) and, for every RSU, its model's p_blocked per window (its own link, from its
own camera, LiDAR and RSSI: ``predict_road_bag``). Frame k is served by the RSU of the last
switch executed at or before the frame's time t_k (``emulation.serve``); the car starts on the
RSU with the best measured RSSI at the first frame.

Policies (every decision taken on frame k's evidence executes one inference latency after
it, at max(t_k, window's newest stamp) + latency, as in the two-RSU emulation):

* ``proposed`` -- the serving RSU's ``HandoverDecision`` (its own p_blocked and measured RSSI
  each window; the other RSUs observed as neighbours from their own predictions and their
  latest measured RSSI, reactive floor on). When it hands over, the new serving RSU's
  decision takes over, fresh (the serving RSU decides; there is no fixed home RSU on a road).
  A frame without a window of the serving RSU is still decided, with p_blocked unknown (NaN):
  only the floor can fire then;
* ``reactive`` -- the same floor without a model: right after a frame whose measured serving
  RSSI is below S_th, to the neighbour with the best latest measured RSSI at or above S_th
  (no neighbour qualifies: stay), neighbour measurements older than the decision's
  ``neighbour_stale_ns`` ignored. With a model held at "clear" (p_blocked 0 on every frame)
  ``proposed`` makes exactly these switches;
* ``oracle`` -- always the RSU with the best true RSSI, switched at the frame itself;
The decision's floor takes the neighbour with the best measured RSSI, whatever the
neighbours' models say (as ``reactive`` does); before it did, the floor found no target when
every neighbour's model said "blocked" and the vehicle stayed on a blocked link
(docs/road.md has the numbers before and after).

Metrics per policy: ``mean_served_rssi_dbm``, ``time_below_threshold_s`` (frames served below
S_th x frame period), ``handovers`` (serving changes), and per blockage of the serving link
(a run of frames with the link's true RSSI below S_th while, two frame periods before it or
at its start, the policy served that link) the lead time = blockage start - time the policy
left the link (positive: before the blockage; None: it stayed through it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..constants import FRAME_PERIOD_NS, S_TH_DBM
from .emulation import PolicyResult, Switch, Timeline, effective_switches, serve
from .handover import HandoverDecision, HysteresisConfig

ROAD_POLICIES = ('proposed', 'reactive', 'oracle')
# The check "proposed never worse than reactive", per scenario: no more time below S_th
# (no tolerance: one frame more is worse) and a mean served RSSI at most this much lower.
NEVER_WORSE_RSSI_TOL_DB = 0.1
NEVER_WORSE_TIME_TOL_S = 0.0
LEAD_LOOKBACK_PERIODS = 2


@dataclass
class RoadTimeline(Timeline):
    """A road scenario's frames: ``rssi_dbm`` holds every RSU's TRUE RSSI (what the car
    receives when that RSU serves), ``measured_dbm`` what each RSU reported (NaN: dropped).
    ``home_rsu`` is the RSU serving at the first frame; ``blockage_intervals_ns`` are its
    link's; ``link_intervals_ns`` every link's."""

    measured_dbm: dict[str, np.ndarray] = field(default_factory=dict)
    link_intervals_ns: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    rsus: tuple[str, ...] = ()


def is_road_truth(truth: Mapping) -> bool:
    return str(truth.get('version', '')).startswith('road/')


def road_timeline_from_truth(truth: Mapping) -> RoadTimeline:
    """A road sidecar (``sim/road.py``) -> :class:`RoadTimeline`."""
    if not is_road_truth(truth):
        raise ValueError(f"{truth.get('scenario', 'truth')}: not a road sidecar (version "
                         f"{truth.get('version')!r}); two-RSU scenarios go through "
                         'runtime/emulation.py')
    rsus = tuple(truth['rsus'])
    frames = truth['frames']
    t_ns = np.array([f['t_nominal_ns'] for f in frames], dtype=np.int64)

    def series(key: str, rsu: str) -> np.ndarray:
        return np.array([np.nan if f[key].get(rsu) is None else f[key][rsu] for f in frames],
                        dtype=float)

    true = {r: series('true_rssi_dbm', r) for r in rsus}
    measured = {r: series('measured_rssi_dbm', r) for r in rsus}
    links = {r: [(int(a), int(b)) for a, b in truth['link_blockage_intervals_ns'].get(r, [])]
             for r in rsus}
    first = [measured[r][0] if len(frames) else np.nan for r in rsus]
    first = [v if math.isfinite(v) else -math.inf for v in first]
    home = rsus[int(np.argmax(first))]
    other = next(r for r in rsus if r != home)
    return RoadTimeline(t_ns, true, links[home], home, other,
                        int(truth.get('frame_period_ns', FRAME_PERIOD_NS)),
                        float(truth.get('s_th_dbm', S_TH_DBM)), str(truth.get('scenario', '')),
                        measured_dbm=measured, link_intervals_ns=links, rsus=rsus)


# --------------------------------------------------------------------------- predictions
@dataclass(frozen=True)
class FramePredictions:
    """Each RSU's window per frame: p_blocked (NaN: no window) and its newest stamp (-1)."""

    p_blocked: dict[str, np.ndarray]
    stamp_ns: dict[str, np.ndarray]

    @classmethod
    def from_windows(cls, timeline: Timeline,
                     windows: Mapping[str, Sequence[tuple[int, float]]]) -> FramePredictions:
        """(newest stamp ns, p_blocked) per window and RSU -> per frame: each window goes to
        the frame nearest its newest stamp within half a period (a later one wins)."""
        p, s = {}, {}
        t = timeline.t_ns
        for rsu in timeline.rssi_dbm:
            p[rsu] = np.full(len(t), np.nan)
            s[rsu] = np.full(len(t), -1, dtype=np.int64)
            for stamp, prob in windows.get(rsu, ()):
                if not len(t):
                    break
                k = int(np.argmin(np.abs(t - int(stamp))))
                if abs(int(t[k]) - int(stamp)) <= timeline.period_ns // 2:
                    p[rsu][k], s[rsu][k] = float(prob), int(stamp)
        return cls(p, s)

    @classmethod
    def constant(cls, timeline: Timeline, p_blocked: float) -> FramePredictions:
        """Every RSU has a window at every frame, stamped at the frame, with ``p_blocked``."""
        n = len(timeline.t_ns)
        return cls({r: np.full(n, float(p_blocked)) for r in timeline.rssi_dbm},
                   {r: timeline.t_ns.copy() for r in timeline.rssi_dbm})


class _HeldRssi:
    """Each RSU's latest measured RSSI and when it was measured (what its status reports)."""

    def __init__(self, timeline: RoadTimeline, stale_ns: int) -> None:
        self.timeline, self.stale_ns = timeline, stale_ns
        self.value = {r: math.nan for r in timeline.rsus}
        self.time = {r: None for r in timeline.rsus}

    def advance(self, k: int) -> None:
        t = int(self.timeline.t_ns[k])
        for r in self.timeline.rsus:
            v = float(self.timeline.measured_dbm[r][k])
            if math.isfinite(v):
                self.value[r], self.time[r] = v, t

    def get(self, rsu: str, k: int) -> float:
        t = self.time[rsu]
        if t is None or int(self.timeline.t_ns[k]) - t > self.stale_ns:
            return math.nan
        return self.value[rsu]


# --------------------------------------------------------------------------- policies
@dataclass(frozen=True)
class RoadEvent:
    """A proposed handover: frame, decision time, source, target and the rule that fired."""

    frame: int
    exec_ns: int
    source_rsu: str
    target_rsu: str
    reason: str
    p_blocked: float


def _reactive_choice(timeline: RoadTimeline, held: _HeldRssi, serving: str, k: int
                     ) -> str | None:
    """The neighbour with the best latest measured RSSI at or above S_th (ties: lower id)."""
    candidates = [(-held.get(j, k), j) for j in timeline.rsus
                  if j != serving and held.get(j, k) >= timeline.s_th_dbm]
    return min(candidates)[1] if candidates else None


def proposed_switches(timeline: RoadTimeline, preds: FramePredictions, *, latency_ms: float,
                      hysteresis: HysteresisConfig = HysteresisConfig()
                      ) -> tuple[list[Switch], list[RoadEvent]]:
    """The serving RSU's HandoverDecision, frame by frame (see the module docstring)."""
    latency_ns = int(round(latency_ms * 1e6))
    held = _HeldRssi(timeline, hysteresis.neighbour_stale_ns)
    serving = timeline.home_rsu
    decision = HandoverDecision(serving, None, hysteresis)
    switches, events = [], []
    for k, t in enumerate(timeline.t_ns.tolist()):
        held.advance(k)
        for j in timeline.rsus:
            if j != serving and preds.stamp_ns[j][k] >= 0:
                decision.observe_neighbour(j, int(preds.stamp_ns[j][k]),
                                           float(preds.p_blocked[j][k]), held.get(j, k))
        own_stamp = int(preds.stamp_ns[serving][k])
        stamp = own_stamp if own_stamp >= 0 else int(t)
        p_own = float(preds.p_blocked[serving][k])
        rssi = float(timeline.measured_dbm[serving][k])
        event = decision.update(stamp, p_own, serving_rssi_dbm=rssi)
        if event is None:
            continue
        target, reason = event.target_rsu, event.reason
        exec_ns = max(stamp, int(t)) + latency_ns
        switches.append(Switch(exec_ns, target))
        events.append(RoadEvent(k, exec_ns, serving, target, reason, p_own))
        serving = target
        decision = HandoverDecision(serving, None, hysteresis, arrived_ns=stamp)
    return switches, events


def reactive_switches_road(timeline: RoadTimeline, *, latency_ms: float,
                           stale_ns: int = HysteresisConfig().neighbour_stale_ns
                           ) -> list[Switch]:
    """Serving RSSI measured below S_th -> the best measured neighbour at or above S_th."""
    latency_ns = int(round(latency_ms * 1e6))
    held = _HeldRssi(timeline, stale_ns)
    serving, out = timeline.home_rsu, []
    for k, t in enumerate(timeline.t_ns.tolist()):
        held.advance(k)
        value = float(timeline.measured_dbm[serving][k])
        if not (math.isfinite(value) and value < timeline.s_th_dbm):
            continue
        target = _reactive_choice(timeline, held, serving, k)
        if target is not None:
            serving = target
            out.append(Switch(int(t) + latency_ns, serving))
    return out


def oracle_switches_road(timeline: RoadTimeline) -> list[Switch]:
    """The RSU with the best true RSSI at every frame (switched at the frame itself)."""
    out, current = [], timeline.home_rsu
    for k, t in enumerate(timeline.t_ns.tolist()):
        values = [timeline.rssi_dbm[r][k] for r in timeline.rsus]
        values = [v if math.isfinite(v) else -math.inf for v in values]
        best = timeline.rsus[int(np.argmax(values))]
        if best != current:
            out.append(Switch(int(t), best))
            current = best
    return out


# --------------------------------------------------------------------------- evaluation
def serving_blockage_leads(timeline: RoadTimeline, switches: Sequence[Switch],
                           lookback_periods: int = LEAD_LOOKBACK_PERIODS) -> list[dict]:
    """Per blockage of a link the policy was serving (see the module docstring): the link,
    its start (s from the first frame) and the lead time in ms (None: stayed through it)."""
    eff = effective_switches(timeline, switches)
    changes, current = [], timeline.home_rsu          # (time, left rsu)
    for s in eff:
        changes.append((s.time_ns, current))
        current = s.rsu

    def serving_at(t_ns: int) -> str:
        rsu = timeline.home_rsu
        for s in eff:
            if s.time_ns > t_ns:
                break
            rsu = s.rsu
        return rsu

    lookback_ns = lookback_periods * timeline.period_ns
    out = []
    for rsu, intervals in timeline.link_intervals_ns.items():
        for first_ns, last_ns in intervals:
            if rsu not in (serving_at(first_ns - lookback_ns), serving_at(first_ns)):
                continue
            left = [t for t, prev in changes if prev == rsu
                    and first_ns - lookback_ns < t <= last_ns + timeline.period_ns]
            out.append({'rsu': rsu, 'start_s': (first_ns - timeline.t0_ns) / 1e9,
                        'lead_ms': (first_ns - left[0]) / 1e6 if left else None})
    return sorted(out, key=lambda d: (d['start_s'], d['rsu']))


def evaluate_road_policy(name: str, timeline: RoadTimeline,
                         switches: Sequence[Switch]) -> PolicyResult:
    serving, served = serve(timeline, switches)
    finite = np.isfinite(served)
    below = int(np.count_nonzero(served[finite] < timeline.s_th_dbm))
    leads = serving_blockage_leads(timeline, switches)
    defined = [d['lead_ms'] for d in leads if d['lead_ms'] is not None]
    metrics = {
        'mean_served_rssi_dbm': float(np.mean(served[finite])) if finite.any() else None,
        'time_below_threshold_s': below * timeline.period_ns / 1e9,
        'handovers': len(effective_switches(timeline, switches)),
        'serving_blockages': len(leads),
        'handed_over_before_blockage': sum(1 for v in defined if v > 0),
        'lead_time_ms': float(np.mean(defined)) if defined else None,
        'lead_times': leads,
        'serving_share': {r: serving.count(r) / max(len(serving), 1) for r in timeline.rsus},
    }
    return PolicyResult(name, list(switches), serving, served, metrics)


def emulate_road(timeline: RoadTimeline, preds: FramePredictions, *, latency_ms: float,
                 hysteresis: HysteresisConfig = HysteresisConfig()
                 ) -> tuple[dict[str, PolicyResult], list[RoadEvent]]:
    """The three policies on one scenario; returns their results and the proposed events."""
    proposed, events = proposed_switches(timeline, preds, latency_ms=latency_ms,
                                         hysteresis=hysteresis)
    policies = {'proposed': proposed,
                'reactive': reactive_switches_road(
                    timeline, latency_ms=latency_ms, stale_ns=hysteresis.neighbour_stale_ns),
                'oracle': oracle_switches_road(timeline)}
    return ({n: evaluate_road_policy(n, timeline, sw) for n, sw in policies.items()}, events)


def never_worse_check(scenario: str, metrics: Mapping[str, Mapping], *,
                      policy: str = 'proposed', rssi_tol_db: float = NEVER_WORSE_RSSI_TOL_DB,
                      time_tol_s: float = NEVER_WORSE_TIME_TOL_S) -> dict:
    """Issue 15, item 4: ``policy`` no worse than reactive in time below S_th and in mean
    served RSSI (within the stated tolerances)."""
    p, r = metrics[policy], metrics['reactive']
    time_ok = p['time_below_threshold_s'] <= r['time_below_threshold_s'] + time_tol_s + 1e-9
    rssi_ok = p['mean_served_rssi_dbm'] >= r['mean_served_rssi_dbm'] - rssi_tol_db
    return {'scenario': scenario, 'policy': policy, 'time_below_ok': bool(time_ok),
            'mean_rssi_ok': bool(rssi_ok),
            'passed': bool(time_ok and rssi_ok),
            'd_time_below_s': p['time_below_threshold_s'] - r['time_below_threshold_s'],
            'd_mean_rssi_db': p['mean_served_rssi_dbm'] - r['mean_served_rssi_dbm'],
            'rssi_tol_db': rssi_tol_db, 'time_tol_s': time_tol_s}


# --------------------------------------------------------------------------- models on bags
def predict_road_bag(bag: str | Path, model, *, n_rsus: int, device='cpu',
                     progress: bool = False) -> dict[str, dict]:
    """Every RSU's model output on one road bag, through the node's own path: its topic map
    (``sim.road.window_topic_map``), ``WindowStream`` and ``StreamingPredictor`` (token cache).

    Returns per RSU: ``windows`` [(newest stamp ns, p_blocked)], ``inference_ms`` per window
    and the stream's counters.
    """
    from tqdm import tqdm

    from ..data.bag import read_bag_messages
    from ..data.stream import StreamConfig, WindowStream
    from ..sim.road import rsu_name, window_topic_map
    from .predictor import StreamingPredictor

    threshold = float(getattr(model, 'decision_threshold', 0.5))
    out = {}
    for k in tqdm(range(1, n_rsus + 1), desc=f'{Path(bag).name} RSUs', disable=not progress,
                  leave=False):
        topic_map = window_topic_map(k, n_rsus)
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
        out[rsu_name(k)] = {'windows': windows, 'inference_ms': times,
                            'topic_map': topic_map, 'stats': stream.stats()}
    return out


def prediction_scores(timeline: RoadTimeline, preds: FramePredictions,
                      threshold: float) -> dict[str, dict]:
    """Per RSU: windows, and how often p_blocked >= threshold at frame k matched the link's
    true blockage at frame k + 1 (the model's task: the next frame)."""
    out = {}
    for r in timeline.rsus:
        p = preds.p_blocked[r][:-1]
        nxt = timeline.rssi_dbm[r][1:] < timeline.s_th_dbm
        have = np.isfinite(p)
        pred = p[have] >= threshold
        truth = nxt[have]
        out[r] = {'windows': int(have.sum()),
                  'accuracy': float(np.mean(pred == truth)) if have.any() else None,
                  'blocked_next': int(truth.sum()),
                  'predicted_blocked': int(pred.sum()),
                  'hits': int(np.sum(pred & truth))}
    return out


__all__ = ['FramePredictions', 'NEVER_WORSE_RSSI_TOL_DB', 'NEVER_WORSE_TIME_TOL_S',
           'ROAD_POLICIES', 'RoadEvent', 'RoadTimeline', 'emulate_road',
           'evaluate_road_policy', 'is_road_truth', 'never_worse_check',
           'oracle_switches_road', 'predict_road_bag', 'prediction_scores',
           'proposed_switches', 'reactive_switches_road', 'road_timeline_from_truth',
           'serving_blockage_leads']
