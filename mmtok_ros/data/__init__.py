"""ROS-free decoding, synchronization and windowing, shared by the live node and offline tools.

How a message becomes a window: ``stream.py``. Nothing here imports rclpy: messages are
duck-typed, so rclpy and rosbags messages both work.
"""
from __future__ import annotations

from .bag import read_bag_messages
from .decode import (DecodedCloud, decode_image, decode_input, decode_pointcloud2, decode_rssi,
                     stamp_ns)
from .errors import (BagReadError, DataError, EmptyCloudError, ImageDecodeError,
                     ImageSizeError, PointCloudDecodeError, RssiDecodeError, StampError)
from .stream import (StreamConfig, StreamEvent, TimeJump, WindowStream,
                     build_windows_from_messages, iter_windows_from_messages)
from .sync import ApproximateTimeSynchronizer, SyncedFrame
from .topics import DEFAULT_TOPICS, default_topic_map
from .window import (S_TH_DBM, FrameArrays, RssiHold, Window, WindowBuilder, empty_window,
                     frame_from_synced, link_blocked)

__all__ = [
    'ApproximateTimeSynchronizer', 'BagReadError', 'DEFAULT_TOPICS', 'DataError',
    'DecodedCloud', 'EmptyCloudError', 'FrameArrays', 'ImageDecodeError', 'ImageSizeError',
    'PointCloudDecodeError', 'RssiDecodeError', 'RssiHold', 'S_TH_DBM', 'StampError',
    'StreamConfig', 'StreamEvent', 'SyncedFrame', 'TimeJump', 'Window', 'WindowBuilder',
    'WindowStream', 'build_windows_from_messages', 'decode_image', 'decode_input',
    'decode_pointcloud2', 'decode_rssi', 'default_topic_map', 'empty_window',
    'frame_from_synced', 'iter_windows_from_messages', 'link_blocked', 'read_bag_messages',
    'stamp_ns',
]
