"""Decoders on real rclpy and rosbags message objects (both flavours must work)."""
from __future__ import annotations

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from mmtok_ros.data import (ImageDecodeError, PointCloudDecodeError, RssiDecodeError,
                            StampError, decode_image, decode_pointcloud2, decode_rssi,
                            stamp_ns)

TS = get_typestore(Stores.ROS2_KILTED)
FLAVOURS = ('rclpy', 'rosbags')
TYPE_CODES = {1: 'i1', 2: 'u1', 3: 'i2', 4: 'u2', 5: 'i4', 6: 'u4', 7: 'f4', 8: 'f8'}


def header(flavour: str, sec: int = 12, nanosec: int = 345):
    if flavour == 'rclpy':
        from builtin_interfaces.msg import Time
        from std_msgs.msg import Header
        return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id='f')
    t = TS.types
    return t['std_msgs/msg/Header'](stamp=t['builtin_interfaces/msg/Time'](sec=sec,
                                                                          nanosec=nanosec),
                                    frame_id='f')


def image_msg(flavour: str, pixels: np.ndarray, encoding: str, *, pad: int = 0,
              truncate: int = 0):
    """An Image holding ``pixels`` (H, W, C) uint8 with ``pad`` bytes of padding per row."""
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    rows = np.concatenate([rows, np.full((h, pad), 7, np.uint8)], axis=1)
    data = rows.tobytes()[:len(rows.tobytes()) - truncate]
    step = rows.shape[1]
    if flavour == 'rclpy':
        from sensor_msgs.msg import Image
        return Image(header=header(flavour), height=h, width=w, encoding=encoding,
                     is_bigendian=0, step=step, data=data)
    return TS.types['sensor_msgs/msg/Image'](
        header=header(flavour), height=h, width=w, encoding=encoding, is_bigendian=0,
        step=step, data=np.frombuffer(data, np.uint8).copy())


def cloud_msg(flavour: str, values: dict[str, np.ndarray],
              layout: list[tuple[str, int, int]], *, point_step: int, bigendian: bool = False,
              height: int = 1, row_pad: int = 0, truncate: int = 0):
    """A PointCloud2 with fields ``layout`` [(name, offset, datatype)] holding ``values``."""
    n = len(next(iter(values.values()))) if values else 0
    width = n // height
    order = '>' if bigendian else '<'
    dtype = np.dtype({'names': [f[0] for f in layout],
                      'formats': [order + TYPE_CODES[f[2]] for f in layout],
                      'offsets': [f[1] for f in layout], 'itemsize': point_step})
    records = np.zeros(n, dtype=dtype)
    for name, v in values.items():
        records[name] = v
    rows = records.tobytes()
    row_step = width * point_step + row_pad
    raw = np.frombuffer(rows, np.uint8).reshape(height, width * point_step) if n else \
        np.zeros((height, 0), np.uint8)
    raw = np.concatenate([raw, np.full((height, row_pad), 0xFF, np.uint8)], axis=1)
    data = raw.tobytes()[:raw.size - truncate]
    if flavour == 'rclpy':
        from sensor_msgs.msg import PointCloud2, PointField
        fields = [PointField(name=f[0], offset=f[1], datatype=f[2], count=1) for f in layout]
        return PointCloud2(header=header(flavour), height=height, width=width, fields=fields,
                           is_bigendian=bigendian, point_step=point_step, row_step=row_step,
                           data=data, is_dense=False)
    PF = TS.types['sensor_msgs/msg/PointField']
    fields = [PF(name=f[0], offset=f[1], datatype=f[2], count=1) for f in layout]
    return TS.types['sensor_msgs/msg/PointCloud2'](
        header=header(flavour), height=height, width=width, fields=fields,
        is_bigendian=bigendian, point_step=point_step, row_step=row_step,
        data=np.frombuffer(data, np.uint8).copy(), is_dense=False)


