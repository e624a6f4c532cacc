"""Frames, windows, labels, offline/live parity and bag reading."""
from __future__ import annotations

import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from mmtok_ros.constants import NS_PER_MS as MS
from mmtok_ros.data import (DEFAULT_TOPICS, BagReadError, DecodedCloud, RssiHold, StreamConfig,
                            SyncedFrame, WindowBuilder, build_windows_from_messages,
                            default_topic_map, frame_from_synced, read_bag_messages)
from mmtok_ros.model.config import preset

PERIOD = 100 * MS
T0 = 1_700_000_000 * 1_000_000_000  # realistic epoch stamps
CFG = preset('rsu-cpu')
TOPIC_MAP = default_topic_map()
CAM, LIDAR, RSU1, RSU2 = (DEFAULT_TOPICS[r] for r in ('image', 'lidar', 'rssi/rsu1',
                                                        'rssi/rsu2'))
CONFIG = StreamConfig(period_ms=PERIOD / MS, slop_ms=20.0, emit_partial=False,
                      partial_wait_ms=0.0)
OPTS = dict(config=CONFIG)
PARTIAL = dict(config=StreamConfig(period_ms=PERIOD / MS, slop_ms=20.0, emit_partial=True,
                                   partial_wait_ms=0.0))


def serving_dbm(k: int) -> float:
    """RSU1 RSSI of frame k: every third frame blocked; frame 4 exactly at S_th (not blocked)."""
    return -47.0 if k == 4 else (-55.0 if k % 3 == 0 else -40.0)


def frame_items(k: int) -> dict[str, object]:
    rng = np.random.default_rng(k)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    pts = np.column_stack([rng.uniform(0, 50, 200), rng.uniform(-20, 20, 200),
                           rng.uniform(-1, 2, 200), rng.uniform(0, 255, 200),
                           np.zeros(200)]).astype(np.float32)
    stamp = T0 + k * PERIOD
    return {CAM: image, LIDAR: DecodedCloud(pts, 0, ()),
            RSU1: (stamp, serving_dbm(k)), RSU2: (stamp, -60.0 + k)}


def messages(n: int, *, skip: set[tuple[int, str]] = frozenset(), jitter: bool = True):
    """Decoded (topic, stamp, item) in arrival order, with a few ms of per-topic jitter."""
    out = []
    for k in range(n):
        for j, (topic, item) in enumerate(frame_items(k).items()):
            if (k, topic) in skip:
                continue
            stamp = T0 + k * PERIOD + (j * 3 * MS if jitter else 0)
            if topic in (RSU1, RSU2):
                item = (stamp, item[1])
            out.append((topic, stamp, item))
    return out


