"""Start and stop rclpy the same way in every executable of ours."""
from __future__ import annotations

import sys

from ..ros_env import DdsNotLocalError, require_local_dds


def init_rclpy(args: list[str] | None = None):
    """``rclpy.init`` after checking that DDS stays on this machine; returns the context.

    Exits with status 2 and one clear line when the check fails (see ``ros_env``).
    """
    try:
        require_local_dds()
    except DdsNotLocalError as err:
        print(f'mmtok_ros: {err}', file=sys.stderr)
        raise SystemExit(2) from None
    import rclpy
    rclpy.init(args=args)
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
