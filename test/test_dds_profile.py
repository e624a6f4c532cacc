"""Lossless default inputs: the shipped Fast DDS profile carries best-effort camera frames.

A 640x480 rgb8 image (921,600 bytes) does not fit Fast DDS's default 512 KiB shared-memory
segment, and over UDP a best-effort frame missing one of its ~15 fragments is lost whole; with
the defaults 0 to 1 of 60 frames at 3.3 Hz arrived on the development machine.
config/fastdds_profile.xml (used by every executable through ``init_rclpy``) fixes that.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from ros_helpers import wait_until

from mmtok_ros import ros_env

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 20
RATE_HZ = 3.3

_PUBLISHER = textwrap.dedent('''
    import sys, time
    import numpy as np
    from mmtok_ros.ros.qos import sensor_qos
    from mmtok_ros.ros.node_lifetime import init_rclpy
    rclpy = init_rclpy([])
    from sensor_msgs.msg import Image
    topic, frames, rate_hz = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    node = rclpy.create_node('frame_publisher')
    pub = node.create_publisher(Image, topic, sensor_qos(5))   # a camera driver: best effort
    deadline = time.monotonic() + 20
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    sys.stdin.readline()    # the test's subscription has matched us too: best effort loses none
    msg = Image(width=640, height=480, encoding='rgb8', step=640 * 3)
    msg.data = np.random.default_rng(0).integers(0, 255, 640 * 480 * 3, np.uint8).tobytes()
    start = time.monotonic()
    for k in range(frames):
        msg.header.stamp.sec = k + 1
        pub.publish(msg)
        time.sleep(max(0.0, start + (k + 1) / rate_hz - time.monotonic()))
    time.sleep(1.0)
    node.destroy_node()
    rclpy.try_shutdown()
''')


def test_profile_is_shipped_installed_and_keeps_discovery_settings():
    profile = ros_env.shipped_dds_profile()
    assert profile and Path(profile).name == 'fastdds_profile.xml'
    root = ET.parse(profile).getroot()
    ns = {'d': 'http://www.eprosima.com'}
    segment = root.find('.//d:transport_descriptor[d:type="SHM"]/d:segment_size', ns)
    assert int(segment.text) >= 8 * 921_600, 'the segment must hold several camera frames'
    participant = root.find('.//d:participant', ns)
    assert participant.get('is_default_profile') == 'true'
    # transports only: no discovery, peers or multicast settings that would override
    # ROS_AUTOMATIC_DISCOVERY_RANGE
    for tag in ('builtin', 'discovery_config', 'initialPeersList',
                'metatrafficMulticastLocatorList',
                'defaultMulticastLocatorList'):
        assert participant.find(f'.//d:{tag}', ns) is None, tag
    assert "glob('config/*.xml')" in (ROOT / 'setup.py').read_text()


def test_shipped_profile_is_a_default_not_an_override():
    env: dict[str, str] = {}
    assert ros_env.use_shipped_dds_profile(env) == ros_env.shipped_dds_profile()
    assert env['FASTDDS_DEFAULT_PROFILES_FILE'] == ros_env.shipped_dds_profile()
    assert 'FASTRTPS_DEFAULT_PROFILES_FILE' not in env   # Fast DDS 3 would warn about it
    env = {'ROS_DISTRO': 'jazzy'}
    ros_env.use_shipped_dds_profile(env)
    assert env['FASTRTPS_DEFAULT_PROFILES_FILE'] == env['FASTDDS_DEFAULT_PROFILES_FILE']
    mine = {'FASTDDS_DEFAULT_PROFILES_FILE': '/etc/my_profile.xml'}
    assert ros_env.use_shipped_dds_profile(mine) == '/etc/my_profile.xml'
    assert mine == {'FASTDDS_DEFAULT_PROFILES_FILE': '/etc/my_profile.xml'}
    off = {'FASTDDS_DEFAULT_PROFILES_FILE': ''}          # the user's way out: Fast DDS defaults
    assert ros_env.use_shipped_dds_profile(off) is None and off == {}


def test_best_effort_camera_frames_at_sensor_rate_are_not_lost():
    """A best-effort publisher process, the node's default input QoS here: count frames."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from mmtok_ros.ros.qos import sensor_qos
    from mmtok_ros.ros.node_lifetime import init_rclpy
    from mmtok_ros.ros.params import RSU_NODE_PARAMS
    depth = next(s.default for s in RSU_NODE_PARAMS if s.name == 'input_qos_depth')
    reliable = next(s.default for s in RSU_NODE_PARAMS if s.name == 'input_reliable')
    assert reliable is False
    topic = f'/profile_test_{os.getpid()}/image_raw'
    ctx = Context()
    init_rclpy([], context=ctx)
    node = rclpy.create_node('frame_counter', context=ctx)
    got: set[int] = set()
    sub = node.create_subscription(Image, topic, lambda m: got.add(m.header.stamp.sec),
                                   sensor_qos(depth, reliable=reliable))
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    pub = subprocess.Popen([sys.executable, '-c', _PUBLISHER, topic, str(FRAMES), str(RATE_HZ)],
                           env=dict(os.environ), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        # our reader may match the publisher after its writer matched us (a loaded host):
        # the publisher starts only once both ends have
        assert wait_until(lambda: (executor.spin_once(timeout_sec=0.05),
                                   sub.get_publisher_count() >= 1)[1], 40), 'never matched'
        pub.stdin.write('go\n')
        pub.stdin.flush()
        wait_until(lambda: (executor.spin_once(timeout_sec=0.05), pub.poll() is not None)[1],
                   FRAMES / RATE_HZ + 40)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        out, _ = pub.communicate(timeout=10)
    finally:
        if pub.poll() is None:
            pub.kill()
        executor.shutdown()
        node.destroy_node()
        ctx.try_shutdown()
    assert pub.returncode == 0, out
    lost = FRAMES - len(got)
    assert lost == 0, f'{lost} of {FRAMES} best-effort 640x480 frames lost'
