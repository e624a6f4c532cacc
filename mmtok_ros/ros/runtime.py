"""Start and stop rclpy the same way in every executable of ours."""
from __future__ import annotations

import sys

from ..ros_env import DdsNotLocalError, require_local_dds


def init_rclpy(args: list[str] | None = None, *, context=None):
    """``rclpy.init`` after checking that DDS stays on this machine; returns ``rclpy``.

    ``context``: initialize this ``rclpy.context.Context`` instead of the default one (tests
    run nodes in-process, each on a context of its own).

    Exits with status 2 and one clear line when the check fails (see ``ros_env``).
    """
    try:
        require_local_dds()
    except DdsNotLocalError as err:
        print(f'mmtok_ros: {err}', file=sys.stderr)
        raise SystemExit(2) from None
    import rclpy
    rclpy.init(args=args, context=context)
    return rclpy


def spin_until_shutdown(node) -> None:
    """Spin ``node``; Ctrl-C and launch shutdown are quiet; always clean up (ros2/demos style)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def run_node(node_factory, args: list[str] | None = None, *, logger_name: str) -> int:
    """``main()`` of our nodes: init, build, spin, quiet shutdown; returns the exit status.

    A ``StartupError`` raised while building the node is one FATAL log line and exit 1, no
    traceback (a missing model file is a configuration error, not a crash).
    """
    rclpy = init_rclpy(args)
    from rclpy.executors import ExternalShutdownException
    try:
        node = node_factory()
    except StartupError as err:
        rclpy.logging.get_logger(logger_name).fatal(str(err))
        rclpy.try_shutdown()
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        rclpy.try_shutdown()
        return 0
    spin_until_shutdown(node)
    return 0


class StartupError(RuntimeError):
    """A node cannot start (bad model file, bad parameter): one clear line, exit status 1."""


class LatestSlot:
    """Depth-1 hand-off between a callback and a worker thread: only the newest item is kept.

    ``put`` never blocks; an item replaced before the worker took it is counted in
    ``skipped`` (stale windows are dropped, not queued).
    """

    def __init__(self) -> None:
        import threading
        self._cond = threading.Condition()
        self._item = None
        self._closed = False
        self.skipped = 0
        self.put_count = 0

    def put(self, item) -> bool:
        """Store ``item``; True if it replaced one that was never taken."""
        with self._cond:
            replaced = self._item is not None
            self.skipped += int(replaced)
            self.put_count += 1
            self._item = item
            self._cond.notify()
            return replaced

    def take(self, timeout_s: float):
        """The newest item, or None after ``timeout_s`` or once closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout_s)
            item, self._item = self._item, None
            return item

    def clear(self) -> None:
        with self._cond:
            self._item = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class RollingPercentiles:
    """Percentiles over the last ``size`` samples (latency p50/p99 for /diagnostics)."""

    def __init__(self, size: int = 500) -> None:
        from collections import deque
        self._values = deque(maxlen=size)
        self.count = 0

    def add(self, value: float) -> None:
        self._values.append(float(value))
        self.count += 1

    def percentile(self, q: float) -> float | None:
        if not self._values:
            return None
        ordered = sorted(self._values)
        k = min(len(ordered) - 1, max(0, int(round(q / 100.0 * (len(ordered) - 1)))))
        return ordered[k]


def resolve_device(requested: str) -> tuple[str, str | None]:
    """(device to use, warning or None): cuda falls back to cpu with the reason."""
    from ..devices import choose_device  # imports torch: only when a node needs a device
    return choose_device(requested or 'cpu')


# ---------------------------------------------------------------------- QoS, one place
def sensor_qos(depth: int = 5, reliable: bool = False):
    """Sensor inputs: best effort (REP 2003) unless ``reliable``, keep last ``depth``, volatile."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                      reliability=(ReliabilityPolicy.RELIABLE if reliable
                                   else ReliabilityPolicy.BEST_EFFORT),
                      durability=DurabilityPolicy.VOLATILE)


def status_qos(depth: int = 10):
    """Outputs every subscriber should get while connected: reliable, volatile."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def handover_qos(depth: int = 1):
    """Latched decision: reliable, transient local, depth 1 (a late subscriber gets it)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)
