"""An rclpy node, in the calling process, that records an RSU node's outputs: every
``/mmtok/link_status`` (``LinkStatus``, with its receipt time), every ``/mmtok/handover``
(``HandoverTrigger``) and the latest ``/diagnostics`` report of that node, as plain dicts
(JSON-ready). It spins on a context and thread of its own."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Collected:
    statuses: list[dict] = field(default_factory=list)
    handovers: list[dict] = field(default_factory=list)
    diagnostics: dict[str, str] = field(default_factory=dict)


def _values(msg: Any) -> dict[str, str]:
    return {kv.key: kv.value for kv in msg.status[0].values} if msg.status else {}


def message_dict(msg: Any) -> dict[str, Any]:
    """A typed message's fields as JSON-ready values; a header or Time becomes integer ns."""
    out: dict[str, Any] = {}
    for name in msg.get_fields_and_field_types():
        value = getattr(msg, name)
        if hasattr(value, 'stamp'):
            value = value.stamp
        if hasattr(value, 'nanosec'):
            value = value.sec * 1_000_000_000 + value.nanosec
            name = 'stamp_ns' if name == 'header' else f'{name}_ns'
        elif not isinstance(value, (str, bool, int, float)):
            value = [int(v) for v in value]
        out[name] = value
    return out


class OutputCollector:
    """``OutputCollector('rsu_node')`` then ``.data``; ``close()`` when done."""

    def __init__(self, node_name: str) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from mmtok_msgs.msg import HandoverTrigger, LinkStatus
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        from .qos import handover_qos, status_qos
        from .node_lifetime import init_rclpy

        self.data = Collected()
        self._rsu_name = node_name
        self.context = Context()
        init_rclpy([], context=self.context)
        self.node = rclpy.create_node('mmtok_e2e_collector', context=self.context)
        self.node.create_subscription(LinkStatus, '/mmtok/link_status',
                                      self._on_status, status_qos(100))
        self.node.create_subscription(HandoverTrigger, '/mmtok/handover',
                                      self._on_handover, handover_qos(depth=10))
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag,
                                      status_qos(100))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # shutdown races end the spin; nothing to report
            pass

    def _on_status(self, msg: Any) -> None:
        v = message_dict(msg)
        v['received_wall_ns'] = time.time_ns()
        self.data.statuses.append(v)

    def _on_handover(self, msg: Any) -> None:
        self.data.handovers.append(message_dict(msg))

    def _on_diag(self, msg: Any) -> None:
        if msg.status and msg.status[0].name.startswith(self._rsu_name):
            self.data.diagnostics = _values(msg)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.context.try_shutdown()


__all__ = ['Collected', 'OutputCollector', 'message_dict']
