"""What a policy did to the car, one definition per metric, and the checks built on them.

* served RSSI: frame k is served by the RSU of the last switch executed at or before t_k, at
  that RSU's true RSSI; ``mean_served_rssi_dbm`` averages the frames where it is known;
* ``time_below_threshold_s``: frames served below S_th x the frame period (the outage);
* ``handovers``: switches that change the serving RSU;
* per blockage of a link the policy was serving (a run of frames with that link's true RSSI
  below S_th, while the policy served the link ``lookback`` before its start or at its start):
  the lead time = start - when the policy left the link: the last time it left at or before
  the start (within the lookback), else the first time it left up to one period after the
  blockage (negative: late); None when it stayed through. ``handed_over_before_blockage``
  counts the blockages with a positive lead. A lookback of None counts every blockage of the
  link served at the first frame, however early the car left it (a fixed home).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ...constants import NS_PER_MS, NS_PER_S
from .policies import Switch
from .timeline import Timeline

# never worse than reactive, per scenario: no more time below S_th (no tolerance: one frame
# more is worse) and a mean served RSSI at most this much lower
NEVER_WORSE_RSSI_TOL_DB = 0.1
NEVER_WORSE_TIME_TOL_S = 0.0


@dataclass
class PolicyResult:
    name: str
    switches: list[Switch]
    serving: list[str]                     # per frame
    served_rssi_dbm: np.ndarray            # per frame
    metrics: dict = field(default_factory=dict)


def serve(timeline: Timeline, switches: Sequence[Switch]) -> tuple[list[str], np.ndarray]:
    """Serving RSU and served (true) RSSI per frame."""
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
    """Switches that change the serving RSU (repeated switches to the same RSU dropped)."""
    out, current = [], timeline.home_rsu
    for s in sorted(switches, key=lambda s: s.time_ns):
        if s.rsu != current:
            out.append(s)
            current = s.rsu
    return out


def blockage_leads(timeline: Timeline, switches: Sequence[Switch],
                   lookback_ns: int | None) -> list[dict]:
    """Per blockage of a served link (module docstring): its link, start (s from the first
    frame) and lead time in ms (None: stayed through it), in time order."""
    eff = effective_switches(timeline, switches)
    leaves, current = [], timeline.home_rsu            # (time, the RSU it left)
    for s in eff:
        leaves.append((s.time_ns, current))
        current = s.rsu

    def serving_at(t_ns: float) -> str:
        rsu = timeline.home_rsu
        for s in eff:
            if s.time_ns > t_ns:
                break
            rsu = s.rsu
        return rsu

    out = []
    for rsu, intervals in timeline.link_intervals_ns.items():
        for first_ns, last_ns in intervals:
            early = -np.inf if lookback_ns is None else first_ns - lookback_ns
            if rsu not in (serving_at(early), serving_at(first_ns)):
                continue
            if serving_at(first_ns) != rsu:
                left = [t for t, prev in leaves if prev == rsu and early < t <= first_ns][-1:]
            else:
                left = [t for t, prev in leaves if prev == rsu
                        and first_ns < t <= last_ns + timeline.period_ns][:1]
            out.append({'rsu': rsu, 'start_s': timeline.seconds(first_ns),
                        'lead_ms': (first_ns - left[0]) / NS_PER_MS if left else None})
    return sorted(out, key=lambda d: (d['start_s'], d['rsu']))


def evaluate_policy(name: str, timeline: Timeline, switches: Sequence[Switch], *,
                    lookback_ns: int | None) -> PolicyResult:
    """The metrics of the module docstring for one policy on one scenario."""
    serving, served = serve(timeline, switches)
    finite = np.isfinite(served)
    below = int(np.count_nonzero(served[finite] < timeline.s_th_dbm))
    leads = blockage_leads(timeline, switches, lookback_ns)
    defined = [d['lead_ms'] for d in leads if d['lead_ms'] is not None]
    metrics = {
        'mean_served_rssi_dbm': float(np.mean(served[finite])) if finite.any() else None,
        'time_below_threshold_s': below * timeline.period_ns / NS_PER_S,
        'handovers': len(effective_switches(timeline, switches)),
        'serving_blockages': len(leads),
        'handed_over_before_blockage': sum(1 for v in defined if v > 0),
        'lead_time_ms': float(np.mean(defined)) if defined else None,
        'blockages': leads,
        'serving_share': {r: serving.count(r) / max(len(serving), 1) for r in timeline.rsus},
    }
    return PolicyResult(name, list(switches), serving, served, metrics)


def first_blockage_before(metrics: Mapping) -> bool:
    """The policy left the link before the first counted blockage started."""
    leads = metrics['blockages']
    return bool(leads) and leads[0]['lead_ms'] is not None and leads[0]['lead_ms'] > 0


def never_worse_check(scenario: str, metrics: Mapping[str, Mapping], *,
                      policy: str = 'proactive', rssi_tol_db: float = NEVER_WORSE_RSSI_TOL_DB,
                      time_tol_s: float = NEVER_WORSE_TIME_TOL_S) -> dict:
    """``policy`` against reactive on one scenario: no more time below S_th and a mean
    served RSSI no more than ``rssi_tol_db`` lower; also whether it handed over before the
    first blockage wherever the oracle did, and served more RSSI than reactive."""
    p, r = metrics[policy], metrics['reactive']
    time_ok = p['time_below_threshold_s'] <= r['time_below_threshold_s'] + time_tol_s + 1e-9
    rssi_ok = p['mean_served_rssi_dbm'] >= r['mean_served_rssi_dbm'] - rssi_tol_db
    oracle_before = 'oracle' in metrics and first_blockage_before(metrics['oracle'])
    return {'scenario': scenario, 'policy': policy, 'time_below_ok': bool(time_ok),
            'mean_rssi_ok': bool(rssi_ok), 'passed': bool(time_ok and rssi_ok),
            'd_time_below_s': p['time_below_threshold_s'] - r['time_below_threshold_s'],
            'd_mean_rssi_db': p['mean_served_rssi_dbm'] - r['mean_served_rssi_dbm'],
            'rssi_tol_db': rssi_tol_db, 'time_tol_s': time_tol_s,
            'before_blockage': (not oracle_before) or first_blockage_before(p),
            'above_reactive': p['mean_served_rssi_dbm'] > r['mean_served_rssi_dbm']}


__all__ = ['NEVER_WORSE_RSSI_TOL_DB', 'NEVER_WORSE_TIME_TOL_S', 'PolicyResult',
           'blockage_leads', 'effective_switches', 'evaluate_policy', 'first_blockage_before',
           'never_worse_check', 'serve']
