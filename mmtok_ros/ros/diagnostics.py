"""What the nodes report on /diagnostics: key/value formatting and the health checks.

ROS types are imported inside the functions that build messages, so ``SilenceWatch`` is plain
Python and unit-testable without rclpy (the deadline-miss streak is ``runtime.rsu_runtime``'s).
"""
from __future__ import annotations

import time
from typing import Any, Iterable

from ..constants import NS_PER_S


def key_values(values: dict[str, Any]) -> list:
    """A flat dict -> ``diagnostic_msgs/KeyValue`` list (floats with 4 decimals)."""
    from diagnostic_msgs.msg import KeyValue
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


def set_time(time_msg: Any, stamp_ns: int) -> None:
    """Write integer nanoseconds into a ``builtin_interfaces/Time``."""
    time_msg.sec, time_msg.nanosec = divmod(int(stamp_ns), NS_PER_S)


def set_stamp(header: Any, stamp_ns: int) -> None:
    """Write integer nanoseconds into a ``std_msgs/Header`` stamp."""
    set_time(header.stamp, stamp_ns)


def status_array(*, name: str, hardware_id: str, level: int, message: str,
                 values: dict[str, Any], stamp: Any = None, stamp_ns: int | None = None,
                 frame_id: str = ''):
    """One ``DiagnosticStatus`` in a ``DiagnosticArray``."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    msg = DiagnosticArray()
    if stamp is not None:
        msg.header.stamp = stamp
    elif stamp_ns is not None:
        set_stamp(msg.header, stamp_ns)
    msg.header.frame_id = frame_id
    msg.status = [DiagnosticStatus(level=level, name=name, message=message,
                                   hardware_id=hardware_id, values=key_values(values))]
    return msg


def health(*, silent: list[str], miss_streak: int, warn_after: int, deadline_ms: float,
           inference_errors: int, values: dict[str, Any] | None = None) -> tuple[int, str]:
    """(``DiagnosticStatus`` level, message) of the inference node; ``values``: its key-values
    (``handover/no_live_target`` set: a handover is wanted and no neighbour is live, WARN)."""
    from diagnostic_msgs.msg import DiagnosticStatus
    level, problems = DiagnosticStatus.OK, []
    if silent:
        level = DiagnosticStatus.WARN
        problems.append('silent: ' + ', '.join(silent))
    wanted = (values or {}).get('handover/no_live_target')
    if wanted:
        level = DiagnosticStatus.WARN
        problems.append(f'handover wanted ({wanted}) but no neighbour live (stale: '
                        f'{values.get("neighbours/stale", "")}); no trigger sent')
    if miss_streak >= warn_after:
        level = DiagnosticStatus.WARN
        problems.append(f'{miss_streak} consecutive deadline misses (threshold {warn_after}, '
                        f'deadline {deadline_ms:.0f} ms)')
    if inference_errors:
        level = DiagnosticStatus.ERROR
        problems.append(f'{inference_errors} inference errors')
    return level, '; '.join(problems) or 'ok'


class SilenceWatch:
    """Inputs silent for longer than ``after_ns``, each reported once until it is back.

    Measured in data time (the newest stamp of any input) so it works at any replay rate;
    in wall time since start-up while nothing at all has arrived, and since the last
    message once every input has stopped.
    """

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = list(topics)
        self.start_wall_ns = time.monotonic_ns()
        self.last_input_wall_ns: int | None = None
        self._warned: set[str] = set()

    def heard(self) -> None:
        self.last_input_wall_ns = time.monotonic_ns()

    def check(self, sync: Any, after_ns: int) -> tuple[list[str], list[str]]:
        """(silent topics, those newly silent: worth one WARN each)."""
        now = time.monotonic_ns()
        last_wall = self.last_input_wall_ns or self.start_wall_ns
        if now - last_wall > after_ns:
            silent = list(self.topics)         # nothing at all for a while
        else:
            newest = sync.newest_stamp_ns
            silent = [] if newest is None else sync.silent_topics(newest, after_ns)
        new = [t for t in silent if t not in self._warned]
        self._warned = set(silent)             # re-arm once a topic is back
        return silent, new

    def reset(self) -> None:
        self._warned.clear()


__all__ = ['SilenceWatch', 'health', 'key_values', 'set_stamp', 'set_time',
           'status_array']
