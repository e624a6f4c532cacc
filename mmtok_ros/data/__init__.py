"""ROS-free decoding, synchronization and windowing, shared by the live node and offline tools.

Nothing here imports rclpy: messages are duck-typed, so rclpy and rosbags messages both work.
"""
from __future__ import annotations

from .decode import DecodedCloud, decode_image, decode_pointcloud2, decode_rssi, stamp_ns
from .errors import (BagReadError, DataError, ImageDecodeError, PointCloudDecodeError,
                     RssiDecodeError, StampError)
from .sync import ApproximateTimeSynchronizer, SyncedFrame
from .topics import DEFAULT_TOPICS, default_topic_map
from .window import (S_TH_DBM, FrameArrays, RssiHold, Window, WindowBuilder,
                     build_windows_from_messages, frame_from_synced, iter_windows_from_messages,
                     label_windows, link_blocked, read_bag_messages)

__all__ = [
    'ApproximateTimeSynchronizer', 'BagReadError', 'DEFAULT_TOPICS', 'DataError',
    'DecodedCloud', 'FrameArrays', 'ImageDecodeError', 'PointCloudDecodeError',
    'RssiDecodeError', 'RssiHold', 'S_TH_DBM', 'StampError', 'SyncedFrame', 'Window',
    'WindowBuilder', 'build_windows_from_messages', 'decode_image', 'decode_pointcloud2',
    'decode_rssi', 'default_topic_map', 'frame_from_synced', 'iter_windows_from_messages',
    'label_windows', 'link_blocked', 'read_bag_messages', 'stamp_ns',
]
