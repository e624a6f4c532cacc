"""Proactive handover decision with hysteresis, N neighbours and a reactive floor (ROS-free).

The model at the home RSU predicts, for every window, the probability that the home link is
blocked at the next frame (1 - epsilon of the paper's Eq. 8). The decision turns that stream,
the home link's measured RSSI and the neighbours' own link states into handover triggers
without flapping. While the home RSU serves:

* ``predicted_blockage`` -- after ``on_windows`` consecutive windows with ``p_blocked >= p_on``
  (``on_windows=1``: at the first confident prediction, proactive), at least ``min_dwell_ns``
  after the last handover or the vehicle's arrival (``arrived_ns``): a prediction alone never
  bounces the vehicle straight back (ping-pong); the floor below is not held back;
* ``measured_below_threshold`` -- the reactive floor: after ``floor_windows`` consecutive
  windows whose measured home RSSI is below S_th (Eq. 8), whatever the model says. This is
  what a reactive policy does, so the proactive policy is never later than the reactive one.
  A window without a measurement (NaN) neither extends nor breaks the streak.

While a neighbour serves:

* ``predicted_clear`` -- hand back home after ``off_windows`` consecutive windows with
  ``p_blocked < p_off`` (``p_off <= p_on``: a probability band) and the home link not measured
  below S_th, at least ``min_dwell_ns`` after the last handover;
* ``measured_clear`` -- the hand-back floor: once the home link has been measured below S_th
  while away (or the handover was the reactive floor's), hand back after ``clear_windows``
  consecutive windows with the home link measured at or above S_th and ``p_blocked < p_on``,
  dwell or not. This is the reactive baseline's hand-back (``REACTIVE_OFF_FRAMES`` frames
  measured clear), so a model that is slow to say "clear" after a blockage (a late
  all-clear) cannot keep the vehicle on a neighbour longer than a reactive policy would,
  into that neighbour's own blockage. Before the home link was seen down it never fires: a
  proactive handover is not undone by the measurements it was made ahead of.
  ``clear_windows=0``: off (the hand-back before this rule);
* ``target_blocked`` -- the serving neighbour's own link state (its typed link status) says it
  is blocked (predicted ``>= p_on`` or measured below S_th): move to the best other neighbour,
  or home if no neighbour qualifies and the home link is neither predicted nor measured blocked.
  Without a fresh state of it, ``target_rsu``'s link as this node measures it itself
  (``target_rssi_dbm``: the testbed's second RSSI stream) stands in for its measurement, so
  the floor also holds for the serving neighbour's link where no neighbour node reports it.

The target of a predicted blockage is the best *eligible* neighbour: a state no older than
``neighbour_stale_ns`` (data time, either direction), not predicted blocked and not measured
below S_th; best = highest measured RSSI (unmeasured last), then lowest ``p_blocked``, then
RSU id. The floor follows the measurements as the reactive policy does: the fresh neighbour
with the best measured RSSI at or above S_th, then an eligible one. Without ``neighbours``
configured and no fresh state, ``target_rsu`` is taken (the two-RSU testbed) unless this
node measures that link below S_th itself (``target_rssi_dbm``), as the reactive policy would
not go there either (the window counts in ``no_target``); with fresh
states that all say blocked, nobody is handed the vehicle and ``no_target`` counts the window.

Dead neighbours: with ``neighbours`` configured only a *live* (fresh) neighbour is a target;
a dead node's state goes stale, and its first fresh state after a restart makes it eligible
at the next window. When a rule fires and none is live, nothing is triggered:
``no_live_target`` names the rule (for the window just decided) and ``no_live_windows`` counts
such windows, so the runtime can warn once and report it.

Time is the data time (window newest stamp, ns); a stamp that goes back clears the streaks
(looped bag), not the serving RSU or the neighbour states.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from ..constants import REACTIVE_OFF_FRAMES, S_TH_DBM
from ..data.errors import DataError
from ..errors import UserInputError

from .handover_event import NAN, REASON_CODES, HandoverEvent, NeighbourState


@dataclass(frozen=True)
class HysteresisConfig:
    """The decision's thresholds and counts; how the defaults were chosen: docs/results.md."""

    p_on: float = 0.6               # p_blocked at or above this counts toward handing over
    p_off: float = 0.3              # p_blocked below this counts toward handing back
    on_windows: int = 1             # consecutive windows needed to hand over
    off_windows: int = 5            # consecutive windows needed to hand back
    # no hand-back, and no proactive handover, earlier than this after a handover
    min_dwell_ns: int = 3_000_000_000
    # reactive floor: hand over after this many consecutive windows measured below S_th
    # (1: never later than the reactive baseline, which leaves after one such frame)
    floor_windows: int = 1
    # hand-back floor: home measured clear this many consecutive windows after it was measured
    # down, p_blocked < p_on: go home, dwell or not (the reactive baseline's hand-back); 0: off
    clear_windows: int = REACTIVE_OFF_FRAMES
    s_th_dbm: float = S_TH_DBM      # S_th of Eq. 8 [dBm]: measured below it = blocked
    # a neighbour state older than this (data time) is ignored; a few frame periods, so one
    # late or lost link status does not hide a neighbour
    neighbour_stale_ns: int = 1_000_000_000

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_off <= self.p_on <= 1.0:
            raise UserInputError(f'need 0 <= p_off <= p_on <= 1, got p_off={self.p_off}, '
                             f'p_on={self.p_on}')
        if self.on_windows < 1 or self.off_windows < 1 or self.min_dwell_ns < 0:
            raise UserInputError(f'need on_windows >= 1, off_windows >= 1, min_dwell_ns >= 0; got '
                             f'{self.on_windows}, {self.off_windows}, {self.min_dwell_ns}')
        if self.floor_windows < 1 or self.neighbour_stale_ns <= 0 or self.clear_windows < 0:
            raise UserInputError(f'need floor_windows >= 1, clear_windows >= 0 and '
                                 f'neighbour_stale_ns > 0; got {self.floor_windows}, '
                                 f'{self.clear_windows}, {self.neighbour_stale_ns}')
        if not math.isfinite(self.s_th_dbm):
            raise UserInputError(f's_th_dbm must be finite, got {self.s_th_dbm}')


