"""The RSU node's work per window, without ROS: newest window -> prediction -> handover
decision -> deadline control, and the counters and latency percentiles /diagnostics reports.

``ros/rsu_node.py`` is the adapter: its callbacks queue synchronized frames, its inference
thread hands them to :meth:`RsuRuntime.step` and publishes the :class:`RsuOutput` that ``step``
passes to its ``publish`` callback. Only the newest window of a batch is inferred (a backlog
is skipped, and counted), so the node never falls further behind than one window.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

from ..constants import NS_PER_MS
from ..data.errors import DataError
from ..data.stream import TimeJump
from ..timing import RollingPercentiles
from .handover import HandoverEvent
from .predictor import DeadlineController, Prediction
from .runtime_config import MissStreak, RuntimeConfig

# what ``stats`` reports from ``RsuRuntime.counters``, in this order
COUNTER_KEYS = ('windows_published', 'windows_skipped', 'handovers', 'deadline_misses',
                'keep_scale_changes', 'inference_errors', 'stale_after_time_jump')


@dataclass(frozen=True)
class RsuOutput:
    """One inferred window: what the node publishes as a ``LinkStatus`` (and, when the
    serving RSU changed, ``handover`` as a ``HandoverTrigger``)."""

    prediction: Prediction
    serving_rsu: str
    threshold: float            # the decision threshold in use
    own_rssi_dbm: float         # the own link's measured RSSI at the newest frame; NaN: none
    latency_ms: float           # newest frame's arrival -> this output
    deadline_ms: float
    keep_scale: float           # the keep-ratio scale the model ran with
    handover: HandoverEvent | None


class RsuRuntime:
    """Runs the model on the newest window and decides handovers (see module docstring).

    ``predictor``: a ``StreamingPredictor`` (or an exported model's predictor) whose
    ``model`` may have routed layers; ``stream``: the node's ``WindowStream`` (its
    ``assemble`` half runs here, on the inference thread); ``decision``: the
    ``HandoverDecision``; ``model_threshold``: the threshold the model file carries; ``log``:
    anything with ``info``/``warning``/``error`` (the node's logger); ``clock_ns``: the clock
    the arrival times were read from.

    ``step`` runs on one thread; ``observe_neighbour`` and ``reconfigure`` may be called from
    another.
    """

    def __init__(self, predictor: Any, stream: Any, decision: Any, *,
                 model_threshold: float, config: RuntimeConfig = RuntimeConfig(),
                 log: Any = None, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.predictor, self.stream, self.decision = predictor, stream, decision
        self.model_threshold = model_threshold
        self.config = config
        self.log = log if log is not None else logging.getLogger(__name__)
        self.clock_ns = clock_ns
        self.counters: Counter[str] = Counter()
        self.latency_percentiles = RollingPercentiles()
        self.inference_percentiles = RollingPercentiles()
        self.misses = MissStreak()
        self._decision_lock = threading.Lock()    # neighbour callbacks vs the worker
        self._no_live_warned = False    # the WARN for "no neighbour live" is out (re-armed
        self._bad_neighbour_warned = False   # once one is live again)
        model = predictor.model
        self.routed = bool(model.routed_layers())
        self.controller = DeadlineController(
            config.deadline_ms, min_scale=min(config.deadline_min_scale, self._max_scale()),
            max_scale=self._max_scale(), patience=config.deadline_patience,
        ) if self.routed else None
        if self.routed and config.keep_ratio_scale > 0:
            model.set_keep_override(config.keep_ratio_scale)
        predictor.threshold = self.threshold()

    # ------------------------------------------------------------------ settings
    def threshold(self) -> float:
        """``blocked_threshold``, or (when negative) the one the model file carries."""
        if self.config.blocked_threshold >= 0:
            return self.config.blocked_threshold
        return self.model_threshold

    def _max_scale(self) -> float:
        return self.config.keep_ratio_scale if self.config.keep_ratio_scale > 0 else 1.0

    def reconfigure(self, **changes: Any) -> None:
        """Apply changed settings (names of :class:`RuntimeConfig`), from the next window."""
        self.config = replace(self.config, **changes)
        if 'blocked_threshold' in changes:
            self.predictor.threshold = self.threshold()
        c = self.controller
        if c is None:
            return
        if 'deadline_ms' in changes:
            c.deadline_ms = self.config.deadline_ms
        if 'keep_ratio_scale' in changes:
            c.max_scale = self._max_scale()
            c.min_scale = min(c.min_scale, c.max_scale)
            c.scale = min(c.scale, c.max_scale)
            self.predictor.model.set_keep_override(c.scale)

    def observe_neighbour(self, rsu_id: str, stamp_ns: int, p_blocked: float,
                          rssi_dbm: float) -> None:
        """A neighbour's own link state (its LinkStatus): a handover target candidate. A
        state the decision refuses (the home RSU's id, p_blocked outside [0, 1]) or from an
        RSU not in ``neighbours`` is counted (``rejected_neighbour_status``), warned about
        once, and left out: a faulty neighbour never stops this node."""
        configured = getattr(self.decision, 'configured', ())
        try:
            if configured and rsu_id not in configured:
                raise DataError(f'rsu_id {rsu_id!r} is not one of neighbours='
                                f'{",".join(configured)}')
            with self._decision_lock:
                self.decision.observe_neighbour(rsu_id, stamp_ns, p_blocked, rssi_dbm)
        except DataError as err:
            self.counters['rejected_neighbour_status'] += 1
            if not self._bad_neighbour_warned:
                self._bad_neighbour_warned = True
                self.log.warning(f'neighbour link status left out: {err} (further ones only '
                                 'counted as rejected_neighbour_status in /diagnostics)')

    def keep_scale(self) -> float:
        """The keep scale running: an exported model runs the graph nearest below the
        controller's scale (``ExportedModel.keep_scale``)."""
        running = getattr(self.predictor.model, 'keep_scale', None)
        if running is not None:
            return float(running)
        return float(self.controller.scale if self.controller else 1.0)

    # ------------------------------------------------------------------ per window
    def step(self, taken: Iterable[tuple[Any, int]],
             publish: Callable[[RsuOutput], None]) -> RsuOutput | None:
        """Assemble the synchronized frames ``taken`` ((frame or TimeJump, arrival ns) in
        arrival order), infer the newest window, call ``publish`` with the output, then count
        and control the deadline. An exception in inference or ``publish`` is counted (and
        logged the first time), never raised: the node's inference thread goes on."""
        newest = self._newest(taken)
        if newest is None:
            return None
        try:
            return self._infer(*newest, publish)
        except Exception as err:
            self.counters['inference_errors'] += 1
            if self.counters['inference_errors'] == 1:
                self.log.error(f'inference failed: {type(err).__name__}: {err} (further '
                               'failures only counted)')
            return None

    def _newest(self, taken: Iterable[tuple[Any, int]]
                ) -> tuple[Any, int, float, float] | None:
        newest = None
        for item, arrival_ns in taken:
            if isinstance(item, TimeJump):
                self.predictor.clear()
                with self._decision_lock:
                    self.decision.reset_counters()
                self.counters['stale_after_time_jump'] += newest is not None
                newest = None
            assembled = self.stream.assemble(item)
            if assembled is None or assembled.window is None:
                continue
            self.counters['windows_skipped'] += newest is not None  # a newer one came
            rssi = assembled.frame.rssi_dbm             # own link first; NaN: not measured
            target_rssi_dbm = float(rssi[1]) if len(rssi) > 1 else float('nan')
            newest = (assembled.window, arrival_ns, float(rssi[0]), target_rssi_dbm)
        return newest

    def _infer(self, window: Any, arrival_ns: int, own_rssi_dbm: float, target_rssi_dbm: float,
               publish: Callable[[RsuOutput], None]) -> RsuOutput:
        deadline_ms = float(self.config.deadline_ms)
        pred = self.predictor.predict(window)
        with self._decision_lock:
            event = self.decision.update(pred.newest_stamp_ns, pred.p_blocked,
                                         serving_rssi_dbm=own_rssi_dbm,
                                         target_rssi_dbm=target_rssi_dbm)
            self._watch_neighbours()
        latency_ms = (self.clock_ns() - arrival_ns) / 1e6
        out = RsuOutput(pred, serving_rsu=self.decision.serving_rsu,
                        threshold=self.predictor.threshold, own_rssi_dbm=own_rssi_dbm,
                        latency_ms=latency_ms, deadline_ms=deadline_ms,
                        keep_scale=self.keep_scale(), handover=event)
        publish(out)
        if event is not None:
            self.counters['handovers'] += 1
            self.log.info(f'handover {event.source_rsu} -> {event.target_rsu}: {event.reason}, '
                          f'p_blocked={event.p_blocked:.2f}, own RSSI '
                          f'{event.serving_rssi_dbm:.1f} dBm')
        self.counters['windows_published'] += 1
        self.latency_percentiles.add(latency_ms)
        self.inference_percentiles.add(pred.inference_ms)
        self._control_deadline(latency_ms, deadline_ms)
        return out

    def _watch_neighbours(self) -> None:
        """ONE WARN when a handover is wanted and no configured neighbour is live (no trigger
        goes to a dead RSU); re-armed, with an INFO, once a neighbour is live again."""
        d = self.decision
        configured = getattr(d, 'configured', ())
        if not configured:
            return
        if d.no_live_target is not None and not self._no_live_warned:
            self._no_live_warned = True
            stale_ms = d.config.neighbour_stale_ns / NS_PER_MS
            self.log.warning(
                f'handover wanted ({d.no_live_target}) but no neighbour is live: none of '
                f'{", ".join(configured)} sent a link status within {stale_ms:.0f} ms '
                '(hysteresis.neighbour_stale_ms); no trigger sent, the vehicle stays here '
                '(logged once until a neighbour is back; /diagnostics neighbours/live)')
        elif self._no_live_warned and d.live_neighbours():
            self._no_live_warned = False
            self.log.info(f'neighbour(s) live again: {", ".join(d.live_neighbours())}; '
                          'handover targets again')

    def neighbour_stats(self) -> dict[str, Any]:
        """The neighbours' liveness for /diagnostics (empty without ``neighbours``)."""
        d = self.decision
        configured = getattr(d, 'configured', ())
        if not configured:
            return {}
        with self._decision_lock:
            live = d.live_neighbours()
            wanted = d.no_live_target
            windows = d.no_live_windows
        return {'neighbours/configured': ','.join(configured),
                'neighbours/live': ','.join(r for r in configured if r in live),
                'neighbours/stale': ','.join(r for r in configured if r not in live),
                'handover/no_live_target': wanted or '',
                'handover/no_live_target_windows': windows,
                'rejected_neighbour_status': self.counters['rejected_neighbour_status']}

    def _control_deadline(self, latency_ms: float, deadline_ms: float) -> None:
        """Count a miss, warn on a streak, and let the controller scale the keep ratio."""
        met = latency_ms <= deadline_ms
        warn_after = self.config.deadline_warn_after
        self.counters['deadline_misses'] += not met
        if self.misses.update(met, warn_after):
            self.log.warning(f'deadline missed {self.misses.streak} times in a row (threshold '
                             f'deadline_warn_after={warn_after}): latency {latency_ms:.1f} ms '
                             f'> deadline_ms={deadline_ms:.1f}')
        if self.controller is None:
            return
        new_scale = self.controller.update(latency_ms)
        if new_scale is not None:
            self.predictor.model.set_keep_override(new_scale)
            self.counters['keep_scale_changes'] += 1
            self.log.info(f'deadline control: keep-ratio scale -> {new_scale:.2f} (latency '
                          f'{latency_ms:.1f} ms, deadline {deadline_ms:.0f} ms); tokens per '
                          f'layer {self.predictor.model.tokens_per_layer()}')

    # ------------------------------------------------------------------ statistics
    def stats(self, queue: dict[str, int] | None = None) -> dict[str, Any]:
        """Counters, percentiles and the stream's counters as a flat dict (/diagnostics);
        ``queue``: the node's frame-queue counts, reported after ``windows_built``."""
        out: dict[str, Any] = {
            'keep_scale': self.keep_scale(),
            'tokens_per_layer': ','.join(map(str, self.predictor.model.tokens_per_layer())),
            'deadline_ms': float(self.config.deadline_ms),
            'latency_p50_ms': self.latency_percentiles.percentile(50),
            'latency_p99_ms': self.latency_percentiles.percentile(99),
            'inference_p50_ms': self.inference_percentiles.percentile(50),
            'inference_p99_ms': self.inference_percentiles.percentile(99),
            'windows_built': self.stream.builder.counters['windows'],
            **(queue or {}),
            'cache_hits': self.predictor.cache_hits,
            'cache_misses': self.predictor.cache_misses,
            'deadline_miss_streak': self.misses.streak,
        }
        for key in COUNTER_KEYS:
            out[key] = self.counters[key]
        out.update(self.stream.stats())
        out['sync_misses'] = out['sync/no_partner'] + out['sync/partial']
        out.update(self.neighbour_stats())
        return out


__all__ = ['COUNTER_KEYS', 'RsuOutput', 'RsuRuntime']
