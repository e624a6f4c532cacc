"""Handover emulation (ROS-free): served RSSI over time for several handover policies.

As in the paper's Sec. IV-B / Fig. 5: the vehicle is served by the home RSU (RSU 1) until a
handover executes, then by the target RSU (RSU 2), whose RSSI is what it receives. A policy
is a list of :class:`Switch` events (execution time, RSU); frame k is served by the RSU of
the last event executed at or before the frame's time t_k.

Policies compared:

* ``proactive`` -- the RSU node's triggers, executed when they were *received* (so inference
  latency delays them: an obsolete prediction hands over late);
* ``reactive`` -- hands over only after the measured home RSSI was seen below S_th (the
  frame that revealed the drop is served degraded), hands back after ``off_frames``
  consecutive frames back at or above S_th;
* ``oracle`` -- knows the truth sidecar: an ideal one-frame-ahead predictor with zero latency
  (hands over one frame period before each blockage, back at its first clear frame).

Metrics per policy: ``mean_served_rssi_dbm``, ``time_below_threshold_s`` (frames served
below S_th x frame period), ``handovers`` (serving changes), ``lead_time_ms`` (mean over
blockage intervals of blockage start - handover time; positive = before the blockage, None
when the policy never handed over around a blockage).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..constants import FRAME_PERIOD_NS, S_TH_DBM
from .handover import HandoverDecision, HysteresisConfig

POLICIES = ('proactive', 'reactive', 'oracle')


@dataclass(frozen=True)
class Switch:
    """The vehicle is attached to ``rsu`` from ``time_ns`` on."""

    time_ns: int
    rsu: str


@dataclass
class Timeline:
    """Frames of one scenario: time, RSSI of every RSU, blockage intervals of the home link."""

    t_ns: np.ndarray                       # (F,) int64, ascending
    rssi_dbm: dict[str, np.ndarray]        # rsu -> (F,) float, NaN where unknown
    blockage_intervals_ns: list[tuple[int, int]]
    home_rsu: str = 'rsu1'
    target_rsu: str = 'rsu2'
    period_ns: int = FRAME_PERIOD_NS
    s_th_dbm: float = S_TH_DBM
    name: str = ''

    @property
    def t0_ns(self) -> int:
        return int(self.t_ns[0]) if len(self.t_ns) else 0


@dataclass
class PolicyResult:
    name: str
    switches: list[Switch]
    serving: list[str]                     # per frame
    served_rssi_dbm: np.ndarray            # per frame
    metrics: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- timelines
def load_truth(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def bags_and_truths(data_dir: str | Path, bags_arg: str, names: list[str],
                    ) -> tuple[list[str], dict[str, dict]]:
    """The bags ``--bags`` names (all of ``names`` when empty) and their truth sidecars;
    one clear error for an unknown bag or a missing sidecar."""
    wanted = [b for b in bags_arg.split(',') if b] or list(names)
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ValueError(f'--bags {unknown} are not bags in {data_dir}; have {sorted(names)}')
    truths = {}
    for name in wanted:
        path = Path(data_dir) / f'{name}.truth.json'
        if not path.is_file():
            raise FileNotFoundError(f'truth sidecar not found: {path} (the oracle and the '
                                    'true served RSSI need it; mmtok simulate writes one)')
        truths[name] = load_truth(path)
    return wanted, truths


def timeline_from_truth(truth: dict, *, home_rsu: str = 'rsu1',
                        target_rsu: str = 'rsu2') -> Timeline:
    """True RSSI at each frame's nominal time and blockage intervals from a sidecar."""
    frames = truth['frames']
    t_ns = np.array([f['t_nominal_ns'] for f in frames], dtype=np.int64)
    rssi = {rsu: np.array([np.nan if f['true_rssi_dbm'].get(rsu) is None
                           else f['true_rssi_dbm'][rsu] for f in frames], dtype=float)
            for rsu in (home_rsu, target_rsu)}
    intervals = [(int(a), int(b)) for a, b in truth.get('blockage_intervals_ns', [])]
    return Timeline(t_ns, rssi, intervals, home_rsu, target_rsu,
                    int(truth.get('frame_period_ns', FRAME_PERIOD_NS)),
                    float(truth.get('s_th_dbm', S_TH_DBM)), str(truth.get('scenario', '')))


def blocked_intervals(t_ns: np.ndarray, home_dbm: np.ndarray,
                      s_th_dbm: float) -> list[tuple[int, int]]:
    """[first, last] frame times of each run of frames with home RSSI below S_th."""
    runs, start = [], None
    blocked = np.nan_to_num(home_dbm, nan=np.inf) < s_th_dbm
    for k, b in enumerate(blocked):
        if b and start is None:
            start = k
        if start is not None and (not b or k == len(blocked) - 1):
            end = k if b else k - 1
            runs.append((int(t_ns[start]), int(t_ns[end])))
            start = None
    return runs


