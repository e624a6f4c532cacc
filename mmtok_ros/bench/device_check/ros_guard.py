"""``--forbid-ros``: the device path must stay ROS-free, so importing a ROS module there is an
ImportError, and the attempts and whatever ROS module got loaded anyway go into the JSON."""
from __future__ import annotations

import importlib.abc
import sys

ROS_MODULES = ('rclpy', 'rosbags', 'mmtok_msgs', 'ament_index_python', 'rosidl_runtime_py',
               'rosidl_parser', 'rclpy_message_converter', 'launch', 'launch_ros', 'rosbag2_py',
               'rmw', 'rpyutils')


class RosImportBlocker(importlib.abc.MetaPathFinder):
    """Importing a ROS module raises ImportError and is recorded in ``attempts``."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ROS_MODULES:
            self.attempts.append(name)
            raise ImportError(f'device check: {name} is a ROS module and is blocked '
                              '(the device path must stay ROS-free)')
        return None


def ros_modules_loaded() -> list[str]:
    return sorted(m for m in sys.modules if m.split('.')[0] in ROS_MODULES)
