"""The proactive policy: the node's own ``HandoverDecision``, driven frame by frame offline.

At every frame the deciding RSU's decision first observes the other RSUs that have a window
there as neighbours (their p_blocked, their latest measured RSSI), then takes its own window:
``update(newest stamp, p_blocked, serving_rssi_dbm=its measured RSSI at that frame,
target_rssi_dbm=its target's link measured at that frame)``, exactly the calls the node makes,
so the reactive floor (for the serving neighbour's link too), the hysteresis and the dwell are
the node's.
A decision executes one latency after it was taken, and never before its frame's time.

Who decides (``DecisionOptions.home_rsu``):

* a fixed home (the testbed: one RSU node): the home RSU's decision throughout; it hands over
  to a neighbour and back home by its own rules;
* no fixed home (a road): the serving RSU's decision; after a handover the new serving RSU's
  decision takes over, fresh, with the arrival time (so its dwell starts then).

A frame without a window of the deciding RSU is not decided, as in the node; with
``floor_without_window`` it is decided with p_blocked unknown (NaN), so only the floor fires.

Why each handover happened (``DecisionRecord.cause``, read off the node's event and state, the
node unchanged): ``floor`` (forced by a measurement: ``measured_below_threshold``, or
``target_blocked`` while the serving neighbour's own link was measured below S_th),
``prediction`` (``predicted_blockage``, or ``target_blocked`` on the serving neighbour's
prediction) or ``hand_back`` (``predicted_clear``, ``measured_clear``). Only ``prediction``
is a proactive handover (``metrics.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ...constants import NS_PER_MS
from ..handover import HandoverDecision, HandoverEvent, HysteresisConfig
from .policies import HeldRssi, Switch
from .predictions import FramePredictions
from .timeline import Timeline

# why a handover happened (DecisionRecord.cause; the module docstring)
FLOOR, PREDICTION, HAND_BACK = 'floor', 'prediction', 'hand_back'


@dataclass(frozen=True)
class DecisionOptions:
    """How the node's decision is driven offline (see the module docstring)."""

    hysteresis: HysteresisConfig = HysteresisConfig()
    latency_ms: float = 0.0
    home_rsu: str | None = None
    floor_without_window: bool = False

    @property
    def latency_ns(self) -> int:
        return int(round(self.latency_ms * NS_PER_MS))


@dataclass(frozen=True)
class DecisionRecord:
    """One handover the decision made: its frame, when it executes, the node's event and why
    (``cause``)."""

    frame: int
    exec_ns: int
    event: HandoverEvent
    cause: str                       # FLOOR, PREDICTION or HAND_BACK (module docstring)

    @property
    def target_rsu(self) -> str:
        return self.event.target_rsu

    @property
    def reason(self) -> str:
        return self.event.reason

    @property
    def proactive(self) -> bool:
        """Made on a predicted blockage of the link it left, not forced by the floor."""
        return self.cause == PREDICTION


def cause_of(event: HandoverEvent, decision: HandoverDecision) -> str:
    """Why ``decision`` made ``event`` (module docstring); call it right after ``update``."""
    if event.reason in ('predicted_clear', 'measured_clear'):
        return HAND_BACK
    if event.reason == 'measured_below_threshold':
        return FLOOR
    if event.reason == 'target_blocked':
        # the node's rule: the serving neighbour measured below S_th (its floor), else its
        # p_blocked >= p_on; a NaN RSSI compares False, as in the node
        state = decision.serving_state     # a fresh neighbour state or the own measurement
        low = state is not None and state.rssi_dbm < decision.config.s_th_dbm
        return FLOOR if low else PREDICTION
    return PREDICTION


def _new_decision(timeline: Timeline, rsu: str, options: DecisionOptions,
                  arrived_ns: int | None = None) -> HandoverDecision:
    # a fixed home of two RSUs knows its one target, as the testbed node is configured
    target = None
    if options.home_rsu is not None and len(timeline.rsus) == 2:
        target = next(r for r in timeline.rsus if r != rsu)
    return HandoverDecision(rsu, target, options.hysteresis, arrived_ns=arrived_ns)


def decide(timeline: Timeline, preds: FramePredictions,
           options: DecisionOptions) -> list[DecisionRecord]:
    """The handovers the node's decision makes on ``preds`` over ``timeline``."""
    held = HeldRssi(timeline, options.hysteresis.neighbour_stale_ns)
    owner = options.home_rsu or timeline.home_rsu
    decision = _new_decision(timeline, owner, options)
    out = []
    for k, t in enumerate(timeline.t_ns.tolist()):
        held.advance(k)
        for j in timeline.rsus:
            if j != owner and preds.has_window(j, k):
                decision.observe_neighbour(j, int(preds.stamp_ns[j][k]),
                                           float(preds.p_blocked[j][k]), held.get(j, k))
        if not preds.has_window(owner, k) and not options.floor_without_window:
            continue
        stamp = int(preds.stamp_ns[owner][k]) if preds.has_window(owner, k) else int(t)
        target = decision.target_rsu       # its link as the owner's node measures it
        event = decision.update(stamp, float(preds.p_blocked[owner][k]),
                                serving_rssi_dbm=float(timeline.measured_dbm[owner][k]),
                                target_rssi_dbm=float(timeline.measured_dbm[target][k])
                                if target in timeline.measured_dbm else None)
        if event is None:
            continue
        out.append(DecisionRecord(k, max(stamp, int(t)) + options.latency_ns, event,
                                  cause_of(event, decision)))
        if options.home_rsu is None:
            owner = event.target_rsu
            decision = _new_decision(timeline, owner, options, arrived_ns=stamp)
    return out


def proactive_switches(records: Iterable[DecisionRecord], *,
                       only_proactive: bool = False) -> list[Switch]:
    """The switches of the decision's handovers, at their execution times; with
    ``only_proactive``, only those made on a predicted blockage (``DecisionRecord.proactive``)."""
    return [Switch(r.exec_ns, r.target_rsu) for r in records
            if r.proactive or not only_proactive]


__all__ = ['DecisionOptions', 'DecisionRecord', 'FLOOR', 'HAND_BACK', 'PREDICTION', 'cause_of',
           'decide', 'proactive_switches']