def timeline_from_samples(samples: dict[str, Sequence[tuple[int, float]]], *,
                          home_rsu: str = 'rsu1', target_rsu: str = 'rsu2',
                          period_ns: int = FRAME_PERIOD_NS,
                          s_th_dbm: float = S_TH_DBM, name: str = '') -> Timeline:
    """Measured (stamp_ns, dBm) samples per RSU -> frames on the home RSU's stamps.

    Without a truth sidecar the blockage intervals are the runs of measured home RSSI below
    S_th. Samples of the target RSU are matched to the nearest home stamp within half a period.
    """
    home = sorted(samples.get(home_rsu, []))
    t_ns = np.array([s for s, _ in home], dtype=np.int64)
    rssi = {home_rsu: np.array([v for _, v in home], dtype=float)}
    rssi[target_rsu] = nearest_frame_values(t_ns, sorted(samples.get(target_rsu, [])),
                                            period_ns)
    intervals = blocked_intervals(t_ns, rssi[home_rsu], s_th_dbm)
    return Timeline(t_ns, rssi, intervals, home_rsu, target_rsu, period_ns, s_th_dbm, name)


def nearest_frame_values(t_ns: np.ndarray, samples: Iterable[tuple[int, float]],
                         period_ns: int) -> np.ndarray:
    """(stamp_ns, value) samples -> one value per frame time ``t_ns``: each sample goes to the
    nearest frame within half a period (a later sample for the same frame wins), NaN where
    none does. The one matching rule of measured samples to frames."""
    out = np.full(len(t_ns), np.nan)
    if not len(t_ns):
        return out
    for stamp, value in samples:
        k = int(np.argmin(np.abs(t_ns - stamp)))
        if abs(int(t_ns[k]) - stamp) <= period_ns // 2:
            out[k] = value
    return out


def measured_on_timeline(timeline: Timeline,
                         samples: Sequence[tuple[int, float]]) -> np.ndarray:
    """Measured (stamp_ns, dBm) samples -> one value per frame (nearest within half a
    period, NaN where none): what the reactive baseline observes."""
    return nearest_frame_values(timeline.t_ns, samples, timeline.period_ns)


def timeline_measured_from_truth(truth: dict, rsu: str = 'rsu1') -> np.ndarray:
    """The sidecar's measured RSSI of ``rsu`` per frame (NaN where the report was dropped)."""
    return np.array([np.nan if f['measured_rssi_dbm'].get(rsu) is None
                     else f['measured_rssi_dbm'][rsu] for f in truth['frames']], dtype=float)


# --------------------------------------------------------------------------- policies
def proactive_switches(events: Iterable[tuple[int, str]]) -> list[Switch]:
    """Triggers as (execution/receipt time ns, target RSU) -> switches, in time order."""
    return sorted((Switch(int(t), str(rsu)) for t, rsu in events), key=lambda s: s.time_ns)


def switches_from_predictions(predictions: Iterable[tuple[int, float, float]], *,
                              home_rsu: str = 'rsu1', target_rsu: str = 'rsu2',
                              hysteresis: HysteresisConfig = HysteresisConfig()
                              ) -> list[Switch]:
    """Offline: (newest stamp ns, p_blocked, latency ms) per window -> proactive switches.

    Each decision executes ``latency`` after its window's newest frame stamp, the same
    rule the live node obeys (it can only act once inference has finished).
    """
    decision = HandoverDecision(home_rsu, target_rsu, hysteresis)
    out = []
    for stamp_ns, p_blocked, latency_ms in predictions:
        event = decision.update(int(stamp_ns), float(p_blocked))
        if event is not None:
            out.append(Switch(int(stamp_ns) + int(round(latency_ms * 1e6)), event.target_rsu))
    return out


