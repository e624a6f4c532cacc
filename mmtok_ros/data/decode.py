"""ROS messages -> numpy arrays, for rclpy messages and rosbags messages alike.

The decoders are duck-typed: they read only attribute names (``header.stamp.sec``,
``height``, ``data``...), which rclpy message objects and rosbags-deserialized message objects
share, so the live node and offline dataset building run the same code. ``data`` may be
``bytes``, ``array.array`` (rclpy) or a numpy ``uint8`` array (rosbags); it is viewed through
the buffer protocol with ``np.frombuffer`` and never walked per pixel or per point in Python.

Why hand-written: ``cv_bridge`` and ``sensor_msgs_py`` have no PyPI wheels, so they cannot be
installed in a venv beside torch, and ``cv_bridge`` breaks on NumPy 2. This module works on
NumPy 1.26 and 2.x.

RSSI transport: ROS 2 has no standard header-stamped RSSI message, and every input must carry
the time it was measured at (receive time would mis-align it with the camera and LiDAR).
RSSI is therefore carried in the standard ``sensor_msgs/msg/Temperature``: ``header`` is the
measurement time and frame, ``temperature`` (float64) is the RSSI in dBm and ``variance``
(float64) the measurement variance in dB^2 (0 when unknown).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ..constants import NS_PER_S
from .errors import (EmptyCloudError, ImageDecodeError, ImageSizeError, PointCloudDecodeError,
                     RssiDecodeError, StampError)

# Physically possible RSSI: a received power above +30 dBm (1 W) or below -200 dBm is a broken
# driver or a unit mix-up (mW, linear), not a measurement; such readings are rejected like NaN.
RSSI_RANGE_DBM = (-200.0, 30.0)

# encoding -> (bytes per pixel, channel indices giving R, G, B)
_IMAGE_LAYOUTS: dict[str, tuple[int, tuple[int, int, int]]] = {
    'rgb8': (3, (0, 1, 2)),
    'bgr8': (3, (2, 1, 0)),
    'mono8': (1, (0, 0, 0)),
    'rgba8': (4, (0, 1, 2)),
    'bgra8': (4, (2, 1, 0)),
}

# sensor_msgs/PointField datatype constants 1..8 -> numpy type code (byte order added later)
_POINT_FIELD_TYPES: dict[int, str] = {
    1: 'i1', 2: 'u1', 3: 'i2', 4: 'u2', 5: 'i4', 6: 'u4', 7: 'f4', 8: 'f8',
}
CLOUD_COLUMNS = ('x', 'y', 'z', 'intensity', 'ring')
_REQUIRED_FIELDS = ('x', 'y', 'z')
_OPTIONAL_FIELDS = ('intensity', 'ring')


class DecodedCloud(NamedTuple):
    """A decoded PointCloud2: finite points and what was dropped or filled in."""

    points: np.ndarray                   # (P, 5) float32 [x, y, z, intensity, ring]
    n_nonfinite_dropped: int             # points removed for a non-finite x/y/z/intensity
    missing_optional_fields: tuple[str, ...]  # optional fields absent, filled with 0


def stamp_ns(header: Any) -> int:
    """Integer nanoseconds of ``header.stamp`` (no float seconds: they lose ns at epoch)."""
    sec, nanosec = int(header.stamp.sec), int(header.stamp.nanosec)
    if not 0 <= nanosec < NS_PER_S:
        raise StampError(f'header stamp nanosec={nanosec} is outside [0, {NS_PER_S})')
    if sec < 0:
        raise StampError(f'header stamp sec={sec} is negative; expected a time since epoch')
    return sec * NS_PER_S + nanosec


def _bytes_view(data: Any) -> np.ndarray:
    """A flat uint8 view of ``data`` without copying, whatever buffer type carries it."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(memoryview(data).cast('B'), dtype=np.uint8)
    except TypeError:  # a plain list of ints (a message built by hand)
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def decode_image(msg: Any) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB, a fresh array (message buffers get reused)."""
    encoding = str(msg.encoding).lower()
    if encoding not in _IMAGE_LAYOUTS:
        raise ImageDecodeError(f'Image encoding {msg.encoding!r} not supported; expected '
                               f'{", ".join(_IMAGE_LAYOUTS)}')
    bpp, rgb_index = _IMAGE_LAYOUTS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f'Image is {width}x{height}; expected a positive width and '
                               'height')
    if step < width * bpp:
        raise ImageDecodeError(f'Image step={step} is smaller than width*bytes_per_pixel='
                               f'{width}*{bpp}={width * bpp} for encoding {encoding!r}')
    buf = _bytes_view(msg.data)
    if buf.size < step * height:
        raise ImageDecodeError(f'Image data has {buf.size} bytes; expected at least '
                               f'step*height={step}*{height}={step * height} (truncated?)')
    rows = buf[:step * height].reshape(height, step)[:, :width * bpp]  # drop row padding
    pixels = rows.reshape(height, width, bpp)                          # (H, W, bpp) view
    if encoding == 'rgb8':
        return pixels.copy()
    if encoding == 'mono8':
        return np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, list(rgb_index)])      # reorder, drop alpha


def _cloud_dtype(msg: Any, names: list[str]) -> np.dtype:
    """A structured dtype reading ``names`` at their offsets, one record per point_step."""
    order = '>' if bool(msg.is_bigendian) else '<'
    point_step = int(msg.point_step)
    by_name = {}
    for field in msg.fields:
        by_name.setdefault(str(field.name), field)  # first definition wins, like PCL
    formats, offsets = [], []
    for name in names:
        field = by_name[name]
        code = _POINT_FIELD_TYPES.get(int(field.datatype))
        if code is None:
            raise PointCloudDecodeError(
                f'PointCloud2 field {name!r} has datatype {field.datatype}; expected one of '
                f'{sorted(_POINT_FIELD_TYPES)} (INT8..FLOAT64)')
        offset = int(field.offset)
        if offset < 0 or offset + int(code[1]) > point_step:
            raise PointCloudDecodeError(
                f'PointCloud2 field {name!r} at offset {offset} ({code}) does not fit in '
                f'point_step={point_step}')
        formats.append(order + code)
        offsets.append(offset)
    return np.dtype({'names': names, 'formats': formats, 'offsets': offsets,
                     'itemsize': point_step})


def decode_pointcloud2(msg: Any) -> DecodedCloud:
    """sensor_msgs/PointCloud2 -> finite (P, 5) float32 [x, y, z, intensity, ring].

    Any field order, offsets, point_step padding, row_step padding, organized (height > 1)
    clouds and either byte order are read through one structured dtype; fields other than
    the five are ignored. Missing intensity/ring are filled with 0 and reported.
    """
    present = {str(f.name) for f in msg.fields}
    missing_optional = tuple(n for n in _OPTIONAL_FIELDS if n not in present)
    height, width = int(msg.height), int(msg.width)
    if height * width == 0:
        return DecodedCloud(np.zeros((0, len(CLOUD_COLUMNS)), np.float32), 0, missing_optional)
    missing = [n for n in _REQUIRED_FIELDS if n not in present]
    if missing:
        raise PointCloudDecodeError(f'PointCloud2 lacks field(s) {missing}; expected x, y, z '
                                    f'(has {sorted(present)})')
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    if point_step <= 0:
        raise PointCloudDecodeError(f'PointCloud2 point_step={point_step}; expected > 0')
    if row_step < width * point_step:
        raise PointCloudDecodeError(f'PointCloud2 row_step={row_step} is smaller than '
                                    f'width*point_step={width}*{point_step}')
    names = [n for n in CLOUD_COLUMNS if n in present]
    dtype = _cloud_dtype(msg, names)
    buf = _bytes_view(msg.data)
    needed = (height - 1) * row_step + width * point_step
    if buf.size < needed:
        raise PointCloudDecodeError(f'PointCloud2 data has {buf.size} bytes; expected at '
                                    f'least {needed} for {height}x{width} points (truncated?)')
    # (height, width) records straight over the message buffer: no copy, no Python loop
    records = np.ndarray((height, width), dtype=dtype, buffer=buf,
                         strides=(row_step, point_step)).reshape(-1)
    points = np.zeros((records.size, len(CLOUD_COLUMNS)), dtype=np.float32)
    for col, name in enumerate(CLOUD_COLUMNS):
        if name in names:
            points[:, col] = records[name]
    finite = np.isfinite(points[:, :4]).all(axis=1)
    n_bad = int(finite.size - np.count_nonzero(finite))
    if n_bad:
        points = points[finite]
    return DecodedCloud(points, n_bad, missing_optional)


def decode_rssi(msg: Any) -> tuple[int, float]:
    """sensor_msgs/Temperature carrying RSSI -> (stamp_ns, rssi_dbm); see module docstring.

    Non-finite and physically impossible readings (outside ``RSSI_RANGE_DBM``) and a negative
    variance are rejected: they can only come from a broken driver.
    """
    rssi_dbm = float(msg.temperature)
    if not math.isfinite(rssi_dbm):
        raise RssiDecodeError(f'RSSI {rssi_dbm} dBm is not finite; expected a reading in dBm '
                              'in sensor_msgs/Temperature.temperature')
    low, high = RSSI_RANGE_DBM
    if not low <= rssi_dbm <= high:
        raise RssiDecodeError(f'RSSI {rssi_dbm:g} dBm is outside the physically possible '
                              f'[{low:g}, {high:g}] dBm; expected dBm, not mW or a raw count')
    variance = float(getattr(msg, 'variance', 0.0))
    if not variance >= 0.0:   # also catches NaN
        raise RssiDecodeError(f'RSSI variance {variance:g} dB^2 is negative or NaN; expected '
                              '>= 0 (0 when unknown)')
    return stamp_ns(msg.header), rssi_dbm


def decode_input(kind: str, msg: Any, *,
                 expected_image_wh: tuple[int, int] | None = None) -> tuple[int, Any]:
    """The decode policy of every input, live and offline: message -> (stamp_ns, item).

    ``kind`` is 'image', 'lidar' or 'rssi'. Items: image (H, W, 3) uint8 RGB, lidar a
    ``DecodedCloud`` with at least one finite point, rssi a (stamp_ns, dbm) tuple. Raises a
    ``DataError`` subclass naming what is wrong; the caller counts it and goes on.
    ``expected_image_wh`` (0 in a place: any) rejects images of another size.
    """
    if kind == 'rssi':
        stamp, dbm = decode_rssi(msg)
        return stamp, (stamp, dbm)
    stamp = stamp_ns(msg.header)
    if kind == 'image':
        if expected_image_wh is not None:
            want_w, want_h = expected_image_wh
            if (want_w and int(msg.width) != want_w) or (want_h and int(msg.height) != want_h):
                raise ImageSizeError(f'Image is {msg.width}x{msg.height}; expected '
                                     f'{want_w}x{want_h} (expected_image_width/height)')
        return stamp, decode_image(msg)
    if kind != 'lidar':
        raise ValueError(f'unknown input kind {kind!r}; expected image, lidar or rssi')
    cloud = decode_pointcloud2(msg)
    if len(cloud.points) == 0:
        raise EmptyCloudError(f'PointCloud2 has no finite points ({msg.width}x{msg.height}); '
                              'the frame goes on without LiDAR')
    return stamp, cloud


__all__ = ['CLOUD_COLUMNS', 'DecodedCloud', 'RSSI_RANGE_DBM', 'decode_image', 'decode_input',
           'decode_pointcloud2', 'decode_rssi', 'stamp_ns']
