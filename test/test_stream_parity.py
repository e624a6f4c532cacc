"""Train/serve parity through the real code: a bag played into the running node over DDS gives
the same windows as offline building from that bag, bad input and a time jump included."""
from __future__ import annotations

import numpy as np
import pytest

from ros_helpers import Harness, tiny_model, wait_until
from test_window import CAM, LIDAR, MS, PERIOD, RSU1, RSU2, T0, TS, messages, to_ros

from mmtok_ros.data import (WindowStream, build_windows_from_messages, default_topic_map,
                            read_bag_messages)

KIND = {CAM: 'image', LIDAR: 'lidar', RSU1: 'rsu1', RSU2: 'rsu2'}


def hostile_bag(path) -> None:
    """14 frames, a time jump back (the bag loops), then 10 more; with an empty cloud, a NaN
    RSSI, an impossible RSSI, a camera stamp of 0 and a dropped camera frame inside."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    msgs = messages(14, skip={(6, CAM)}) + messages(10)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns, seen = {}, {}
        for i, (topic, stamp, item) in enumerate(msgs):
            msgtype, msg = to_ros(topic, stamp, item)
            n = seen[topic] = seen.get(topic, -1) + 1     # n-th message of its topic
            if (topic, n) == (LIDAR, 8):
                msg.width, msg.row_step, msg.data = 0, 0, np.zeros(0, np.uint8)  # empty cloud
            elif (topic, n) == (RSU1, 3):
                msg.temperature = float('nan')
            elif (topic, n) == (RSU1, 4):
                msg.temperature = 1e9                                       # impossible dBm
            elif (topic, n) == (CAM, 19):                        # after the jump: stamp 0
                msg.header.stamp.sec, msg.header.stamp.nanosec = 0, 0
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=TS)
            # log time = arrival order (the loop arrives after the first pass)
            writer.write(conns[topic], T0 + i * 25 * MS, TS.serialize_cdr(msg, msgtype))


@pytest.fixture
def node(tmp_path):
    h = Harness(tiny_model(tmp_path / 'tiny.pt'), frame_period_ms=PERIOD / MS,
                sync_slop_ms=20.0)
    assembled = []
    real = h.node.stream.assemble

    def recording(item):            # what the node's worker thread builds, in order
        out = real(item)
        if out is not None and out.window is not None:
            assembled.append(out.window)
        return out
    h.node.stream.assemble = recording
    h.assembled = assembled
    yield h
    h.close()


def test_bag_through_the_node_equals_offline_windows(node, tmp_path):
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image, PointCloud2, Temperature
    rclpy_type = {'sensor_msgs/msg/Image': Image, 'sensor_msgs/msg/PointCloud2': PointCloud2,
                  'sensor_msgs/msg/Temperature': Temperature}
    bag = tmp_path / 'hostile'
    hostile_bag(bag)
    raw = list(read_bag_messages(bag, decode=False))
    # live: every message over DDS into the running node, in bag order
    for topic, _, msg in raw:
        msgtype = msg.__msgtype__
        ros_msg = deserialize_message(bytes(TS.serialize_cdr(msg, msgtype)), rclpy_type[msgtype])
        node.publish(KIND[topic], ros_msg)
    assert node.wait_idle()
    # offline: the same raw messages, the node's own stream configuration
    config = node.node.stream.config
    stream = WindowStream(node.node.cfg, default_topic_map(), config)
    offline = [a.window for a in stream.assembled(raw, raw=True) if a.window is not None]
    labelled, _, stats = build_windows_from_messages(raw, node.node.cfg, raw=True,
                                                     config=config)
    live = node.assembled
    assert len(live) == len(offline) >= 8
    for a, b in zip(live, offline):
        np.testing.assert_array_equal(a.stamps_ns, b.stamps_ns)
        assert a.arrays.keys() == b.arrays.keys()
        for name in a.arrays:
            assert np.array_equal(a.arrays[name], b.arrays[name]), name
    # the training windows are among them, and the bad input was handled the same way
    assert {w.newest_stamp_ns for w in labelled} <= {w.newest_stamp_ns for w in live}
    live_stats = node.node.stats()
    for key in ('sync/time_jump', 'sync/partial', 'rssi_substituted', 'rejected_total'):
        assert live_stats[key] == stats[key], key
    assert stats['sync/time_jump'] == 1 and stats['rejected_total'] == 4
    for reason in (f'{LIDAR}:EmptyCloudError', f'{RSU1}:RssiDecodeError', f'{CAM}:zero_stamp'):
        assert stats.get(f'rejected/{reason}', 0) >= 1, reason
    # an empty cloud is an absent LiDAR (the learned missing token), live and offline
    assert any(not w.arrays['present'][:, 1].all() for w in live)
    assert wait_until(lambda: node.node.stats()['windows_published'] >= 1)