def _finite(value: float | None) -> float:
    return NAN if value is None or not math.isfinite(value) else float(value)


class HandoverDecision:
    """Feeds on windows of the home link (``update``) and neighbour link states
    (``observe_neighbour``); returns a :class:`HandoverEvent` when the serving RSU changes."""

    def __init__(self, home_rsu: str, target_rsu: str | None = None,
                 config: HysteresisConfig = HysteresisConfig(), *,
                 arrived_ns: int | None = None, neighbours: Iterable[str] = ()) -> None:
        """``arrived_ns``: when the vehicle was handed to ``home_rsu`` (a serving RSU that
        takes over the decision after a handover); None: it has always been here.
        ``neighbours``: the configured neighbour ids (the node's ``neighbours``); when given,
        only a live one is ever a target (see the module docstring)."""
        if home_rsu == target_rsu:
            raise UserInputError(f'home and target RSU must differ, both are {home_rsu!r}')
        self.configured = tuple(dict.fromkeys(neighbours))
        if home_rsu in self.configured:
            raise UserInputError(f'neighbours={",".join(self.configured)!r} lists this RSU '
                                 f'({home_rsu}) itself')
        self.home_rsu, self.target_rsu, self.config = home_rsu, target_rsu, config
        self.serving_rsu = home_rsu
        self.handovers = 0
        self.no_target = 0          # windows where a rule fired but no neighbour qualified
        # the rule that fired in the last window while no configured neighbour was live
        self.no_live_target: str | None = None
        self.no_live_windows = 0    # windows where that happened
        self.serving_state: NeighbourState | None = None   # the serving neighbour, last window
        self._neighbours: dict[str, NeighbourState] = {}
        self._on = self._off = self._below = self._clear = 0
        self._home_was_down = False   # home measured below S_th since the last handover
        self._last_stamp_ns: int | None = None
        self._last_handover_ns: int | None = arrived_ns
        self._arrived_ns = arrived_ns

    @property
    def neighbours(self) -> dict[str, NeighbourState]:
        return dict(self._neighbours)

    def live_neighbours(self, stamp_ns: int | None = None) -> list[str]:
        """Ids of the neighbours whose state is fresh at ``stamp_ns`` (default: the last
        window's stamp, else the newest neighbour state), sorted."""
        if stamp_ns is None:
            stamp_ns = self._last_stamp_ns
        if stamp_ns is None:
            if not self._neighbours:
                return []
            stamp_ns = max(s.stamp_ns for s in self._neighbours.values())
        return sorted(self._fresh(stamp_ns))

    def reset_counters(self) -> None:
        """Forget the streaks (time jumped back); the serving RSU stays as it is."""
        self._on = self._off = self._below = self._clear = 0
        self._last_stamp_ns = None
        self._last_handover_ns = self._arrived_ns if self.handovers == 0 else None

    def observe_neighbour(self, rsu_id: str, stamp_ns: int, p_blocked: float,
                          rssi_dbm: float | None = None) -> None:
        """Record a neighbour's latest own-link state (from its LinkStatus)."""
        if not rsu_id or rsu_id == self.home_rsu:
            raise DataError(f'a neighbour needs an id other than the home RSU '
                             f'{self.home_rsu!r}, got {rsu_id!r}')
        p = _finite(p_blocked)
        if math.isfinite(p) and not 0.0 <= p <= 1.0:
            raise DataError(f'neighbour {rsu_id!r}: p_blocked must be in [0, 1], got {p}')
        self._neighbours[rsu_id] = NeighbourState(rsu_id, int(stamp_ns), p, _finite(rssi_dbm))

    def update(self, stamp_ns: int, p_blocked: float, *, serving_rssi_dbm: float | None = None,
               target_rssi_dbm: float | None = None) -> HandoverEvent | None:
        """One window of the home link: predicted ``p_blocked`` and, if known, the home
        link's measured RSSI at the newest frame (``serving_rssi_dbm``, NaN/None: unknown) and
        ``target_rsu``'s link measured by this node (``target_rssi_dbm``, module docstring)."""
        cfg = self.config
        if self._last_stamp_ns is not None and stamp_ns <= self._last_stamp_ns:
            self.reset_counters()
        self._last_stamp_ns = stamp_ns
        self.no_live_target = self.serving_state = None
        rssi = _finite(serving_rssi_dbm)
        measured_low = rssi < cfg.s_th_dbm          # False for NaN
        self._on = self._on + 1 if p_blocked >= cfg.p_on else 0
        self._off = self._off + 1 if p_blocked < cfg.p_off and not measured_low else 0
        if math.isfinite(rssi):
            self._below = self._below + 1 if measured_low else 0
            self._clear = 0 if measured_low else self._clear + 1
            self._home_was_down = self._home_was_down or measured_low
        dwell_ok = (self._last_handover_ns is None
                    or stamp_ns - self._last_handover_ns >= cfg.min_dwell_ns)
        if self.serving_rsu == self.home_rsu:
            # The floor first: when it holds, a reactive policy hands over now too, so the
            # model gets credit ('predicted_blockage') only for handovers it made earlier.
            if self._below >= cfg.floor_windows:
                reason = 'measured_below_threshold'
            elif self._on >= cfg.on_windows and dwell_ok:
                reason = 'predicted_blockage'
            else:
                return None
            return self._switch_to_best(stamp_ns, p_blocked, rssi, reason, exclude=(),
                                        target_rssi=_finite(target_rssi_dbm))
        if self._off >= cfg.off_windows and dwell_ok:
            return self._switch(stamp_ns, self.home_rsu, p_blocked, rssi, 'predicted_clear')
        if (cfg.clear_windows and self._home_was_down and self._clear >= cfg.clear_windows
                and p_blocked < cfg.p_on):
            return self._switch(stamp_ns, self.home_rsu, p_blocked, rssi, 'measured_clear')
        serving = self._fresh(stamp_ns).get(self.serving_rsu)
        if serving is None and self.serving_rsu == self.target_rsu:
            serving = NeighbourState(self.target_rsu, stamp_ns, NAN, _finite(target_rssi_dbm))
        self.serving_state = serving       # what the rules below saw of the serving link
        if serving is not None and serving.rssi_dbm < cfg.s_th_dbm:
            # the floor for the serving neighbour's link: the best measured link, home
            # included, as the reactive policy would take
            best = self._best_measured(stamp_ns, exclude=(self.serving_rsu,))
            home_ok = math.isfinite(rssi) and not measured_low
            if home_ok and (best is None or rssi >= best.rssi_dbm):
                return self._switch(stamp_ns, self.home_rsu, p_blocked, rssi, 'target_blocked')
            if best is not None:
                return self._switch(stamp_ns, best.rsu_id, p_blocked, rssi, 'target_blocked',
                                    best)
        if serving is not None and self._blocked(serving.p_blocked, serving.rssi_dbm):
            best = self._best(stamp_ns, exclude=(self.serving_rsu,))
            if best is not None:
                return self._switch(stamp_ns, best.rsu_id, p_blocked, rssi, 'target_blocked',
                                    best)
            if p_blocked < cfg.p_on and not measured_low:
                return self._switch(stamp_ns, self.home_rsu, p_blocked, rssi, 'target_blocked')
            self.no_target += 1
        return None

    # ------------------------------------------------------------------ target choice
    def _blocked(self, p_blocked: float, rssi_dbm: float) -> bool:
        return p_blocked >= self.config.p_on or rssi_dbm < self.config.s_th_dbm

    def _fresh(self, stamp_ns: int) -> dict[str, NeighbourState]:
        limit = self.config.neighbour_stale_ns
        return {k: s for k, s in self._neighbours.items() if abs(stamp_ns - s.stamp_ns) <= limit}

    def _best(self, stamp_ns: int, exclude: tuple[str, ...]) -> NeighbourState | None:
        eligible = [s for k, s in self._fresh(stamp_ns).items()
                    if k not in exclude and math.isfinite(s.p_blocked)
                    and not self._blocked(s.p_blocked, s.rssi_dbm)]
        if not eligible:
            return None
        return min(eligible, key=lambda s: (not math.isfinite(s.rssi_dbm),
                                            -s.rssi_dbm if math.isfinite(s.rssi_dbm) else 0.0,
                                            s.p_blocked, s.rsu_id))

    def _best_measured(self, stamp_ns: int, exclude: tuple[str, ...]) -> NeighbourState | None:
        """The fresh neighbour with the best measured RSSI at or above S_th, predictions
        aside: what the reactive policy takes, so the floor is never worse than reactive."""
        usable = [s for k, s in self._fresh(stamp_ns).items()
                  if k not in exclude and s.rssi_dbm >= self.config.s_th_dbm]   # NaN: no
        return max(usable, key=lambda s: (s.rssi_dbm, s.rsu_id)) if usable else None

    def _switch_to_best(self, stamp_ns: int, p_blocked: float, rssi: float, reason: str,
                        exclude: tuple[str, ...], target_rssi: float = NAN
                        ) -> HandoverEvent | None:
        # the floor follows the measurements, like the reactive policy; a predicted blockage
        # prefers a neighbour whose own prediction is clear
        best = ((self._best_measured(stamp_ns, exclude)
                 if reason == 'measured_below_threshold' else None)
                or self._best(stamp_ns, exclude))
        if best is not None:
            return self._switch(stamp_ns, best.rsu_id, p_blocked, rssi, reason, best)
        if not self._fresh(stamp_ns):
            if self.configured:
                # Neighbours configured, none live (dead, or not heard yet): no trigger to a
                # dead RSU; the runtime warns (once) and reports it.
                self.no_live_target = reason
                self.no_live_windows += 1
            elif self.target_rsu is not None and not target_rssi < self.config.s_th_dbm:
                # No neighbour state: the configured target (2-RSU testbed), unless this node
                # measures its link below S_th itself (its second RSSI stream), where the
                # reactive policy would not go either. Unmeasured (NaN): blindly, as before.
                return self._switch(stamp_ns, self.target_rsu, p_blocked, rssi, reason,
                                    NeighbourState(self.target_rsu, stamp_ns, NAN, target_rssi))
        self.no_target += 1
        return None

    def _switch(self, stamp_ns: int, target: str, p_blocked: float, rssi: float, reason: str,
                state: NeighbourState | None = None) -> HandoverEvent:
        event = HandoverEvent(int(stamp_ns), self.serving_rsu, target, float(p_blocked), reason,
                              serving_rssi_dbm=rssi,
                              target_rssi_dbm=state.rssi_dbm if state else NAN,
                              target_p_blocked=state.p_blocked if state else NAN)
        # the floor's handover was made because home was measured down (this window)
        self._home_was_down = reason == 'measured_below_threshold'
        self.serving_rsu = target
        self.handovers += 1
        self._on = self._off = self._below = self._clear = 0
        self._last_handover_ns = int(stamp_ns)
        return event


__all__ = ['HandoverDecision', 'HandoverEvent', 'HysteresisConfig', 'NeighbourState',
           'REASON_CODES']
