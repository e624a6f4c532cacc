"""One exception type per way input data can be wrong.

All derive from ``DataError`` (a :class:`~mmtok_ros.errors.UserInputError`, hence also a
``ValueError``), so a caller that only wants "skip bad input" catches one type, and a caller
that wants to count reasons catches the specific ones.
"""
from __future__ import annotations

from ..errors import UserInputError


class DataError(UserInputError):
    """Base of every error raised while decoding, synchronizing or reading sensor data."""


class StampError(DataError):
    """A header stamp is not a valid ROS time (nanosec outside [0, 1e9), negative sec)."""


class ImageDecodeError(DataError):
    """A sensor_msgs/Image cannot be turned into an (H, W, 3) RGB array."""


class PointCloudDecodeError(DataError):
    """A sensor_msgs/PointCloud2 cannot be turned into [x, y, z, intensity, ring] points."""


class RssiDecodeError(DataError):
    """An RSSI message (sensor_msgs/Temperature carrying dBm) holds no finite reading."""


class ImageSizeError(DataError):
    """An image of a size the model was not deployed for (``expected_image_width/height``)."""


class EmptyCloudError(DataError):
    """A PointCloud2 without a single finite point: the frame goes on without LiDAR."""


class BagReadError(DataError):
    """A bag is missing, unreadable or corrupt, or holds a topic of an unexpected type."""


__all__ = ['DataError', 'StampError', 'ImageDecodeError', 'PointCloudDecodeError',
           'RssiDecodeError', 'ImageSizeError', 'EmptyCloudError', 'BagReadError']
