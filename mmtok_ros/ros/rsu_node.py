"""rsu_node: camera + LiDAR + RSSI -> predicted link status and proactive handover triggers.

Thin adapter over the ROS-free core. Callbacks only decode (``mmtok_ros.data.decode``) and
feed the synchronizer and window builder (``mmtok_ros.data``); the newest window goes to a
depth-1 slot and ONE worker thread runs the model (``StreamingPredictor``: every frame is
tokenized once), the handover decision (``mmtok_ros.runtime.handover``) and the deadline
controller, and publishes. Topics, message fields and QoS: docs/ros_interfaces.md.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

import numpy as np

from ..data.decode import decode_image, decode_pointcloud2, decode_rssi, stamp_ns
from ..data.errors import DataError
from ..data.sync import ApproximateTimeSynchronizer
from ..data.window import RssiHold, Window, WindowBuilder, frame_from_synced
from ..model.checkpoint import ModelFileError, load_model
from ..runtime.handover import HandoverDecision, HysteresisConfig
from .params import RSU_NODE_PARAMS, SYNC_EMIT_PARTIAL, declare, default_model_path
from .runtime import (LatestSlot, RollingPercentiles, StartupError, handover_qos,
                      resolve_device, run_node, sensor_qos, status_qos)

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import Image, PointCloud2, Temperature

NODE_NAME = 'rsu_node'
OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def _kv(values: dict[str, Any]) -> list[KeyValue]:
    out = []
    for key, value in values.items():
        if isinstance(value, bool):
            text = 'true' if value else 'false'
        elif isinstance(value, float):
            text = f'{value:.4f}'
        elif value is None:
            text = ''
        else:
            text = str(value)
        out.append(KeyValue(key=key, value=text))
    return out


def _header_stamp(msg_header: Any, ns: int) -> None:
    msg_header.stamp.sec, msg_header.stamp.nanosec = divmod(int(ns), 1_000_000_000)


class RsuNode(Node):
    """The RSU inference node (see module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.p = declare(self, RSU_NODE_PARAMS)
        p = self.p
        self._setup_model()
        self.period_ns = int(p.frame_period_ms * 1e6)
        self._roles = {p.image_topic: 'image', p.lidar_topic: 'lidar'}
        for i, topic in enumerate(p.rssi_topics):
            self._roles[topic] = f'rssi/rsu{i + 1}'
        if len(self._roles) != 2 + len(p.rssi_topics):
            raise StartupError(f'input topics must be distinct, got {list(self._roles)}')
        self.sync = ApproximateTimeSynchronizer(
            list(self._roles), slop_ns=int(p.sync_slop_ms * 1e6),
            queue_size=p.sync_queue_size, emit_partial=SYNC_EMIT_PARTIAL,
            partial_wait_ns=int(p.sync_partial_wait_ms * 1e6),
            jump_back_ns=int(p.sync_time_jump_ms * 1e6))
        self.builder = WindowBuilder(self.cfg, n_frames=p.window_frames,
                                     period_ns=self.period_ns, s_th_dbm=p.s_th_dbm)
        self.hold = RssiHold(self.cfg.rssi_dim)
        try:
            self.decision = HandoverDecision(p.rsu_id, p.target_rsu, HysteresisConfig(
                p_on=p.hysteresis_p_on, p_off=p.hysteresis_p_off,
                on_windows=p.hysteresis_on_windows, off_windows=p.hysteresis_off_windows,
                min_dwell_ns=int(p.hysteresis_min_dwell_ms * 1e6)))
        except ValueError as err:
            raise StartupError(f'cannot start: handover parameters: {err}') from None
        # counters (executor thread writes 'inputs', worker thread writes 'worker')
        self.inputs: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.worker: Counter[str] = Counter()
        self._rate_marks: Counter[str] = Counter()
        self._silent_warned: set[str] = set()
        self._epoch = 0                   # bumped when time jumps back
        self._newest_stamp_ns: int | None = None   # newest accepted input stamp
        self._last_input_wall_ns = 0
        self._feed_lock = threading.Lock()
        self.latency_ms = RollingPercentiles()
        self.inference_ms = RollingPercentiles()
        self._miss_streak = 0
        self._miss_warned = False
        self._last_diag_wall = time.monotonic()
        # publishers
        self.pub_status = self.create_publisher(DiagnosticArray, p.link_status_topic,
                                                status_qos())
        self.pub_handover = self.create_publisher(DiagnosticArray, p.handover_topic,
                                                  handover_qos())
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', status_qos())
        # the worker, then the inputs
        self.slot = LatestSlot()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name='mmtok-inference', daemon=True)
        self._worker.start()
        qos = sensor_qos(p.input_qos_depth, reliable=p.input_reliable)
        self.create_subscription(Image, p.image_topic,
                                 lambda m: self._ingest(p.image_topic, 'image', m), qos)
        self.create_subscription(PointCloud2, p.lidar_topic,
                                 lambda m: self._ingest(p.lidar_topic, 'lidar', m), qos)
        for topic in p.rssi_topics:
            self.create_subscription(Temperature, topic,
                                     lambda m, t=topic: self._ingest(t, 'rssi', m), qos)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(p.diagnostics_period_s, self._publish_diagnostics, clock=steady)
        self.get_logger().info(
            f'ready: {self.cfg.method} model {self.model_path} on {self.device}, inputs '
            f'{", ".join(self._roles)}, window {p.window_frames} x {p.frame_period_ms:.0f} ms, '
            f'deadline {p.deadline_ms:.0f} ms, {p.rsu_id} -> {p.target_rsu} at '
            f'S_th {p.s_th_dbm:.0f} dBm')

    # ------------------------------------------------------------------ start-up
    def _setup_model(self) -> None:
        import torch

        from ..runtime.predictor import DeadlineController, StreamingPredictor
        p = self.p
        if p.torch_threads > 0:
            torch.set_num_threads(p.torch_threads)
        self.device, warning = resolve_device(p.device)
        if warning:
            self.get_logger().warning(warning)
        self.model_path = p.model_path or default_model_path()
        try:
            model, self.model_meta = load_model(self.model_path, device=self.device)
        except ModelFileError as err:
            raise StartupError(f'cannot start: {err}') from None
        self.cfg = model.cfg
        if self.cfg.n_frames != p.window_frames:
            raise StartupError(f'cannot start: window_frames={p.window_frames} but the model '
                               f'{self.model_path} was trained on {self.cfg.n_frames}-frame '
                               'windows')
        self.routed = bool(model.routed_layers())
        self.max_scale = p.keep_ratio_scale if p.keep_ratio_scale > 0 else 1.0
        self.controller = DeadlineController(
            p.deadline_ms, min_scale=min(p.deadline_min_scale, self.max_scale),
            max_scale=self.max_scale, patience=p.deadline_patience) if self.routed else None
        if self.routed and p.keep_ratio_scale > 0:
            model.set_keep_override(p.keep_ratio_scale)
        self.predictor = StreamingPredictor(model, device=self.device,
                                            threshold=p.blocked_threshold)
        if p.warmup:
            ms = self.predictor.warm_up(self._dummy_window())
            self.get_logger().info(f'warm-up inference: {ms:.1f} ms on {self.device} '
                                   f'({self.cfg.n_tokens} tokens)')

    def _dummy_window(self) -> Window:
        from ..model.preprocess import BEV_CHANNELS
        T, cfg = self.cfg.n_frames, self.cfg
        shapes = {'image': (T, 3, *cfg.image_hw), 'lidar': (T, BEV_CHANNELS, *cfg.bev_hw),
                  'rssi': (T, cfg.rssi_dim)}
        arrays = {m: np.zeros(shapes[m], np.float32) for m in cfg.modalities}
        arrays['present'] = np.ones((T, len(cfg.modalities)), bool)
        stamps = np.arange(T, dtype=np.int64)
        return Window(arrays, stamps, int(stamps[-1]))

    # ------------------------------------------------------------------ callbacks
    def _ingest(self, topic: str, kind: str, msg: Any) -> None:
        """Decode, check, feed the synchronizer; hand a completed window to the worker."""
        arrival_ns = time.monotonic_ns()
        self._rate_marks[topic] += 1
        try:
            stamp, item = self._decode(topic, kind, msg)
        except DataError as err:
            self._reject(topic, type(err).__name__, str(err))
            return
        self.inputs[f'{topic}:accepted'] += 1
        self._last_input_wall_ns = arrival_ns
        with self._feed_lock:
            if self._newest_stamp_ns is None or stamp > self._newest_stamp_ns:
                self._newest_stamp_ns = stamp
            jumps = self.sync.counters['time_jump']
            synced_frames = self.sync.add(topic, stamp, item)
            if self.sync.counters['time_jump'] != jumps:
                self._time_jumped(topic, stamp)
            windows = []
            for synced in synced_frames:
                frame = frame_from_synced(synced, self.cfg, self._roles, rssi_hold=self.hold)
                window = self.builder.push(frame)
                if window is not None:
                    windows.append(window)
            if windows:
                # one message can complete several frames (a late partial one and the
                # current one): only the newest window is worth a prediction
                self.inputs['windows_coalesced'] += len(windows) - 1
                self.slot.put((windows[-1], arrival_ns, self._epoch))

    def _decode(self, topic: str, kind: str, msg: Any) -> tuple[int, Any]:
        if kind == 'rssi':
            stamp, dbm = decode_rssi(msg)
            return stamp, (stamp, dbm)
        stamp = stamp_ns(msg.header)
        if kind == 'image':
            want_w, want_h = self.p.expected_image_width, self.p.expected_image_height
            if (want_w and int(msg.width) != want_w) or (want_h and int(msg.height) != want_h):
                raise ImageSizeError(f'Image on {topic} is {msg.width}x{msg.height}; expected '
                                 f'{want_w}x{want_h} (expected_image_width/height)')
            return stamp, decode_image(msg)
        cloud = decode_pointcloud2(msg)
        if cloud.n_nonfinite_dropped:
            self._note(topic, 'nonfinite_points_dropped', cloud.n_nonfinite_dropped,
                       f'PointCloud2 on {topic} had {cloud.n_nonfinite_dropped} NaN/inf points; '
                       'they are dropped (counted in /diagnostics)')
        if cloud.missing_optional_fields:
            self._note(topic, 'missing_optional_fields', 1,
                       f'PointCloud2 on {topic} lacks {list(cloud.missing_optional_fields)}; '
                       'filled with 0')
        if len(cloud.points) == 0:
            raise EmptyCloudError(f'PointCloud2 on {topic} has no finite points '
                                   f'({msg.width}x{msg.height}); frame goes on without LiDAR')
        return stamp, cloud

    def _reject(self, topic: str, reason: str, text: str) -> None:
        key = f'{topic}:{reason}'
        self.rejected[key] += 1
        if self.rejected[key] == 1:
            self.get_logger().warning(f'rejected input: {text} (further ones only counted as '
                                      f'rejected {key} in /diagnostics)')

    def _note(self, topic: str, what: str, count: int, text: str) -> None:
        key = f'{topic}:{what}'
        first = self.inputs[key] == 0
        self.inputs[key] += count
        if first:
            self.get_logger().warning(text + ' (logged once)')

    def _time_jumped(self, topic: str, stamp: int) -> None:
        """Called under the feed lock: a looped bag or a restarted clock."""
        self.builder.reset()
        self.hold = RssiHold(self.cfg.rssi_dim)
        self.slot.clear()
        self._epoch += 1
        self._newest_stamp_ns = stamp
        self._silent_warned.clear()
        self.get_logger().warning(
            f'time jumped back on {topic} (to {stamp / 1e9:.3f} s): synchronizer, windows '
            'and token cache cleared')

    # ------------------------------------------------------------------ worker thread
    def _work(self) -> None:
        seen_epoch = 0
        while not self._stop.is_set():
            job = self.slot.take(timeout_s=0.1)
            if job is None:
                continue
            window, arrival_ns, epoch = job
            if epoch != seen_epoch:
                self.predictor.clear()
                self.decision.reset_counters()
                seen_epoch = epoch
            if epoch != self._epoch:
                self.worker['stale_after_time_jump'] += 1
                continue
            try:
                self._infer(window, arrival_ns)
            except Exception as err:  # never let the worker die; report and go on
                self.worker['inference_errors'] += 1
                if self.worker['inference_errors'] == 1:
                    self.get_logger().error(f'inference failed: {type(err).__name__}: {err} '
                                            '(further failures only counted)')

    def _infer(self, window: Window, arrival_ns: int) -> None:
        p = self.p
        pred = self.predictor.predict(window)
        event = self.decision.update(pred.newest_stamp_ns, pred.p_blocked)
        latency_ms = (time.monotonic_ns() - arrival_ns) / 1e6
        met = latency_ms <= p.deadline_ms
        scale = self.controller.scale if self.controller else 1.0
        status = DiagnosticArray()
        _header_stamp(status.header, pred.newest_stamp_ns)
        status.header.frame_id = p.rsu_id
        status.status = [DiagnosticStatus(
            level=WARN if pred.blocked else OK, name='mmtok/link_status',
            message=('blocked' if pred.blocked else 'clear') + ' predicted for next frame',
            hardware_id=p.rsu_id, values=_kv({
                'predicted_status': 'blocked' if pred.blocked else 'clear',
                'link_ok_next': int(not pred.blocked),
                'p_blocked': pred.p_blocked,
                'window_newest_stamp_ns': pred.newest_stamp_ns,
                'predicted_for_stamp_ns': pred.newest_stamp_ns + self.period_ns,
                'inference_ms': pred.inference_ms,
                'latency_ms': latency_ms,
                'deadline_ms': float(p.deadline_ms),
                'deadline_met': met,
                'keep_scale': float(scale),
                'frames_tokenized': pred.frames_tokenized,
                'serving_rsu': self.decision.serving_rsu,
                'method': self.cfg.method,
            }))]
        self.pub_status.publish(status)
        if event is not None:
            self._publish_handover(event, latency_ms)
        self.worker['windows_published'] += 1
        self.latency_ms.add(latency_ms)
        self.inference_ms.add(pred.inference_ms)
        self._deadline(latency_ms, met)

    def _publish_handover(self, event: Any, latency_ms: float) -> None:
        msg = DiagnosticArray()
        _header_stamp(msg.header, event.stamp_ns)
        msg.header.frame_id = self.p.rsu_id
        msg.status = [DiagnosticStatus(
            level=WARN if event.reason == 'predicted_blockage' else OK, name='mmtok/handover',
            message=f'handover {event.source_rsu} -> {event.target_rsu} ({event.reason})',
            hardware_id=self.p.rsu_id, values=_kv({
                'target_rsu': event.target_rsu, 'source_rsu': event.source_rsu,
                'reason': event.reason, 'p_blocked': event.p_blocked,
                'window_newest_stamp_ns': event.stamp_ns, 'latency_ms': latency_ms,
                'decision_time_ns': self.get_clock().now().nanoseconds}))]
        self.pub_handover.publish(msg)
        self.worker['handovers'] += 1
        self.get_logger().info(f'handover {event.source_rsu} -> {event.target_rsu}: '
                               f'{event.reason}, p_blocked={event.p_blocked:.2f}')

    def _deadline(self, latency_ms: float, met: bool) -> None:
        p = self.p
        if met:
            self._miss_streak, self._miss_warned = 0, False
        else:
            self.worker['deadline_misses'] += 1
            self._miss_streak += 1
            if self._miss_streak >= p.deadline_warn_after and not self._miss_warned:
                self._miss_warned = True
                self.get_logger().warning(
                    f'deadline missed {self._miss_streak} times in a row (threshold '
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
    def _silent_topics(self) -> list[str]:
        """Inputs silent for ``silent_after_periods`` frame periods, each warned about once.

        Measured in data time (against the newest stamp of any input), so it works the same
        with wall-clock stamps, a replayed bag and any replay rate; when every input stops,
        the wall-clock time since the last message is used instead.
        """
        after_ns = self.p.silent_after_periods * self.period_ns
        silent: list[str] = []
        if self._newest_stamp_ns is not None:
            silent = self.sync.silent_topics(self._newest_stamp_ns, after_ns)
            if time.monotonic_ns() - self._last_input_wall_ns > after_ns:
                silent = list(self._roles)
        for topic in silent:
            if topic not in self._silent_warned:
                self._silent_warned.add(topic)
                self.inputs[f'{topic}:silent_warnings'] += 1
                self.get_logger().warning(
                    f'no message on {topic} for more than {self.p.silent_after_periods} frame '
                    f'periods ({self.p.silent_after_periods * self.p.frame_period_ms:.0f} ms); '
                    'frames go on without it')
        self._silent_warned &= set(silent)   # re-arm once it is back
        return silent

    def stats(self) -> dict[str, Any]:
        """Everything /diagnostics reports, as a flat dict (also used by tests)."""
        out: dict[str, Any] = {
            'device': self.device, 'method': self.cfg.method, 'model_path': self.model_path,
            'keep_scale': float(self.controller.scale if self.controller else 1.0),
            'tokens_per_layer': ','.join(map(str, self.predictor.model.tokens_per_layer())),
            'deadline_ms': float(self.p.deadline_ms),
            'latency_p50_ms': self.latency_ms.percentile(50),
            'latency_p99_ms': self.latency_ms.percentile(99),
            'inference_p50_ms': self.inference_ms.percentile(50),
            'inference_p99_ms': self.inference_ms.percentile(99),
            'windows_built': self.builder.counters['windows'],
            'windows_skipped': self.slot.skipped,
            'windows_coalesced': self.inputs['windows_coalesced'],
            'cache_hits': self.predictor.cache_hits,
            'cache_misses': self.predictor.cache_misses,
            'deadline_miss_streak': self._miss_streak,
        }
        for key in ('windows_published', 'handovers', 'deadline_misses', 'keep_scale_changes',
                    'inference_errors', 'stale_after_time_jump'):
            out[key] = self.worker[key]
        out.update({f'sync/{k}': v for k, v in self.sync.stats().items()})
        out['sync_misses'] = out['sync/no_partner'] + out['sync/partial']
        out.update({f'window/{k}': v for k, v in self.builder.counters.items()})
        out['rssi_substituted'] = self.hold.substituted
        out.update({f'input/{k}': v for k, v in sorted(self.inputs.items())
                    if k != 'windows_coalesced'})
        out.update({f'rejected/{k}': v for k, v in sorted(self.rejected.items())})
        out['rejected_total'] = sum(self.rejected.values())
        return out

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        elapsed, self._last_diag_wall = now - self._last_diag_wall, now
        silent = self._silent_topics()
        values = self.stats()
        for topic in self._roles:
            values[f'rate_hz/{topic}'] = self._rate_marks[topic] / max(elapsed, 1e-6)
        self._rate_marks.clear()
        values['silent_topics'] = ','.join(silent)
        level, problems = OK, []
        if silent:
            level = WARN
            problems.append('silent: ' + ', '.join(silent))
        if self._miss_streak >= self.p.deadline_warn_after:
            level = WARN
            problems.append(f'{self._miss_streak} consecutive deadline misses '
                            f'(threshold {self.p.deadline_warn_after}, '
                            f'deadline {self.p.deadline_ms:.0f} ms)')
        if self.worker['inference_errors']:
            level = ERROR
            problems.append(f"{self.worker['inference_errors']} inference errors")
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [DiagnosticStatus(
            level=level, name=f'{self.get_name()}: inference', hardware_id=self.p.rsu_id,
            message='; '.join(problems) or 'ok', values=_kv(values))]
        self.pub_diag.publish(msg)

    def destroy_node(self) -> None:
        worker = getattr(self, '_worker', None)   # None when start-up failed
        if worker is not None:
            self._stop.set()
            self.slot.close()
            worker.join(timeout=5.0)
        super().destroy_node()


class ImageSizeError(DataError):
    """An image of a size the model was not deployed for."""


class EmptyCloudError(DataError):
    """A PointCloud2 without a single finite point."""


def main(args: list[str] | None = None) -> int:
    # the synchronizer's own Python log lines would repeat the node's (which says more)
    logging.getLogger('mmtok_ros.data').setLevel(logging.ERROR)
    return run_node(RsuNode, args, logger_name=NODE_NAME)


if __name__ == '__main__':
    raise SystemExit(main())
