"""rsu_node: camera + LiDAR + RSSI -> predicted link status and proactive handover triggers.

An adapter over the ROS-free core: parameters, QoS, subscriptions, publishing, diagnostics.
A callback hands its message to ``WindowStream.accept`` (decode + synchronize, cheap) and
queues the synchronized frames; ONE worker thread assembles them into windows
(``WindowStream.assemble``: resize, BEV, RSSI hold), runs the model on the newest window
only (``StreamingPredictor``: each frame tokenized once), the handover decision and the
deadline controller, and publishes. Topics, message fields and QoS: docs/ros_interfaces.md.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

from ..data.decode import stamp_ns
from ..data.stream import TimeJump, WindowStream
from ..data.window import Window, empty_window
from ..model.checkpoint import ModelFileError
from ..model.shipped import default_model_path
from ..runtime.handover import HandoverDecision
from ..timing import RollingPercentiles
from .diagnostics import MissStreak, SilenceWatch, health, status_array
from .messages import handover_trigger, link_status
from .params import RSU_NODE_PARAMS, declare, hysteresis_config, stream_config
from .runtime import FrameQueue, StartupError, handover_qos, run_node, sensor_qos, status_qos

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from diagnostic_msgs.msg import DiagnosticArray
from mmtok_msgs.msg import HandoverTrigger, LinkStatus
from sensor_msgs.msg import Image, PointCloud2, Temperature

NODE_NAME = 'rsu_node'
MS = 1_000_000
NAN = float('nan')


class RsuNode(Node):
    """The RSU inference node (see module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.p = declare(self, RSU_NODE_PARAMS, on_change=self._parameters_changed)
        p = self.p
        self._setup_model()
        self.period_ns = int(p.frame_period_ms * MS)
        roles = {p.image_topic: 'image', p.lidar_topic: 'lidar'}
        roles.update({t: f'rssi/rsu{i + 1}' for i, t in enumerate(p.rssi_topics)})
        if len(roles) != 2 + len(p.rssi_topics):
            raise StartupError(f'cannot start: input topics must be distinct, got '
                               f'{[p.image_topic, p.lidar_topic, *p.rssi_topics]}')
        try:
            self.stream = WindowStream(self.cfg, roles, stream_config(p))
            self.decision = HandoverDecision(p.rsu_id, p.target_rsu, hysteresis_config(p))
        except ValueError as err:
            raise StartupError(f'cannot start: {err}') from None
        self.neighbours = [n.strip() for n in p.neighbours.split(',') if n.strip()]
        if p.rsu_id in self.neighbours:
            raise StartupError(f'cannot start: neighbours={p.neighbours!r} lists this RSU '
                               f'({p.rsu_id}) itself')
        self.worker: Counter[str] = Counter()     # written by the worker thread only
        self._decision_lock = threading.Lock()    # neighbour callbacks vs the worker
        self.latency_ms = RollingPercentiles()
        self.inference_ms = RollingPercentiles()
        self.misses = MissStreak()
        self.silence = SilenceWatch(roles)
        self._rate_marks: Counter[str] = Counter()
        self._last_diag_wall = time.monotonic()
        self.pub_status = self.create_publisher(LinkStatus, p.link_status_topic, status_qos())
        self.pub_handover = self.create_publisher(HandoverTrigger, p.handover_topic,
                                                  handover_qos())
        for rsu in self.neighbours:    # their namespace is their id (rsu.launch.py)
            self.create_subscription(LinkStatus, f'/{rsu}/{p.link_status_topic.lstrip("/")}',
                                     self._on_neighbour, status_qos())
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', status_qos())
        self.frames = FrameQueue(max_frames=4 * p.window_frames)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name='mmtok-inference', daemon=True)
        self._worker.start()
        qos = sensor_qos(p.input_qos_depth, reliable=p.input_reliable)
        for topic, role in roles.items():
            msg_type = {'image': Image, 'lidar': PointCloud2}.get(role, Temperature)
            self.create_subscription(msg_type, topic, lambda m, t=topic: self._on_input(t, m),
                                     qos)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(p.diagnostics_period_s, self._publish_diagnostics, clock=steady)
        self.get_logger().info(
            f'ready: {self.cfg.method} model {self.model_path} on {self.device}, inputs '
            f'{", ".join(roles)}, window {p.window_frames} x {p.frame_period_ms:.0f} ms, '
            f'deadline {p.deadline_ms:.0f} ms, {p.rsu_id} -> '
            f'{", ".join(self.neighbours) or p.target_rsu} at S_th {p.s_th_dbm:.0f} dBm')

    # ------------------------------------------------------------------ start-up
    def _setup_model(self) -> None:
        from ..runtime.backends import load_predictor
        from ..runtime.predictor import DeadlineController
        p = self.p
        self.model_path = p.model_path or default_model_path()
        try:
            loaded = load_predictor(self.model_path, backend=p.backend, device=p.device,
                                    threads=p.torch_threads)
        except (ModelFileError, ValueError) as err:
            raise StartupError(f'cannot start: {err}') from None
        for warning in loaded.warnings:
            self.get_logger().warning(warning)
        self.predictor, self.device = loaded.predictor, loaded.device
        self.model_threshold = loaded.model_threshold
        self.predictor.threshold = self._threshold()
        model = self.predictor.model
        self.cfg = model.cfg
        if self.cfg.n_frames != p.window_frames:
            raise StartupError(f'cannot start: window_frames={p.window_frames} but the model '
                               f'{self.model_path} was trained on {self.cfg.n_frames}-frame '
                               'windows')
        self.routed = bool(model.routed_layers())
        self.controller = DeadlineController(
            p.deadline_ms, min_scale=min(p.deadline_min_scale, self._max_scale()),
            max_scale=self._max_scale(), patience=p.deadline_patience) if self.routed else None
        if self.routed and p.keep_ratio_scale > 0:
            model.set_keep_override(p.keep_ratio_scale)
        if p.warmup:
            ms = self.predictor.warm_up(empty_window(self.cfg))
            self.get_logger().info(f'warm-up inference: {ms:.1f} ms on {self.device} '
                                   f'({p.backend}, {self.cfg.n_tokens} tokens)')

    def _threshold(self) -> float:
        """blocked_threshold, or (-1) the one the model file carries."""
        if self.p.blocked_threshold >= 0:
            return self.p.blocked_threshold
        return self.model_threshold

    def _max_scale(self) -> float:
        return self.p.keep_ratio_scale if self.p.keep_ratio_scale > 0 else 1.0

    def _parameters_changed(self, changed: dict[str, Any]) -> None:
        """Run-time parameter changes (``ros2 param set``); validated by ``declare``."""
        if 'blocked_threshold' in changed:
            self.predictor.threshold = self._threshold()
        if 'deadline_ms' in changed and self.controller is not None:
            self.controller.deadline_ms = self.p.deadline_ms
        if 'keep_ratio_scale' in changed and self.controller is not None:
            self.controller.max_scale = self._max_scale()
            self.controller.min_scale = min(self.controller.min_scale, self.controller.max_scale)
            self.controller.scale = min(self.controller.scale, self.controller.max_scale)
            self.predictor.model.set_keep_override(self.controller.scale)
        self.get_logger().info(f'parameters changed at run time: {changed}')

    # ------------------------------------------------------------------ callbacks
    def _on_input(self, topic: str, msg: Any) -> None:
        """Decode and synchronize (cheap); the worker does the rest."""
        arrival_ns = time.monotonic_ns()
        self._rate_marks[topic] += 1
        self.silence.heard()
        items, events = self.stream.accept(topic, msg)
        for event in events:
            if event.first:
                what = 'rejected input: ' if event.rejected else ''
                self.get_logger().warning(f'{what}{event.text} (further ones only counted as '
                                          f'{event.reason} in /diagnostics)')
        for item in items:
            if isinstance(item, TimeJump):
                self.silence.reset()
                self.get_logger().warning(
                    f'time jumped back on {item.topic} (to {item.to_ns / 1e9:.3f} s): '
                    'synchronizer, windows and token cache cleared')
        if items:
            self.frames.put(items, arrival_ns)

    def _on_neighbour(self, msg: LinkStatus) -> None:
        """A neighbour's own link state: a handover target candidate (runtime.handover)."""
        p_blocked = float(msg.p_blocked) if msg.status != LinkStatus.STATUS_UNKNOWN else NAN
        with self._decision_lock:
            self.decision.observe_neighbour(msg.rsu_id, stamp_ns(msg.header), p_blocked,
                                            float(msg.rssi_dbm))

    # ------------------------------------------------------------------ worker thread
    def _work(self) -> None:
        while not self._stop.is_set():
            newest: tuple[Window, int, float] | None = None
            for item, arrival_ns in self.frames.take_all(timeout_s=0.1):
                if isinstance(item, TimeJump):
                    self.predictor.clear()
                    with self._decision_lock:
                        self.decision.reset_counters()
                    self.worker['stale_after_time_jump'] += newest is not None
                    newest = None
                assembled = self.stream.assemble(item)
                if assembled is None or assembled.window is None:
                    continue
                self.worker['windows_skipped'] += newest is not None  # a newer one came
                own_rssi_dbm = float(assembled.frame.rssi_dbm[0])   # NaN: not measured
                newest = (assembled.window, arrival_ns, own_rssi_dbm)
            if newest is not None:
                try:
                    self._infer(*newest)
                except Exception as err:  # never let the worker die; report and go on
                    self.worker['inference_errors'] += 1
                    if self.worker['inference_errors'] == 1:
                        self.get_logger().error(f'inference failed: {type(err).__name__}: '
                                                f'{err} (further failures only counted)')
            self.frames.busy = False

    def _infer(self, window: Window, arrival_ns: int, own_rssi_dbm: float) -> None:
        p = self.p
        pred = self.predictor.predict(window)
        with self._decision_lock:
            event = self.decision.update(pred.newest_stamp_ns, pred.p_blocked,
                                         serving_rssi_dbm=own_rssi_dbm)
        latency_ms = (time.monotonic_ns() - arrival_ns) / 1e6
        met = latency_ms <= p.deadline_ms
        self.pub_status.publish(link_status(
            pred, rsu_id=p.rsu_id, serving_rsu=self.decision.serving_rsu,
            threshold=self.predictor.threshold, own_rssi_dbm=own_rssi_dbm,
            latency_ms=latency_ms, deadline_ms=float(p.deadline_ms),
            keep_scale=self._keep_scale(), period_ns=self.period_ns, method=self.cfg.method))
        if event is not None:
            self._publish_handover(event, latency_ms)
        self.worker['windows_published'] += 1
        self.latency_ms.add(latency_ms)
        self.inference_ms.add(pred.inference_ms)
        self._deadline(latency_ms, met)

    def _publish_handover(self, event: Any, latency_ms: float) -> None:
        self.pub_handover.publish(handover_trigger(event, rsu_id=self.p.rsu_id,
                                                   latency_ms=latency_ms))
        self.worker['handovers'] += 1
        self.get_logger().info(f'handover {event.source_rsu} -> {event.target_rsu}: '
                               f'{event.reason}, p_blocked={event.p_blocked:.2f}, own RSSI '
                               f'{event.serving_rssi_dbm:.1f} dBm')

    def _keep_scale(self) -> float:
        """The keep scale running: an exported model runs the graph nearest below the
        controller's scale (``ExportedModel.keep_scale``)."""
        running = getattr(self.predictor.model, 'keep_scale', None)
        if running is not None:
            return float(running)
        return float(self.controller.scale if self.controller else 1.0)

    def _deadline(self, latency_ms: float, met: bool) -> None:
        p = self.p
        self.worker['deadline_misses'] += not met
        if self.misses.update(met, p.deadline_warn_after):
            self.get_logger().warning(
                f'deadline missed {self.misses.streak} times in a row (threshold '
                f'deadline_warn_after={p.deadline_warn_after}): latency {latency_ms:.1f} ms '
                f'> deadline_ms={p.deadline_ms:.1f}')
        if self.controller is None:
            return
        new_scale = self.controller.update(latency_ms)
        if new_scale is not None:
            self.predictor.model.set_keep_override(new_scale)
            self.worker['keep_scale_changes'] += 1
            self.get_logger().info(
                f'deadline control: keep-ratio scale -> {new_scale:.2f} (latency '
                f'{latency_ms:.1f} ms, deadline {p.deadline_ms:.0f} ms); tokens per layer '
                f'{self.predictor.model.tokens_per_layer()}')

    # ------------------------------------------------------------------ diagnostics
    def stats(self) -> dict[str, Any]:
        """Everything /diagnostics reports, as a flat dict (also used by tests)."""
        out: dict[str, Any] = {
            'device': self.device, 'method': self.cfg.method, 'model_path': self.model_path,
            'keep_scale': self._keep_scale(),
            'tokens_per_layer': ','.join(map(str, self.predictor.model.tokens_per_layer())),
            'deadline_ms': float(self.p.deadline_ms),
            'latency_p50_ms': self.latency_ms.percentile(50),
            'latency_p99_ms': self.latency_ms.percentile(99),
            'inference_p50_ms': self.inference_ms.percentile(50),
            'inference_p99_ms': self.inference_ms.percentile(99),
            'windows_built': self.stream.builder.counters['windows'],
            'frames_pending': self.frames.pending(),
            'frames_dropped_backlog': self.frames.dropped,
            'cache_hits': self.predictor.cache_hits,
            'cache_misses': self.predictor.cache_misses,
            'deadline_miss_streak': self.misses.streak,
        }
        for key in ('windows_published', 'windows_skipped', 'handovers', 'deadline_misses',
                    'keep_scale_changes', 'inference_errors', 'stale_after_time_jump'):
            out[key] = self.worker[key]
        out.update(self.stream.stats())
        out['sync_misses'] = out['sync/no_partner'] + out['sync/partial']
        return out

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        elapsed, self._last_diag_wall = now - self._last_diag_wall, now
        after_ns = self.p.silent_after_periods * self.period_ns
        silent, newly_silent = self.silence.check(self.stream.sync, after_ns)
        for topic in newly_silent:
            self.stream.inputs[f'{topic}:silent_warnings'] += 1
            self.get_logger().warning(
                f'no message on {topic} for more than {self.p.silent_after_periods} frame '
                f'periods ({after_ns / MS:.0f} ms); frames go on without it (check the topic '
                'name and that the publisher QoS is compatible)')
        values = self.stats()
        for topic in self.silence.topics:
            values[f'rate_hz/{topic}'] = self._rate_marks[topic] / max(elapsed, 1e-6)
        self._rate_marks.clear()
        values['silent_topics'] = ','.join(silent)
        level, message = health(silent=silent, miss_streak=self.misses.streak,
                                warn_after=self.p.deadline_warn_after,
                                deadline_ms=self.p.deadline_ms,
                                inference_errors=self.worker['inference_errors'])
        self.pub_diag.publish(status_array(
            name=f'{self.get_name()}: inference', hardware_id=self.p.rsu_id, level=level,
            message=message, values=values,
            stamp=self.get_clock().now().to_msg()))

    def destroy_node(self) -> None:
        worker = getattr(self, '_worker', None)   # None when start-up failed
        if worker is not None:
            self._stop.set()
            self.frames.close()
            worker.join(timeout=5.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    # the synchronizer's own Python log lines would repeat the node's (which says more)
    logging.getLogger('mmtok_ros.data').setLevel(logging.ERROR)
    return run_node(RsuNode, args, logger_name=NODE_NAME)


if __name__ == '__main__':
    raise SystemExit(main())