def frame_index(window) -> int:
    return int((window.newest_stamp_ns - T0) // PERIOD)


def synced(k: int, **missing) -> SyncedFrame:
    items = frame_items(k)
    for topic in missing.get('topics', ()):
        items[topic] = None
    stamps = {t: None if v is None else T0 + k * PERIOD for t, v in items.items()}
    return SyncedFrame(T0 + k * PERIOD, items, stamps)


# ---------------------------------------------------------------------------- frames
def test_frame_from_synced_shapes_and_missing_modalities():
    hold = RssiHold(CFG.rssi_dim)
    full = frame_from_synced(synced(0), CFG, TOPIC_MAP, rssi_hold=hold)
    assert full.arrays['image'].shape == (3, 128, 128)
    assert full.arrays['lidar'].shape == (3, 128, 128)
    assert full.arrays['rssi'].shape == (2,) and all(full.present.values())
    np.testing.assert_array_equal(full.rssi_dbm, [serving_dbm(0), -60.0])

    part = frame_from_synced(synced(1, topics=(CAM, RSU1)), CFG, TOPIC_MAP, rssi_hold=hold)
    assert part.present == {'image': False, 'lidar': True, 'rssi': True}
    assert not part.arrays['image'].any()
    # RSU1 missing: raw reading is NaN (for labels), the model input holds the last value
    assert np.isnan(part.rssi_dbm[0]) and hold.substituted == 1
    np.testing.assert_allclose(part.arrays['rssi'], (np.array([serving_dbm(0), -59.0]) + 60)
                               / 20)

    fresh = frame_from_synced(synced(1, topics=(RSU2,)), CFG, TOPIC_MAP, rssi_hold=RssiHold(2))
    assert fresh.present['rssi'] is False and not fresh.arrays['rssi'].any()


# ---------------------------------------------------------------------------- windows
def push_all(builder: WindowBuilder, ks) -> list:
    return [builder.push(frame_from_synced(synced(k), CFG, TOPIC_MAP)) for k in ks]


def test_window_is_causal_and_stacked():
    builder = WindowBuilder(CFG, period_ns=PERIOD)
    out = push_all(builder, range(7))
    assert out[:4] == [None] * 4
    for k, window in enumerate(out[4:], start=4):
        assert window.newest_stamp_ns == T0 + k * PERIOD
        assert (window.stamps_ns <= window.newest_stamp_ns).all()
        np.testing.assert_array_equal(window.stamps_ns, T0 + np.arange(k - 4, k + 1) * PERIOD)
        assert window.arrays['image'].shape == (5, 3, 128, 128)
        assert window.arrays['lidar'].shape == (5, 3, 128, 128)
        assert window.arrays['rssi'].shape == (5, 2)
        assert window.arrays['present'].shape == (5, 3) and window.arrays['present'].all()
        assert window.arrays['image'].dtype == np.float32
        # the last row is the newest frame (RSU2 encodes k), nothing newer
        np.testing.assert_allclose(window.arrays['rssi'][:, 1] * 20 - 60,
                                   -60.0 + np.arange(k - 4, k + 1), atol=1e-5)
    # an older frame arriving late is dropped, never put into a window
    assert push_all(builder, [3]) == [None] and not builder.last_accepted
    assert builder.counters['out_of_order'] == 1


def test_window_gap_discards_stale_frames():
    builder = WindowBuilder(CFG, period_ns=PERIOD)
    out = push_all(builder, [0, 1, 2, 3, 20, 21, 22, 23, 24])
    assert [w is not None for w in out] == [False] * 8 + [True]
    assert builder.counters['gap'] == 4
    assert out[-1].stamps_ns[0] == T0 + 20 * PERIOD


def test_labels_use_next_frame_and_s_th():
    windows, labels, stats = build_windows_from_messages(messages(12), CFG, **OPTS)
    # windows end at frames 4..10 (frame 11 has no next frame)
    assert [frame_index(w) for w in windows] == list(range(4, 11))
    expected = [1.0 if serving_dbm(k + 1) < -47.0 else 0.0 for k in range(4, 11)]
    np.testing.assert_array_equal(labels, expected)
    assert labels.dtype == np.float32 and stats['label/unlabelled'] == 1
    assert stats['sync/emitted'] == 12 and stats['sync/no_partner'] == 0


def test_window_without_serving_rssi_next_is_unlabelled():
    msgs = messages(10, skip={(6, RSU1)})
    windows, labels, stats = build_windows_from_messages(msgs, CFG, **PARTIAL)
    ends = [frame_index(w) for w in windows]
    assert 5 not in ends and ends == [4, 6, 7, 8]  # the window at 5 has no label
    assert stats['sync/partial'] == 1 and stats['label/unlabelled'] == 2
    assert stats['rssi_substituted'] == 1
    w6 = windows[1]
    assert w6.arrays['present'].all()  # RSU1 held from frame 5


def test_time_jump_restarts_windows():
    msgs = messages(14) + messages(7)  # the bag loops: 1.3 s back
    windows, labels, stats = build_windows_from_messages(msgs, CFG, **OPTS)
    # frame 13 is followed by the jump: not the future of its window, so unlabelled
    assert [frame_index(w) for w in windows] == list(range(4, 13)) + [4, 5]
    assert stats['label/unlabelled'] == 2
    assert stats['sync/time_jump'] == 1 and stats['window/time_jump'] == 1
    for w in windows:
        assert (np.diff(w.stamps_ns) > 0).all()


# ---------------------------------------------------------------------------- bags
TS = get_typestore(Stores.ROS2_KILTED)


def to_ros(topic: str, stamp: int, item) -> tuple[str, object]:
    t = TS.types
    header = t['std_msgs/msg/Header'](
        stamp=t['builtin_interfaces/msg/Time'](sec=stamp // 10**9, nanosec=stamp % 10**9),
        frame_id='x')
    if topic == CAM:
        h, w, _ = item.shape
        return 'sensor_msgs/msg/Image', t['sensor_msgs/msg/Image'](
            header=header, height=h, width=w, encoding='rgb8', is_bigendian=0, step=w * 3,
            data=item.reshape(-1).copy())
    if topic == LIDAR:
        pf = t['sensor_msgs/msg/PointField']
        fields = [pf(name=n, offset=4 * i, datatype=7, count=1)
                  for i, n in enumerate(('x', 'y', 'z', 'intensity', 'ring'))]
        pts = np.ascontiguousarray(item.points, dtype='<f4')
        return 'sensor_msgs/msg/PointCloud2', t['sensor_msgs/msg/PointCloud2'](
            header=header, height=1, width=len(pts), fields=fields, is_bigendian=False,
            point_step=20, row_step=20 * len(pts), data=pts.view(np.uint8).reshape(-1),
            is_dense=True)
    return 'sensor_msgs/msg/Temperature', t['sensor_msgs/msg/Temperature'](
        header=header, temperature=item[1], variance=0.5)


def write_bag(path, msgs, *, bad_image_at: int | None = None) -> None:
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {}
        for i, (topic, stamp, item) in enumerate(msgs):
            msgtype, msg = to_ros(topic, stamp, item)
            if i == bad_image_at:
                msg.encoding = 'yuv422'
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=TS)
            # log time = arrival (a little after the measurement stamp)
            writer.write(conns[topic], stamp + 2 * MS, TS.serialize_cdr(msg, msgtype))


def test_bag_round_trip_matches_direct_build(tmp_path):
    msgs = messages(8)
    bag = tmp_path / 'bag'
    write_bag(bag, msgs)
    counters: Counter[str] = Counter()
    read = list(read_bag_messages(bag, counters=counters))
    assert [(t, s) for t, s, _ in read] == [(t, s) for t, s, _ in msgs]
    assert counters['read'] == len(msgs) and counters['malformed'] == 0
    for (topic, _, got), (_, _, want) in zip(read, msgs):
        if topic == CAM:
            np.testing.assert_array_equal(got, want)
        elif topic == LIDAR:
            np.testing.assert_array_equal(got.points, want.points)
        else:
            assert got == want
    from_bag = build_windows_from_messages(read, CFG, **OPTS)
    direct = build_windows_from_messages(msgs, CFG, **OPTS)
    np.testing.assert_array_equal(from_bag[1], direct[1])
    for a, b in zip(from_bag[0], direct[0]):
        for name in a.arrays:
            assert np.array_equal(a.arrays[name], b.arrays[name])


def test_bag_malformed_message_is_skipped(tmp_path, caplog):
    msgs = messages(3)
    write_bag(tmp_path / 'bag', msgs, bad_image_at=4)
    counters: Counter[str] = Counter()
    read = list(read_bag_messages(tmp_path / 'bag', counters=counters))
    assert len(read) == len(msgs) - 1 and counters['malformed'] == 1
    assert 'yuv422' in caplog.text


def test_missing_or_corrupt_bag_raises(tmp_path):
    with pytest.raises(BagReadError, match='does not exist'):
        list(read_bag_messages(tmp_path / 'nope'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(BagReadError, match='not a rosbag2 directory'):
        list(read_bag_messages(tmp_path / 'empty'))
    bad_yaml = tmp_path / 'bad_yaml'
    bad_yaml.mkdir()
    (bad_yaml / 'metadata.yaml').write_text('rosbag2_bagfile_information: [not: a bag')
    with pytest.raises(BagReadError, match='bad_yaml.*corrupt'):
        list(read_bag_messages(bad_yaml))
    # valid metadata, damaged storage file
    write_bag(tmp_path / 'damaged', messages(3))
    for mcap in (tmp_path / 'damaged').glob('*.mcap'):
        mcap.write_bytes(mcap.read_bytes()[:40] + b'garbage' * 10)
    with pytest.raises(BagReadError, match='damaged.*corrupt'):
        list(read_bag_messages(tmp_path / 'damaged'))


def test_data_package_does_not_import_rclpy():
    code = 'import sys, mmtok_ros.data; sys.exit("rclpy" in sys.modules)'
    assert subprocess.run([sys.executable, '-c', code], timeout=60).returncode == 0
