"""rclpy nodes, in the calling process, that record what RSU nodes publish: every
``LinkStatus`` (``.../mmtok/link_status``), every ``HandoverTrigger`` (``.../mmtok/handover``)
and ``/diagnostics``. Each spins on a context and thread of its own and leaves SIGINT to
Python, so a Ctrl-C is the caller's ``KeyboardInterrupt`` and the collection goes on until
``close()``: rclpy's own handler would shut the context down and the caller would go on
deaf. ``OutputCollector`` keeps one node's outputs as plain dicts (JSON-ready); the soak's
collector (``soak_collector.py``) builds on ``RsuOutputSubscriber`` too."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence


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


def _topic(namespace: str, name: str) -> str:
    return f'/{namespace}/mmtok/{name}' if namespace else f'/mmtok/{name}'


class RsuOutputSubscriber:
    """``node_name`` subscribed to the link status and handovers of the RSU nodes in
    ``namespaces`` ('' for the root namespace) and to ``/diagnostics``; a subclass handles
    ``_on_status(namespace, msg)``, ``_on_handover(namespace, msg)`` and ``_on_diag(msg)``."""

    def __init__(self, node_name: str, namespaces: Sequence[str]) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from mmtok_msgs.msg import HandoverTrigger, LinkStatus
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        from .node_lifetime import init_rclpy
        from .qos import handover_qos, status_qos

        self.context = Context()
        init_rclpy([], context=self.context, rclpy_sigint=False)
        self.node = rclpy.create_node(node_name, context=self.context)
        for ns in namespaces:
            self.node.create_subscription(LinkStatus, _topic(ns, 'link_status'),
                                          lambda m, ns=ns: self._on_status(ns, m),
                                          status_qos(100))
            self.node.create_subscription(HandoverTrigger, _topic(ns, 'handover'),
                                          lambda m, ns=ns: self._on_handover(ns, m),
                                          handover_qos(depth=10))
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag,
                                      status_qos(100))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - shutdown races end the spin; nothing to report
            pass

    def _on_status(self, namespace: str, msg: Any) -> None:
        raise NotImplementedError

    def _on_handover(self, namespace: str, msg: Any) -> None:
        raise NotImplementedError

    def _on_diag(self, msg: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the spin and wait for its thread before the node and context go: a thread
        still in rclpy when the interpreter exits aborts the process."""
        self.executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=5.0)
        self.node.destroy_node()
        self.context.try_shutdown()


class OutputCollector(RsuOutputSubscriber):
    """``OutputCollector('rsu_node')`` then ``.data``; ``close()`` when done. Records the
    node in the root namespace: each status with its receipt time, each handover, and the
    latest diagnostics report of the node named ``node_name``."""

    def __init__(self, node_name: str) -> None:
        self.data = Collected()
        self._rsu_name = node_name
        super().__init__('mmtok_e2e_collector', [''])

    def _on_status(self, namespace: str, msg: Any) -> None:
        v = message_dict(msg)
        v['received_wall_ns'] = time.time_ns()
        self.data.statuses.append(v)

    def _on_handover(self, namespace: str, msg: Any) -> None:
        self.data.handovers.append(message_dict(msg))

    def _on_diag(self, msg: Any) -> None:
        if msg.status and msg.status[0].name.startswith(self._rsu_name):
            self.data.diagnostics = _values(msg)


__all__ = ['Collected', 'OutputCollector', 'RsuOutputSubscriber', 'message_dict']
