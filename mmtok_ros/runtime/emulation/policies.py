"""The baselines a proactive policy is compared with: reactive and oracle (ROS-free).

A policy is a list of :class:`Switch` events; frame k is served by the RSU of the last switch
executed at or before the frame's time t_k (``metrics.serve``). The proactive policy, the
node's own decision, is in ``decide.py``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ...constants import REACTIVE_OFF_FRAMES
from .timeline import Timeline


@dataclass(frozen=True)
class Switch:
    """The vehicle is attached to ``rsu`` from ``time_ns`` on."""

    time_ns: int
    rsu: str


def switches_from_triggers(events: Iterable[tuple[int, str]]) -> list[Switch]:
    """(execution time ns, target RSU) of received triggers -> switches, in time order."""
    return sorted((Switch(int(t), str(rsu)) for t, rsu in events), key=lambda s: s.time_ns)


class HeldRssi:
    """Each RSU's latest measured RSSI and its frame time: what its link status reports.
    A measurement older than ``stale_ns`` is unknown (NaN)."""

    def __init__(self, timeline: Timeline, stale_ns: int) -> None:
        self.timeline, self.stale_ns = timeline, stale_ns
        self.value = {r: math.nan for r in timeline.rsus}
        self.time: dict[str, int | None] = {r: None for r in timeline.rsus}

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


def best_measured_neighbour(timeline: Timeline, held: HeldRssi, serving: str,
                            k: int) -> str | None:
    """The other RSU with the best fresh measured RSSI at or above S_th (ties: lower id)."""
    candidates = [(-held.get(j, k), j) for j in timeline.rsus
                  if j != serving and held.get(j, k) >= timeline.s_th_dbm]
    return min(candidates)[1] if candidates else None


def reactive_switches(timeline: Timeline, *, delay_ns: int, stale_ns: int,
                      home_rsu: str | None = None,
                      hand_back_frames: int = REACTIVE_OFF_FRAMES) -> list[Switch]:
    """Hand over ``delay_ns`` after a frame whose measured serving RSSI is below S_th (that
    frame is served degraded), to the best measured neighbour at or above S_th (none: stay).

    ``home_rsu`` (a fixed home, the testbed): while another RSU serves, hand back to it after
    ``hand_back_frames`` consecutive frames with its measured RSSI at or above S_th. A frame
    without a measurement neither extends nor breaks that streak.
    """
    held = HeldRssi(timeline, stale_ns)
    serving, streak, out = timeline.home_rsu, 0, []
    for k, t in enumerate(timeline.t_ns.tolist()):
        held.advance(k)
        value = float(timeline.measured_dbm[serving][k])
        if math.isfinite(value) and value < timeline.s_th_dbm:
            target = best_measured_neighbour(timeline, held, serving, k)
            if target is not None:
                serving, streak = target, 0
                out.append(Switch(int(t) + delay_ns, serving))
                continue
        if home_rsu is None or serving == home_rsu:
            continue
        home = float(timeline.measured_dbm[home_rsu][k])
        if math.isfinite(home):
            streak = streak + 1 if home >= timeline.s_th_dbm else 0
        if streak >= hand_back_frames:
            serving, streak = home_rsu, 0
            out.append(Switch(int(t) + delay_ns, serving))
    return out


def oracle_best_switches(timeline: Timeline) -> list[Switch]:
    """The RSU with the best true RSSI at every frame, switched at the frame itself."""
    out, current = [], timeline.home_rsu
    for k, t in enumerate(timeline.t_ns.tolist()):
        values = [timeline.rssi_dbm[r][k] for r in timeline.rsus]
        best = timeline.rsus[int(np.argmax([v if math.isfinite(v) else -math.inf
                                            for v in values]))]
        if best != current:
            out.append(Switch(int(t), best))
            current = best
    return out


def oracle_ahead_switches(timeline: Timeline, target_rsu: str) -> list[Switch]:
    """A fixed home (the testbed): to ``target_rsu`` one frame period before each blockage of
    the home link, back at its first clear frame: an ideal one-frame-ahead predictor."""
    out = []
    for first_ns, last_ns in timeline.blockage_intervals_ns:
        out.append(Switch(int(first_ns) - timeline.period_ns, target_rsu))
        out.append(Switch(int(last_ns) + timeline.period_ns, timeline.home_rsu))
    return out


__all__ = ['HeldRssi', 'Switch', 'best_measured_neighbour', 'oracle_ahead_switches',
           'oracle_best_switches', 'reactive_switches', 'switches_from_triggers']
