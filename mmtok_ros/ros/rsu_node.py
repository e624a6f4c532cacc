"""rsu_node: camera + LiDAR + RSSI -> predicted link status and proactive handover triggers.

An adapter over the ROS-free core (topics, fields, QoS: docs/ros_interfaces.md). A callback
hands its message to ``WindowStream.accept`` (decode + synchronize, cheap) and queues the
synchronized frames; ONE inference thread hands them to ``RsuRuntime.step`` (windows, the
model on the newest one, the handover decision, deadline control, statistics) and publishes.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

from ..constants import NS_PER_MS
from ..data.decode import stamp_ns
from ..data.stream import TimeJump, WindowStream
from ..data.window import empty_window
from ..model.checkpoint import ModelFileError
from ..model.shipped import default_model_path
from ..runtime.frame_queue import FrameQueue
from ..runtime.handover import HandoverDecision
from ..runtime.rsu_runtime import RsuOutput, RsuRuntime
from ..runtime.runtime_config import RUNTIME_FIELDS
from .access_policy import (DIAGNOSTICS_TOPIC, neighbour_ids, neighbour_status_topic,
                            rsu_inputs)
from .diagnostics import SilenceWatch, health, status_array
from .messages import handover_trigger, link_status
from .param_declaration import declare
from .node_lifetime import StartupError, run_node
from .params import RSU_NODE_PARAMS, hysteresis_config, runtime_config, stream_config
from .qos import handover_qos, sensor_qos, status_qos

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from diagnostic_msgs.msg import DiagnosticArray
from mmtok_msgs.msg import HandoverTrigger, LinkStatus
from sensor_msgs.msg import Image, PointCloud2, Temperature

NODE_NAME = 'rsu_node'
NAN = float('nan')


class RsuNode(Node):
    """The RSU inference node (see module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._declare()
        self._configure()
        self._start()
        self.get_logger().info(f'ready: {self._summary()}')

    # In steps (_declare, _configure, _start): rsu_lifecycle_node runs them on transitions.
    _publisher = Node.create_publisher

    def _declare(self) -> None:
        self.p = declare(self, RSU_NODE_PARAMS, on_change=self._parameters_changed)
        self.runtime: RsuRuntime | None = None
        self._inference_thread: threading.Thread | None = None
        self._inputs: list = []       # subscriptions and the diagnostics timer (_start)

    def _configure(self) -> None:
        """Load and warm up the model, build the runtime and the publishers."""
        p = self.p
        predictor, model_threshold = self._load_model()
        self.period_ns = int(p.frame_period_ms * NS_PER_MS)
        self.roles = rsu_inputs(p)
        if len(self.roles) != 2 + len(p.rssi_topics):
            raise StartupError(f'cannot start: input topics must be distinct, got '
                               f'{[p.image_topic, p.lidar_topic, *p.rssi_topics]}')
        self.neighbours = neighbour_ids(p)
        try:    # only a live neighbour is a target; none configured: target_rsu (testbed)
            self.stream = WindowStream(self.cfg, self.roles, stream_config(p))
            threshold = p.blocked_threshold if p.blocked_threshold >= 0 else model_threshold
            decision = HandoverDecision(p.rsu_id, p.target_rsu,
                                        hysteresis_config(p, threshold),
                                        neighbours=self.neighbours)
        except ValueError as err:
            raise StartupError(f'cannot start: {err}') from None
        self.runtime = RsuRuntime(predictor, self.stream, decision,
                                  model_threshold=model_threshold, config=runtime_config(p),
                                  log=self.get_logger())
        if p.warmup:
            ms = predictor.warm_up(empty_window(self.cfg))
            self.get_logger().info(f'warm-up inference: {ms:.1f} ms on {self.device} '
                                   f'({p.backend}, {self.cfg.n_tokens} tokens)')
        self.pub_status = self._publisher(LinkStatus, p.link_status_topic, status_qos())
        self.pub_handover = self._publisher(HandoverTrigger, p.handover_topic, handover_qos())
        self.pub_diag = self._publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, status_qos())

    def _start(self) -> None:
        """The inference thread, the subscriptions and the diagnostics timer."""
        p = self.p
        self.silence = SilenceWatch(self.roles)
        self._messages_since_report: Counter[str] = Counter()   # per input topic
        self._last_diag_wall = time.monotonic()
        self.frames = FrameQueue(max_frames=4 * p.window_frames)
        self._stop = threading.Event()
        self._inference_thread = threading.Thread(target=self._infer_until_stopped,
                                                  name='mmtok-inference', daemon=True)
        self._inference_thread.start()
        for rsu in self.neighbours:    # their namespace is their id (rsu.launch.py)
            self._inputs.append(self.create_subscription(
                LinkStatus, neighbour_status_topic(rsu, p.link_status_topic),
                self._on_neighbour, status_qos()))
        qos = sensor_qos(p.input_qos_depth, reliable=p.input_reliable)
        for topic, role in self.roles.items():
            msg_type = {'image': Image, 'lidar': PointCloud2}.get(role, Temperature)
            self._inputs.append(self.create_subscription(
                msg_type, topic, lambda m, t=topic: self._on_input(t, m), qos))
        self._inputs.append(self.create_timer(p.diagnostics_period_s, self._publish_diagnostics,
                                              clock=Clock(clock_type=ClockType.STEADY_TIME)))

    def _summary(self) -> str:
        p = self.p
        return (f'{self.cfg.method} model {self.model_path} on {self.device}, inputs '
                f'{", ".join(self.roles)}, window {p.window_frames} x '
                f'{p.frame_period_ms:.0f} ms, deadline {p.deadline_ms:.0f} ms, {p.rsu_id} -> '
                f'{", ".join(self.neighbours) or p.target_rsu} at S_th {p.s_th_dbm:.0f} dBm')

    @property
    def predictor(self) -> Any:
        """The model runner (``StreamingPredictor`` or an exported model's)."""
        return self.runtime.predictor

    # ------------------------------------------------------------------ start-up
    def _load_model(self) -> tuple[Any, float]:
        """(predictor, its file's decision threshold); StartupError when it cannot be used."""
        from ..runtime.backends import load_predictor
        p = self.p
        self.model_path = p.model_path or default_model_path()
        try:
            loaded = load_predictor(self.model_path, backend=p.backend, device=p.device,
                                    threads=p.torch_threads)
        except (ModelFileError, ValueError) as err:
            raise StartupError(f'cannot start: {err}') from None
        for warning in loaded.warnings:
            self.get_logger().warning(warning)
        self.device = loaded.device
        self.cfg = loaded.predictor.model.cfg
        if self.cfg.n_frames != p.window_frames:
            raise StartupError(f'cannot start: window_frames={p.window_frames} but the model '
                               f'{self.model_path} was trained on {self.cfg.n_frames}-frame '
                               'windows')
        return loaded.predictor, loaded.model_threshold

    def _parameters_changed(self, changed: dict[str, Any]) -> None:
        """Run-time parameter changes (``ros2 param set``); validated by ``declare``."""
        if self.runtime is not None:     # not configured yet: read at configure
            self.runtime.reconfigure(**{k: v for k, v in changed.items()
                                        if k in RUNTIME_FIELDS})
        self.get_logger().info(f'parameters changed at run time: {changed}')

    # ------------------------------------------------------------------ callbacks
    def _on_input(self, topic: str, msg: Any) -> None:
        """Decode and synchronize (cheap); the inference thread does the rest."""
        arrival_ns = time.monotonic_ns()
        self._messages_since_report[topic] += 1
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
        self.runtime.observe_neighbour(msg.rsu_id, stamp_ns(msg.header), p_blocked,
                                       float(msg.rssi_dbm))

    # ------------------------------------------------------------------ inference thread
    def _infer_until_stopped(self) -> None:
        while not self._stop.is_set():
            self.runtime.step(self.frames.take_all(timeout_s=0.1), self._publish)
            self.frames.busy = False

    def _publish(self, out: RsuOutput) -> None:
        p = self.p
        self.pub_status.publish(link_status(
            out.prediction, rsu_id=p.rsu_id, serving_rsu=out.serving_rsu,
            threshold=out.threshold, own_rssi_dbm=out.own_rssi_dbm, latency_ms=out.latency_ms,
            deadline_ms=out.deadline_ms, keep_scale=out.keep_scale, period_ns=self.period_ns,
            method=self.cfg.method))
        if out.handover is not None:
            self.pub_handover.publish(handover_trigger(out.handover, rsu_id=p.rsu_id,
                                                       latency_ms=out.latency_ms))

    # ------------------------------------------------------------------ diagnostics
    def stats(self) -> dict[str, Any]:
        """Everything /diagnostics reports, as a flat dict (also used by tests)."""
        return {'device': self.device, 'method': self.cfg.method, 'model_path': self.model_path,
                **self.runtime.stats({'frames_pending': self.frames.pending(),
                                      'frames_dropped_backlog': self.frames.dropped})}

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        elapsed, self._last_diag_wall = now - self._last_diag_wall, now
        after_ns = self.p.silent_after_periods * self.period_ns
        silent, newly_silent = self.silence.check(self.stream.sync, after_ns)
        for topic in newly_silent:
            self.stream.inputs[f'{topic}:silent_warnings'] += 1
            self.get_logger().warning(
                f'no message on {topic} for more than {self.p.silent_after_periods} frame '
                f'periods ({after_ns / NS_PER_MS:.0f} ms); frames go on without it (check the '
                'topic name and that the publisher QoS is compatible)')
        values = self.stats()
        for topic in self.silence.topics:
            values[f'rate_hz/{topic}'] = (self._messages_since_report[topic]
                                          / max(elapsed, 1e-6))
        self._messages_since_report.clear()
        values['silent_topics'] = ','.join(silent)
        level, message = health(silent=silent, miss_streak=self.runtime.misses.streak,
                                warn_after=self.p.deadline_warn_after,
                                deadline_ms=self.p.deadline_ms, values=values,
                                inference_errors=self.runtime.counters['inference_errors'])
        self.pub_diag.publish(status_array(
            name=f'{self.get_name()}: inference', hardware_id=self.p.rsu_id, level=level,
            message=message, values=values, stamp=self.get_clock().now().to_msg()))

    def _stop_inference(self) -> None:
        thread, self._inference_thread = getattr(self, '_inference_thread', None), None
        if thread is not None:
            self._stop.set()
            self.frames.close()
            thread.join(timeout=5.0)

    def destroy_node(self) -> None:
        self._stop_inference()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    # the synchronizer's own Python log lines would repeat the node's (which says more)
    logging.getLogger('mmtok_ros.data').setLevel(logging.ERROR)
    return run_node(RsuNode, args, logger_name=NODE_NAME)


if __name__ == '__main__':
    raise SystemExit(main())
