"""The soak's collector: an rclpy node in the soak process that records every RSU's
``LinkStatus`` (its ``latency_ms``) and ``HandoverTrigger`` (``/rsuK/mmtok/...``) and the
latest ``/diagnostics`` report of each RSU's node, time-stamped on the soak's clock."""
from __future__ import annotations

import threading
from typing import Any, Callable

from .collector import RsuOutputSubscriber, message_dict
from .soak_setup import NODE


def _number(text: str) -> float | int | str:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


class SoakCollector(RsuOutputSubscriber):
    """``latency[rsu]``: (time, latency_ms) of each status; ``handovers``: each trigger as a
    dict with its publisher and time; ``latest(rsu)``: the newest diagnostics values of that
    RSU's node (numbers parsed) and when they came. Times are ``clock()`` (seconds)."""

    def __init__(self, ids: list[str], clock: Callable[[], float]) -> None:
        self.clock = clock
        self.ids = list(ids)
        self.latency: dict[str, list[tuple[float, float]]] = {r: [] for r in ids}
        self.handovers: list[dict] = []
        self.diagnostics: dict[str, dict[str, Any]] = {}
        self.diag_received: dict[str, float] = {}
        self._lock = threading.Lock()
        super().__init__('mmtok_soak_collector', self.ids)

    def _on_status(self, namespace: str, msg: Any) -> None:
        self.latency[namespace].append((self.clock(), float(msg.latency_ms)))

    def _on_handover(self, namespace: str, msg: Any) -> None:
        event = message_dict(msg)
        event.update(publisher=namespace, t_s=round(self.clock(), 3))
        self.handovers.append(event)

    def _on_diag(self, msg: Any) -> None:
        for status in msg.status:
            if status.hardware_id in self.latency and status.name.startswith(NODE):
                values = {kv.key: _number(kv.value) for kv in status.values}
                with self._lock:
                    self.diagnostics[status.hardware_id] = values
                    self.diag_received[status.hardware_id] = self.clock()

    def latest(self, rsu: str) -> tuple[dict[str, Any], float | None]:
        with self._lock:
            return dict(self.diagnostics.get(rsu, {})), self.diag_received.get(rsu)

    def forget(self, rsu: str) -> dict[str, Any]:
        """The last report of ``rsu``'s process (it ended); the next one is a new process's."""
        with self._lock:
            self.diag_received.pop(rsu, None)
            return self.diagnostics.pop(rsu, {})


__all__ = ['SoakCollector']
