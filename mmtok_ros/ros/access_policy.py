"""Names the nodes create, and an SROS2 access-control policy that grants exactly those.

ROS-free (no rclpy): ``mmtok sros2-policy`` writes the policy on any machine. ``rsu_node``
takes ``DIAGNOSTICS_TOPIC`` and ``neighbour_status_topic`` from here, and every other topic
name from its parameter table (``params.RSU_NODE_PARAMS``), so the policy follows the code.
"""
from __future__ import annotations

DIAGNOSTICS_TOPIC = '/diagnostics'


def neighbour_status_topic(rsu: str, link_status_topic: str) -> str:
    """A neighbour's own link status: its namespace is its id (rsu.launch.py)."""
    return f'/{rsu}/{link_status_topic.lstrip("/")}'
