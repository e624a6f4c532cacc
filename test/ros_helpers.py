"""Shared helpers for the ROS tests: tiny model files, sensor messages, an in-process harness.

The harness runs the real ``RsuNode`` and a peer node (real rclpy publishers and
subscriptions) on a context of their own, spun by one executor thread; tests publish from
the main thread and wait with bounded polls, never fixed sleeps.
"""
from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mmtok_ros.model import MultiModalTransformer, preset
from mmtok_ros.model.checkpoint import save_model

P_NS = 300_000_000
IMAGE_WH = (64, 48)
_ids = itertools.count()


def tiny_model(path: Path, method: str = 'routed') -> Path:
    if not path.exists():
        save_model(path, MultiModalTransformer(preset('rsu-cpu', image_hw=(32, 32),
                                                      bev_hw=(32, 32), method=method)))
    return path


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def _stamp(msg: Any, stamp_ns: int) -> None:
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)


def image_msg(stamp_ns: int, *, width: int = IMAGE_WH[0], height: int = IMAGE_WH[1],
              encoding: str = 'rgb8', pad: int = 0, bpp: int = 3):
    from sensor_msgs.msg import Image
    msg = Image()
    _stamp(msg, stamp_ns)
    msg.header.frame_id = 'camera'
    msg.width, msg.height, msg.encoding = width, height, encoding
    msg.step = width * bpp + pad
    rng = np.random.default_rng(stamp_ns % 1000)
    msg.data = rng.integers(0, 255, msg.step * height, dtype=np.uint8).tobytes()
    return msg


def cloud_msg(stamp_ns: int, points: np.ndarray | None = None, *,
              fields: tuple[str, ...] = ('x', 'y', 'z', 'intensity', 'ring')):
    from sensor_msgs.msg import PointCloud2, PointField
    if points is None:
        rng = np.random.default_rng(stamp_ns % 1000)
        points = np.column_stack([rng.uniform(1, 40, 200), rng.uniform(-10, 10, 200),
                                  rng.uniform(-1, 2, 200), rng.uniform(0, 1, 200),
                                  rng.integers(0, 80, 200)])
    points = np.ascontiguousarray(points[:, :len(fields)], dtype=np.float32)
    msg = PointCloud2()
    _stamp(msg, stamp_ns)
    msg.header.frame_id = 'lidar'
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                  for i, n in enumerate(fields)]
    msg.height, msg.width = 1, len(points)
    msg.point_step, msg.row_step = 4 * len(fields), 4 * len(fields) * len(points)
    msg.is_bigendian, msg.is_dense = False, True
    msg.data = points.tobytes()
    return msg


def rssi_msg(stamp_ns: int, dbm: float):
    from sensor_msgs.msg import Temperature
    msg = Temperature()
    _stamp(msg, stamp_ns)
    msg.header.frame_id = 'rsu'
    msg.temperature, msg.variance = float(dbm), 1.0
    return msg


def values(msg: Any) -> dict[str, str]:
    """KeyValues of the first DiagnosticStatus of a DiagnosticArray."""
    return {kv.key: kv.value for kv in msg.status[0].values}