def rssi_msg(flavour: str, dbm: float):
    if flavour == 'rclpy':
        from sensor_msgs.msg import Temperature
        return Temperature(header=header(flavour, 3, 5), temperature=dbm, variance=1.0)
    return TS.types['sensor_msgs/msg/Temperature'](header=header(flavour, 3, 5),
                                                   temperature=dbm, variance=1.0)


def rgb_image(h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------ stamps
@pytest.mark.parametrize('flavour', FLAVOURS)
def test_stamp_ns_is_integer_nanoseconds(flavour):
    # 1.7e9 s since epoch: float seconds would lose the nanoseconds
    h = header(flavour, 1_700_000_000, 123_456_789)
    assert stamp_ns(h) == 1_700_000_000_123_456_789


def test_stamp_ns_rejects_bad_nanosec():
    class S:
        sec, nanosec = 1, 1_000_000_000

    class H:
        stamp = S()
    with pytest.raises(StampError, match='nanosec'):
        stamp_ns(H())


# ------------------------------------------------------------------------------ images
@pytest.mark.parametrize('flavour', FLAVOURS)
@pytest.mark.parametrize('pad', [0, 5])
@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'mono8', 'rgba8', 'bgra8'])
def test_decode_image_every_encoding(flavour, encoding, pad):
    rgb = rgb_image()
    alpha = np.full(rgb.shape[:2] + (1,), 200, np.uint8)
    pixels = {'rgb8': rgb, 'bgr8': rgb[:, :, ::-1],
              'mono8': rgb[:, :, :1],
              'rgba8': np.concatenate([rgb, alpha], axis=2),
              'bgra8': np.concatenate([rgb[:, :, ::-1], alpha], axis=2)}[encoding]
    out = decode_image(image_msg(flavour, np.ascontiguousarray(pixels), encoding, pad=pad))
    expected = np.repeat(rgb[:, :, :1], 3, axis=2) if encoding == 'mono8' else rgb
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    assert out.flags.writeable and out.flags.c_contiguous


@pytest.mark.parametrize('flavour', FLAVOURS)
def test_decode_image_rejects_unknown_encoding(flavour):
    with pytest.raises(ImageDecodeError, match=r"'yuv422' not supported; expected rgb8"):
        decode_image(image_msg(flavour, rgb_image(), 'yuv422'))


@pytest.mark.parametrize('flavour', FLAVOURS)
def test_decode_image_rejects_truncated_data(flavour):
    with pytest.raises(ImageDecodeError, match='truncated'):
        decode_image(image_msg(flavour, rgb_image(), 'rgb8', truncate=1))


def test_decode_image_rejects_small_step_and_empty():
    msg = image_msg('rosbags', rgb_image(), 'rgb8')
    msg.step = 64 * 3 - 1
    with pytest.raises(ImageDecodeError, match='step'):
        decode_image(msg)
    msg = image_msg('rosbags', rgb_image(), 'rgb8')
    msg.width = 0
    with pytest.raises(ImageDecodeError, match='positive'):
        decode_image(msg)


# ------------------------------------------------------------------------------ clouds
def xyzir(n: int = 20) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {'x': rng.uniform(0, 50, n), 'y': rng.uniform(-20, 20, n),
            'z': rng.uniform(-2, 2, n), 'intensity': rng.integers(0, 255, n).astype(float),
            'ring': rng.integers(0, 32, n).astype(float)}


