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

from .errors import MmtokError


class DdsNotLocalError(MmtokError, RuntimeError):
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


# Fast DDS 3 (Kilted and later) reads FASTDDS_*, Fast DDS 2 (Humble, Iron, Jazzy) FASTRTPS_*;
# setting the old name under Fast DDS 3 only earns a deprecation warning.
_FASTDDS2_DISTROS = ('humble', 'iron', 'jazzy')
DDS_PROFILE_NAME = 'fastdds_profile.xml'


def shipped_dds_profile() -> str | None:
    """Path of config/fastdds_profile.xml: installed share dir, else the source tree."""
    from pathlib import Path
    try:
        from ament_index_python.packages import get_package_share_directory
        candidate = Path(get_package_share_directory('mmtok_ros')) / 'config' / DDS_PROFILE_NAME
        if candidate.is_file():
            return str(candidate)
    except Exception:  # noqa: BLE001 - not installed with ament, no ament env: source tree
        pass
    candidate = Path(__file__).resolve().parents[1] / 'config' / DDS_PROFILE_NAME
    return str(candidate) if candidate.is_file() else None


def use_shipped_dds_profile(env: dict[str, str] | None = None) -> str | None:
    """Point Fast DDS at the shipped profile unless the user chose one; returns the file used.

    The profile gives the shared-memory transport a segment big enough for several camera
    frames (the default 512 KiB segment cannot hold one 640x480 rgb8 image, and best-effort
    frames are lost whole). It changes transports only: ``ROS_AUTOMATIC_DISCOVERY_RANGE``
    still decides how far discovery reaches. Must run before the process's first
    ``rclpy.init``. An empty ``FASTDDS_DEFAULT_PROFILES_FILE`` keeps Fast DDS's defaults (it
    is removed: Fast DDS would log an XMLPARSER error for an empty path).
    """
    env = os.environ if env is None else env
    if 'FASTDDS_DEFAULT_PROFILES_FILE' in env:
        if not env['FASTDDS_DEFAULT_PROFILES_FILE']:
            del env['FASTDDS_DEFAULT_PROFILES_FILE']
            return None
        return env['FASTDDS_DEFAULT_PROFILES_FILE']
    profile = shipped_dds_profile()
    if profile is None:
        return None
    env['FASTDDS_DEFAULT_PROFILES_FILE'] = profile
    if env.get('ROS_DISTRO', '').lower() in _FASTDDS2_DISTROS:
        env.setdefault('FASTRTPS_DEFAULT_PROFILES_FILE', profile)
    return profile
