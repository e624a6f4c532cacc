"""DDS stays on this machine: our rclpy entry points refuse to start otherwise."""
import os
import subprocess
import sys

import pytest

from mmtok_ros.ros_env import DdsNotLocalError, require_local_dds

START = 'from mmtok_ros.ros.runtime import init_rclpy; r = init_rclpy([]); print("started"); r.shutdown()'


def run_entry(env_changes):
    env = {k: v for k, v in os.environ.items()
           if k not in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'PYTEST_CURRENT_TEST')}
    env.update(env_changes)
    return subprocess.run([sys.executable, '-c', START], env=env, capture_output=True,
                          text=True, timeout=60)


def test_conftest_keeps_dds_local():
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert 0 < int(os.environ['ROS_DOMAIN_ID']) <= 101


def test_guard_raises_under_ci_without_localhost():
    with pytest.raises(DdsNotLocalError, match='ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST'):
        require_local_dds({'CI': 'true', 'ROS_DOMAIN_ID': '7'})
    require_local_dds({'CI': 'true', 'ROS_DOMAIN_ID': '7', 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'})
    require_local_dds({})  # on an RSU without CI, the operator decides


def test_entry_point_refuses_to_start_rclpy_without_the_setting():
    out = run_entry({'CI': 'true'})
    assert out.returncode == 2
    assert 'ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST' in out.stderr
    assert 'started' not in out.stdout


def test_entry_point_starts_rclpy_with_the_setting():
    out = run_entry({'CI': 'true', 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'})
    assert out.returncode == 0, out.stderr
    assert 'started' in out.stdout