def expected(values: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([values[k] for k in ('x', 'y', 'z', 'intensity', 'ring')],
                    axis=1).astype(np.float32)


STANDARD = [('x', 0, 7), ('y', 4, 7), ('z', 8, 7), ('intensity', 12, 7), ('ring', 16, 4)]


@pytest.mark.parametrize('flavour', FLAVOURS)
def test_decode_cloud_standard_layout(flavour):
    v = xyzir()
    cloud = decode_pointcloud2(cloud_msg(flavour, v, STANDARD, point_step=18))
    np.testing.assert_array_equal(cloud.points, expected(v))
    assert cloud.n_nonfinite_dropped == 0 and cloud.missing_optional_fields == ()


@pytest.mark.parametrize('flavour', FLAVOURS)
@pytest.mark.parametrize('bigendian', [False, True])
def test_decode_cloud_shuffled_fields_padding_float64(flavour, bigendian):
    # fields out of order, float64 x/y, gaps inside the point and padding at its end
    layout = [('ring', 0, 2), ('intensity', 2, 3), ('z', 4, 7), ('y', 8, 8), ('x', 24, 8),
              ('t', 40, 6)]
    v = xyzir()
    v['t'] = np.arange(20.0)
    cloud = decode_pointcloud2(cloud_msg(flavour, v, layout, point_step=48,
                                         bigendian=bigendian))
    del v['t']
    np.testing.assert_allclose(cloud.points, expected(v), rtol=1e-6)


@pytest.mark.parametrize('flavour', FLAVOURS)
def test_decode_cloud_organized_with_row_padding(flavour):
    v = xyzir(24)
    cloud = decode_pointcloud2(cloud_msg(flavour, v, STANDARD, point_step=20, height=4,
                                         row_pad=6))
    np.testing.assert_array_equal(cloud.points, expected(v))


@pytest.mark.parametrize('flavour', FLAVOURS)
def test_decode_cloud_drops_nonfinite_and_fills_optional(flavour):
    v = {k: xyzir()[k] for k in ('x', 'y', 'z')}
    v['x'][3] = np.nan
    v['z'][7] = np.inf
    layout = [('x', 0, 7), ('y', 4, 7), ('z', 8, 7)]
    cloud = decode_pointcloud2(cloud_msg(flavour, v, layout, point_step=16))
    assert cloud.n_nonfinite_dropped == 2
    assert cloud.missing_optional_fields == ('intensity', 'ring')
    assert cloud.points.shape == (18, 5) and np.isfinite(cloud.points).all()
    assert (cloud.points[:, 3:] == 0).all()


@pytest.mark.parametrize('flavour', FLAVOURS)
def test_decode_cloud_empty_is_valid(flavour):
    cloud = decode_pointcloud2(cloud_msg(flavour, {}, STANDARD, point_step=18))
    assert cloud.points.shape == (0, 5) and cloud.points.dtype == np.float32


@pytest.mark.parametrize('flavour', FLAVOURS)
def test_decode_cloud_missing_x_names_it(flavour):
    v = xyzir()
    layout = [('y', 4, 7), ('z', 8, 7), ('intensity', 12, 7)]
    with pytest.raises(PointCloudDecodeError, match=r"\['x'\]"):
        decode_pointcloud2(cloud_msg(flavour, {k: v[k] for k in ('y', 'z', 'intensity')},
                                     layout, point_step=16))


@pytest.mark.parametrize('flavour', FLAVOURS)
def test_decode_cloud_truncated(flavour):
    with pytest.raises(PointCloudDecodeError, match='truncated'):
        decode_pointcloud2(cloud_msg(flavour, xyzir(), STANDARD, point_step=18, truncate=1))


def test_decode_cloud_field_outside_point_step():
    msg = cloud_msg('rosbags', xyzir(), STANDARD, point_step=18)
    msg.fields[0].offset = 16
    with pytest.raises(PointCloudDecodeError, match='point_step'):
        decode_pointcloud2(msg)


# ------------------------------------------------------------------------------ RSSI
@pytest.mark.parametrize('flavour', FLAVOURS)
def test_decode_rssi(flavour):
    assert decode_rssi(rssi_msg(flavour, -52.5)) == (3_000_000_005, -52.5)


@pytest.mark.parametrize('flavour', FLAVOURS)
@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_decode_rssi_rejects_nonfinite(flavour, bad):
    with pytest.raises(RssiDecodeError, match='not finite'):
        decode_rssi(rssi_msg(flavour, bad))