class Harness:
    """An ``RsuNode`` plus a peer node that feeds it and records its outputs."""

    def __init__(self, model_path: Path, **overrides: Any) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter

        from diagnostic_msgs.msg import DiagnosticArray
        from mmtok_msgs.msg import HandoverTrigger, LinkStatus
        from mmtok_ros.ros.rsu_node import RsuNode
        from mmtok_ros.ros.qos import handover_qos, sensor_qos, status_qos
        from mmtok_ros.ros.node_lifetime import init_rclpy
        from sensor_msgs.msg import Image, PointCloud2, Temperature

        n = next(_ids)
        self.name = f'rsu_test_{n}'
        prefix = f'/t{n}'
        self.topics = {'image': f'{prefix}/camera/image_raw', 'lidar': f'{prefix}/lidar/points',
                       'rsu1': f'{prefix}/rssi/rsu1', 'rsu2': f'{prefix}/rssi/rsu2',
                       'status': f'{prefix}/mmtok/link_status',
                       'handover': f'{prefix}/mmtok/handover'}
        params = {'model_path': str(model_path), 'device': 'cpu',
                  'image_topic': self.topics['image'], 'lidar_topic': self.topics['lidar'],
                  'rssi_topics': [self.topics['rsu1'], self.topics['rsu2']],
                  'link_status_topic': self.topics['status'],
                  'handover_topic': self.topics['handover'],
                  'expected_image_width': IMAGE_WH[0], 'expected_image_height': IMAGE_WH[1],
                  'diagnostics_period_s': 0.2, 'torch_threads': 1}
        params.update(overrides)
        self.context = Context()
        init_rclpy([], context=self.context)
        self.node = RsuNode(context=self.context,
                            cli_args=['--ros-args', '-r', f'__node:={self.name}'],
                            parameter_overrides=[Parameter(k, value=v)
                                                 for k, v in params.items()])
        self.peer = rclpy.create_node(f'peer_{n}', context=self.context)
        self.pub = {'image': self.peer.create_publisher(Image, self.topics['image'], 10),
                    'lidar': self.peer.create_publisher(PointCloud2, self.topics['lidar'], 10),
                    'rsu1': self.peer.create_publisher(Temperature, self.topics['rsu1'], 10),
                    'rsu2': self.peer.create_publisher(Temperature, self.topics['rsu2'], 10)}
        self.statuses: list = []
        self.handovers: list = []
        self.diagnostics: list = []
        self.peer.create_subscription(LinkStatus, self.topics['status'],
                                      self.statuses.append, status_qos())
        self.peer.create_subscription(HandoverTrigger, self.topics['handover'],
                                      self.handovers.append, handover_qos(depth=10))
        self.peer.create_subscription(
            DiagnosticArray, '/diagnostics',
            lambda m: self.diagnostics.append(m) if m.status and m.status[0].name.startswith(
                self.name) else None, status_qos())
        self._sensor_qos = sensor_qos
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.peer)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        assert wait_until(lambda: all(p.get_subscription_count() >= 1
                                      for p in self.pub.values()), 10.0), 'no discovery'
        self.base_ns = (time.time_ns() // 1_000_000_000) * 1_000_000_000

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException
        try:
            self.executor.spin()
        except (ExternalShutdownException, RuntimeError):
            pass

    # -------------------------------------------------------------- feeding
    def seen(self) -> int:
        """Messages the node has taken in (accepted or rejected)."""
        stream = self.node.stream
        accepted = sum(v for k, v in stream.inputs.items() if k.endswith(':accepted'))
        return accepted + sum(stream.rejected.values())

    def publish(self, kind: str, msg: Any, *, wait: bool = True) -> None:
        before = self.seen()
        self.pub[kind].publish(msg)
        if wait:
            assert wait_until(lambda: self.seen() > before, 5.0), f'{kind} never arrived'

    def frame(self, k: int, *, image=None, lidar=None, rsu1=None, rsu2=None,
              skip: tuple[str, ...] = (), stamp_ns: int | None = None) -> int:
        """Publish frame k (stamp base + k * 300 ms) and wait until the node took it in."""
        stamp = self.base_ns + k * P_NS if stamp_ns is None else stamp_ns
        msgs = {'image': image if image is not None else image_msg(stamp + 3_000_000),
                'lidar': lidar if lidar is not None else cloud_msg(stamp - 2_000_000),
                'rsu1': rsu1 if rsu1 is not None else rssi_msg(stamp + 1_000_000, -40.0),
                'rsu2': rsu2 if rsu2 is not None else rssi_msg(stamp, -45.0)}
        for kind, msg in msgs.items():
            if kind not in skip:
                self.publish(kind, msg)
        return stamp

    def frames(self, ks, *, pace: bool = True, **kw) -> list[int]:
        """Publish frames; ``pace``: let the worker finish each window (no skipped windows)."""
        out = []
        for k in ks:
            out.append(self.frame(k, **kw))
            if pace:
                assert self.wait_idle(), 'worker did not keep up'
        return out

    def wait_statuses(self, n: int, timeout_s: float = 10.0) -> bool:
        return wait_until(lambda: len(self.statuses) >= n, timeout_s)

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Until the worker has handled every window built so far."""
        def idle() -> bool:
            s = self.node.stats()
            done = s['windows_published'] + s['windows_skipped'] + s['stale_after_time_jump'] \
                + s['inference_errors']
            return s['frames_pending'] == 0 and done >= s['windows_built']
        return wait_until(idle, timeout_s)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.peer.destroy_node()
        self.context.try_shutdown()
        self._thread.join(timeout=2.0)


class ProcessOutput:
    """A started process whose stdout (with stderr) is read line by line on a thread."""

    def __init__(self, proc) -> None:
        self.proc = proc
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.append(line)

    @property
    def output(self) -> str:
        return ''.join(self._lines)

    def count(self, text: str) -> int:
        return self.output.count(text)

    def wait_for(self, text: str, timeout_s: float = 60.0, *, times: int = 1) -> bool:
        """True once ``text`` is in the output ``times`` times; False on timeout or exit."""
        return wait_until(lambda: self.count(text) >= times or self.proc.poll() is not None
                          and not self._reader.is_alive(), timeout_s) \
            and self.count(text) >= times


class NodeProcess(ProcessOutput):
    """One of our executables as a real process, its output read line by line.

    ``python -m mmtok_ros.ros.<name> --ros-args -p k:=v ...`` with this test session's DDS
    environment; ``wait_for`` polls the output for a text, ``interrupt`` sends SIGINTs like a
    terminal and ``ros2 launch`` do, ``finish`` returns (exit status, whole output).
    """

    def __init__(self, name: str, *params: str, ros_args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        import os
        import subprocess
        import sys
        args = [sys.executable, '-m', f'mmtok_ros.ros.{name}', '--ros-args', *ros_args]
        for p in params:
            args += ['-p', p]
        full_env = dict(os.environ, PYTHONUNBUFFERED='1', RCUTILS_LOGGING_BUFFERED_STREAM='0')
        full_env.update(env or {})
        super().__init__(subprocess.Popen(args, env=full_env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))

    def interrupt(self, *gaps_s: float) -> None:
        """SIGINT now, then one more after each gap (seconds)."""
        import signal
        self.proc.send_signal(signal.SIGINT)
        for gap in gaps_s:
            time.sleep(gap)
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout_s: float = 30.0) -> tuple[int, str]:
        try:
            self.proc.wait(timeout=timeout_s)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5.0)
        return self.proc.returncode, self.output
