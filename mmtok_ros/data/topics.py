"""Input roles and their default topics and message types: the one place that names them.

A role says what a topic carries: ``image``, ``lidar`` or ``rssi/rsuN`` (RSSI of RSU N,
1-based; index N-1 in the RSSI vector). Topic names can be remapped; roles cannot.
"""
from __future__ import annotations

DEFAULT_TOPICS: dict[str, str] = {
    'image': '/camera/image_raw',
    'lidar': '/lidar/points',
    'rssi/rsu1': '/rssi/rsu1',
    'rssi/rsu2': '/rssi/rsu2',
}

MSG_TYPES: dict[str, str] = {  # role kind -> ROS 2 message type
    'image': 'sensor_msgs/msg/Image',
    'lidar': 'sensor_msgs/msg/PointCloud2',
    'rssi': 'sensor_msgs/msg/Temperature',  # RSSI in dBm, see decode.py
}


def default_topic_map() -> dict[str, str]:
    """topic -> role for the default topics (the form the window layer takes)."""
    return {topic: role for role, topic in DEFAULT_TOPICS.items()}


def rsu_index(role: str) -> int | None:
    """0-based RSU index of an ``rssi/rsuN`` role, None for other roles."""
    if not role.startswith('rssi/rsu'):
        return None
    suffix = role[len('rssi/rsu'):]
    if not suffix.isdigit() or int(suffix) < 1:
        raise ValueError(f'RSSI role {role!r} must be rssi/rsuN with N >= 1')
    return int(suffix) - 1


def role_kind(role: str) -> str:
    """'image', 'lidar' or 'rssi'; raises for a role this package does not know."""
    kind = 'rssi' if rsu_index(role) is not None else role
    if kind not in MSG_TYPES:
        raise ValueError(f'unknown role {role!r}; expected image, lidar or rssi/rsuN')
    return kind


__all__ = ['DEFAULT_TOPICS', 'MSG_TYPES', 'default_topic_map', 'role_kind', 'rsu_index']
