"""Keep DDS discovery on this machine.

Every process of ours that starts rclpy calls :func:`require_local_dds` first; tools that
start node processes give them :func:`local_dds_env`. Without
``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` Fast DDS multicasts discovery out of the
machine's network interface. On a real RSU that may be wanted (several machines in one ROS
graph), so the check is strict only where we ask for it: under CI, in tests, or when
``MMTOK_REQUIRE_LOCAL_DDS=1``.
"""
from __future__ import annotations

import os
import random


class DdsNotLocalError(RuntimeError):
    """rclpy would start with DDS discovery reaching beyond this machine."""


def strict_requested(env: dict[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return any(env.get(k, '').lower() not in ('', '0', 'false')
               for k in ('CI', 'MMTOK_REQUIRE_LOCAL_DDS', 'PYTEST_CURRENT_TEST'))


def require_local_dds(env: dict[str, str] | None = None) -> None:
    """Raise :class:`DdsNotLocalError` when strictness is requested and DDS is not local."""
    env = os.environ if env is None else env
    if not strict_requested(env):
        return
    missing = []
    if env.get('ROS_AUTOMATIC_DISCOVERY_RANGE') != 'LOCALHOST':
        missing.append('ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST')
    if not env.get('ROS_DOMAIN_ID', '').isdigit():
        missing.append('ROS_DOMAIN_ID=<0..101>')
    if missing:
        raise DdsNotLocalError(
            'refusing to start rclpy: DDS discovery must stay on this machine; set '
            + ' and '.join(missing))


def local_dds_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """Set (in ``env``, default ``os.environ``) DDS discovery to localhost and a domain id
    (random 1..101 if unset) and return it; processes started with it inherit both."""
    env = os.environ if env is None else env
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    if not env.get('ROS_DOMAIN_ID', '').isdigit():
        env['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(1, 101))
    return env