def reactive_switches(timeline: Timeline, measured_home_dbm: np.ndarray | None = None, *,
                      off_frames: int = 5, reaction_ns: int = 1) -> list[Switch]:
    """Hand over right after a frame whose measured home RSSI is below S_th (frame served
    degraded); hand back after ``off_frames`` consecutive frames at or above S_th."""
    home = timeline.rssi_dbm[timeline.home_rsu] if measured_home_dbm is None \
        else np.asarray(measured_home_dbm, dtype=float)
    serving, streak, out = timeline.home_rsu, 0, []
    for k, t in enumerate(timeline.t_ns.tolist()):
        value = home[k]
        if not math.isfinite(value):
            continue  # no report this frame: nothing to react to
        if serving == timeline.home_rsu:
            if value < timeline.s_th_dbm:
                serving = timeline.target_rsu
                out.append(Switch(int(t) + reaction_ns, serving))
                streak = 0
        else:
            streak = streak + 1 if value >= timeline.s_th_dbm else 0
            if streak >= off_frames:
                serving = timeline.home_rsu
                out.append(Switch(int(t) + reaction_ns, serving))
                streak = 0
    return out


def oracle_switches(timeline: Timeline) -> list[Switch]:
    """One frame period before each blockage to the target; back at its first clear frame."""
    out = []
    for first_ns, last_ns in timeline.blockage_intervals_ns:
        out.append(Switch(int(first_ns) - timeline.period_ns, timeline.target_rsu))
        out.append(Switch(int(last_ns) + timeline.period_ns, timeline.home_rsu))
    return out


# --------------------------------------------------------------------------- evaluation
def serve(timeline: Timeline, switches: Sequence[Switch]) -> tuple[list[str], np.ndarray]:
    """Serving RSU and served RSSI per frame."""
    ordered = sorted(switches, key=lambda s: s.time_ns)
    serving, i, current = [], 0, timeline.home_rsu
    for t in timeline.t_ns.tolist():
        while i < len(ordered) and ordered[i].time_ns <= t:
            current = ordered[i].rsu
            i += 1
        serving.append(current)
    served = np.array([timeline.rssi_dbm[r][k] if r in timeline.rssi_dbm else np.nan
                       for k, r in enumerate(serving)], dtype=float)
    return serving, served


def effective_switches(timeline: Timeline, switches: Sequence[Switch]) -> list[Switch]:
    """Switches that change the serving RSU (repeated triggers to the same RSU dropped)."""
    out, current = [], timeline.home_rsu
    for s in sorted(switches, key=lambda s: s.time_ns):
        if s.rsu != current:
            out.append(s)
            current = s.rsu
    return out


def lead_times_ms(timeline: Timeline, switches: Sequence[Switch]) -> list[float | None]:
    """Per blockage interval: start - time of the handover to the target serving it.

    The handover in effect at the start counts if it happened at most ``lookback`` (two
    frame periods beyond the previous interval) before; otherwise the first handover to the
    target during the interval (a negative lead: late). None if neither exists.
    """
    eff = effective_switches(timeline, switches)
    out: list[float | None] = []
    for first_ns, last_ns in timeline.blockage_intervals_ns:
        before = [s for s in eff if s.time_ns <= first_ns]
        if before and before[-1].rsu == timeline.target_rsu:
            out.append((first_ns - before[-1].time_ns) / 1e6)
            continue
        during = [s for s in eff if first_ns < s.time_ns <= last_ns + timeline.period_ns
                  and s.rsu == timeline.target_rsu]
        out.append((first_ns - during[0].time_ns) / 1e6 if during else None)
    return out


def evaluate_policy(name: str, timeline: Timeline, switches: Sequence[Switch]) -> PolicyResult:
    serving, served = serve(timeline, switches)
    finite = np.isfinite(served)
    below = int(np.count_nonzero(served[finite] < timeline.s_th_dbm))
    leads = lead_times_ms(timeline, switches)
    defined = [v for v in leads if v is not None]
    metrics = {
        'mean_served_rssi_dbm': float(np.mean(served[finite])) if finite.any() else None,
        'time_below_threshold_s': below * timeline.period_ns / 1e9,
        'handovers': len(effective_switches(timeline, switches)),
        'lead_time_ms': float(np.mean(defined)) if defined else None,
        'lead_times_ms': leads,
        'handed_over_before_blockage': [v is not None and v > 0 for v in leads],
    }
    return PolicyResult(name, list(switches), serving, served, metrics)


def emulate(timeline: Timeline, policies: dict[str, Sequence[Switch]]) -> dict[str, PolicyResult]:
    return {name: evaluate_policy(name, timeline, sw) for name, sw in policies.items()}


__all__ = ['POLICIES', 'PolicyResult', 'Switch', 'Timeline', 'blocked_intervals',
           'effective_switches', 'emulate', 'evaluate_policy', 'lead_times_ms', 'load_truth',
           'measured_on_timeline', 'nearest_frame_values', 'oracle_switches',
           'proactive_switches', 'reactive_switches', 'serve', 'switches_from_predictions',
           'timeline_from_samples', 'timeline_from_truth', 'timeline_measured_from_truth']
