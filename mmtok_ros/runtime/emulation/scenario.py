"""One scenario emulated under the three policies: proactive, reactive and oracle.

The emulation core for N >= 2 RSUs. The testbed and the road are two presets of the same
options (:meth:`EmulationOptions.testbed`, :meth:`EmulationOptions.road`); they differ only in

* who decides: a fixed home RSU (the testbed's one RSU node) or the serving RSU;
* the reactive baseline's hand-back: a fixed home is returned to after ``hand_back_frames``
  frames measured at or above S_th; and its delay: a reactive RSU with a fixed home reacts at
  once (it needs no model), one without acts through the node's floor (the decision latency);
* the oracle's timing: a fixed home's oracle leaves one frame period ahead of each blockage
  of the home link and comes back at its first clear frame; otherwise it follows the best
  true RSSI frame by frame;
* which blockages count for the lead time: every blockage of the fixed home's link, or those
  of a link served up to ``LEAD_LOOKBACK_PERIODS`` before the blockage started.

A blockage is left in time with a lead of at least the decision latency of the options; the
proactive policy's proactive and spurious handovers are known from the node's decisions (not
from a live run's switches). The metrics: ``metrics.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ...constants import REACTIVE_OFF_FRAMES
from ...errors import UserInputError
from ..handover import HysteresisConfig
from .decide import DecisionOptions, DecisionRecord, decide, proactive_switches
from .metrics import PolicyResult, evaluate_policy, never_worse_check, spurious_handovers
from .policies import Switch, oracle_ahead_switches, oracle_best_switches, reactive_switches
from .predictions import FramePredictions
from .timeline import Timeline, is_road_truth

POLICIES = ('proactive', 'reactive', 'oracle')
LEAD_LOOKBACK_PERIODS = 2
# the reactive RSU of a fixed home acts right after the frame that showed the drop
IMMEDIATE_NS = 1


@dataclass(frozen=True)
class EmulationOptions:
    """How a scenario is emulated (see the module docstring)."""

    decision: DecisionOptions = DecisionOptions()
    hand_back_frames: int = REACTIVE_OFF_FRAMES

    @property
    def home_rsu(self) -> str | None:
        return self.decision.home_rsu

    @classmethod
    def testbed(cls, *, home_rsu: str = 'rsu1', latency_ms: float = 0.0,
                hysteresis: HysteresisConfig = HysteresisConfig(),
                hand_back_frames: int = REACTIVE_OFF_FRAMES) -> EmulationOptions:
        return cls(DecisionOptions(hysteresis, latency_ms, home_rsu, False), hand_back_frames)

    @classmethod
    def road(cls, *, latency_ms: float = 0.0,
             hysteresis: HysteresisConfig = HysteresisConfig()) -> EmulationOptions:
        return cls(DecisionOptions(hysteresis, latency_ms, None, True))

    @classmethod
    def for_truth(cls, truth: dict, **kw) -> EmulationOptions:
        """The preset that matches a sidecar: road data -> road, testbed data -> testbed."""
        return cls.road(**kw) if is_road_truth(truth) else cls.testbed(**kw)

    def with_latency(self, latency_ms: float) -> EmulationOptions:
        return replace(self, decision=replace(self.decision, latency_ms=float(latency_ms)))

    @property
    def preset(self) -> str:
        return 'testbed' if self.home_rsu is not None else 'road'


@dataclass
class ScenarioResult:
    """The policies' results on one scenario, the proactive decisions and the check."""

    timeline: Timeline
    results: dict[str, PolicyResult]
    records: list[DecisionRecord]
    check: dict

    @property
    def metrics(self) -> dict[str, dict]:
        return {name: r.metrics for name, r in self.results.items()}


def baseline_switches(timeline: Timeline, options: EmulationOptions) -> dict[str, list[Switch]]:
    """The reactive and oracle switches of ``options`` on ``timeline``."""
    d = options.decision
    if d.home_rsu is None:
        return {'reactive': reactive_switches(timeline, delay_ns=d.latency_ns,
                                              stale_ns=d.hysteresis.neighbour_stale_ns),
                'oracle': oracle_best_switches(timeline)}
    target = next(r for r in timeline.rsus if r != d.home_rsu)
    return {'reactive': reactive_switches(timeline, delay_ns=IMMEDIATE_NS,
                                          stale_ns=d.hysteresis.neighbour_stale_ns,
                                          home_rsu=d.home_rsu,
                                          hand_back_frames=options.hand_back_frames),
            'oracle': oracle_ahead_switches(timeline, target)}


def evaluate(timeline: Timeline, policies: dict[str, list[Switch]],
             options: EmulationOptions) -> dict[str, PolicyResult]:
    """Every policy's metrics, with the lead-time lookback of ``options`` and its decision
    latency as the least lead in time."""
    lookback = (None if options.home_rsu is not None
                else LEAD_LOOKBACK_PERIODS * timeline.period_ns)
    return {name: evaluate_policy(name, timeline, sw, lookback_ns=lookback,
                                  in_time_ms=options.decision.latency_ms)
            for name, sw in policies.items()}


def emulate(timeline: Timeline, options: EmulationOptions, *,
            preds: FramePredictions | None = None,
            proactive: list[Switch] | None = None) -> ScenarioResult:
    """The three policies on one scenario. The proactive policy is the node's decision on
    ``preds`` or, from a live run, the switches of the node's received triggers."""
    if (preds is None) == (proactive is None):
        raise ValueError('give either the predictions or the proactive switches')
    if options.home_rsu not in (None, timeline.home_rsu):
        raise UserInputError(f'{timeline.name}: the fixed home {options.home_rsu} must be the RSU '
                         f'serving at the first frame, {timeline.home_rsu}')
    records = [] if preds is None else decide(timeline, preds, options.decision)
    policies = {'proactive': proactive_switches(records) if preds is not None else proactive,
                **baseline_switches(timeline, options)}
    results = evaluate(timeline, policies, options)
    mine = results['proactive']
    mine.metrics.update(spurious_handovers(
        timeline, mine.switches,
        None if preds is None else proactive_switches(records, only_proactive=True),
        mine.metrics['clear_link_s']))
    metrics = {name: r.metrics for name, r in results.items()}
    return ScenarioResult(timeline, results, records, never_worse_check(timeline.name, metrics))


__all__ = ['EmulationOptions', 'LEAD_LOOKBACK_PERIODS', 'POLICIES', 'ScenarioResult',
           'baseline_switches', 'emulate', 'evaluate']
