"""Write the simulated sensor streams as a rosbag2 bag (MCAP, version 9) with ``rosbags``.

Why rosbags: it is pure Python (no ROS installation here, see ROS2-ON-PIP.md) and its CDR bytes
deserialize with ``rclpy.serialization.deserialize_message``, so a bag written here is what
``ros2 bag play`` on an RSU expects.

Topics of the testbed (types from the ROS 2 Kilted typestore; a road layout, ``layout.py``,
gives every RSU K the same messages on ``/rsuK/...`` topics in frames 'rsuK_camera', ...):

* ``/camera/image_raw``  sensor_msgs/msg/Image, frame 'rsu1_camera', rgb8, step = 640 * 3.
* ``/lidar/points``      sensor_msgs/msg/PointCloud2, frame 'rsu1_lidar', height 1, fields
  x, y, z, intensity FLOAT32 at 0, 4, 8, 12 and ring UINT16 at 16; point_step 20 (18 rounded
  up to 4-byte alignment, padding zeroed), is_dense False (the driver keeps no-return slots in
  organised mode; consumers must not assume finite points).
* ``/rssi/rsu1``, ``/rssi/rsu2``  sensor_msgs/msg/Temperature used as a stamped scalar:
  ``temperature`` = RSSI in dBm, ``variance`` = measurement-noise variance in dB^2, frame 'rsu1'
  / 'rsu2'. ROS 2 has no standard RSSI message, and every model input needs a measurement-time
  header for synchronisation; Temperature is the standard stamped float64 + variance message
  (std_msgs/Float64 has no header), so it is reused rather than adding a custom package that
  RSUs would have to build.
* ``/tf_static``  tf2_msgs/msg/TFMessage: 'rsu1' -> 'rsu1_camera' and 'rsu1' -> 'rsu1_lidar',
  offered with transient-local durability like a static_transform_publisher.

Messages must arrive in log-time order; :meth:`BagWriter.write` refuses to go back in time.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability
from rosbags.interfaces import QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from ..errors import OutputExistsError

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
BAG_VERSION = 9
TOPIC_IMAGE = '/camera/image_raw'
TOPIC_LIDAR = '/lidar/points'
TOPIC_RSSI = {'rsu1': '/rssi/rsu1', 'rsu2': '/rssi/rsu2'}
TOPIC_TF_STATIC = '/tf_static'
FRAME_CAMERA, FRAME_LIDAR = 'rsu1_camera', 'rsu1_lidar'

POINT_DTYPE = np.dtype({'names': ['x', 'y', 'z', 'intensity', 'ring'],
                        'formats': ['<f4', '<f4', '<f4', '<f4', '<u2'],
                        'offsets': [0, 4, 8, 12, 16], 'itemsize': 20})
_POINTFIELD_FLOAT32, _POINTFIELD_UINT16 = 7, 4

_INFINITE = QosTime(sec=9223372036, nsec=854775807)   # rosbag2's "infinite" duration


def _qos(reliability: QosReliability, durability: QosDurability, depth: int) -> Qos:
    return Qos(history=QosHistory.KEEP_LAST, depth=depth, reliability=reliability,
               durability=durability, deadline=_INFINITE, lifespan=_INFINITE,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=_INFINITE,
               avoid_ros_namespace_conventions=False)


SENSOR_QOS = _qos(QosReliability.BEST_EFFORT, QosDurability.VOLATILE, 5)
RELIABLE_QOS = _qos(QosReliability.RELIABLE, QosDurability.VOLATILE, 10)
STATIC_QOS = _qos(QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, 1)

_M = TYPESTORE.types
Header = _M['std_msgs/msg/Header']
Time = _M['builtin_interfaces/msg/Time']


def header(stamp_ns: int, frame_id: str):
    """std_msgs/Header from integer nanoseconds."""
    return Header(stamp=Time(sec=int(stamp_ns // 1_000_000_000),
                             nanosec=int(stamp_ns % 1_000_000_000)), frame_id=frame_id)


def image_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str = FRAME_CAMERA):
    h, w, _ = rgb.shape
    return _M['sensor_msgs/msg/Image'](
        header=header(stamp_ns, frame_id), height=h, width=w, encoding='rgb8',
        is_bigendian=0, step=w * 3, data=np.ascontiguousarray(rgb, np.uint8).reshape(-1))


def pointcloud_msg(points: np.ndarray, stamp_ns: int, frame_id: str = FRAME_LIDAR):
    """(P, 5) float32 [x, y, z, intensity, ring] -> PointCloud2 with a 20-byte point."""
    rec = np.zeros(points.shape[0], POINT_DTYPE)
    for i, name in enumerate(('x', 'y', 'z', 'intensity')):
        rec[name] = points[:, i]
    rec['ring'] = points[:, 4].astype(np.uint16)
    field = _M['sensor_msgs/msg/PointField']
    fields = [field(name=n, offset=4 * i, datatype=_POINTFIELD_FLOAT32, count=1)
              for i, n in enumerate(('x', 'y', 'z', 'intensity'))]
    fields.append(field(name='ring', offset=16, datatype=_POINTFIELD_UINT16, count=1))
    return _M['sensor_msgs/msg/PointCloud2'](
        header=header(stamp_ns, frame_id), height=1, width=points.shape[0], fields=fields,
        is_bigendian=False, point_step=POINT_DTYPE.itemsize,
        row_step=POINT_DTYPE.itemsize * points.shape[0],
        data=rec.view(np.uint8).reshape(-1), is_dense=False)


def rssi_msg(rssi_dbm: float, variance_db2: float, stamp_ns: int, frame_id: str):
    return _M['sensor_msgs/msg/Temperature'](header=header(stamp_ns, frame_id),
                                             temperature=float(rssi_dbm),
                                             variance=float(variance_db2))


def quaternion_from_matrix(rot: np.ndarray) -> np.ndarray:
    """(x, y, z, w) of a proper rotation matrix (Shepperd's method, largest-diagonal branch)."""
    m = np.asarray(rot, float)
    tr = np.trace(m)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
        q[i] = s / 4
        q[j] = (m[j, i] + m[i, j]) / s
        q[k] = (m[k, i] + m[i, k]) / s
    q = np.array(q)
    return q / np.linalg.norm(q)


def tf_static_msg(stamp_ns: int, transforms: list[tuple[str, str, np.ndarray, np.ndarray]]):
    """TFMessage of (parent, child, translation_m, rotation 3x3) transforms, in that order."""
    out = []
    for parent, child, trans_m, rot in transforms:
        qx, qy, qz, qw = quaternion_from_matrix(rot)
        out.append(_M['geometry_msgs/msg/TransformStamped'](
            header=header(stamp_ns, parent), child_frame_id=child,
            transform=_M['geometry_msgs/msg/Transform'](
                translation=_M['geometry_msgs/msg/Vector3'](
                    x=float(trans_m[0]), y=float(trans_m[1]), z=float(trans_m[2])),
                rotation=_M['geometry_msgs/msg/Quaternion'](
                    x=float(qx), y=float(qy), z=float(qz), w=float(qw)))))
    return _M['tf2_msgs/msg/TFMessage'](transforms=out)


class BagWriter:
    """A rosbag2 MCAP bag of ``topics`` (type, QoS; default the testbed's); never overwrites,
    enforces log-time order."""

    TOPICS = ((TOPIC_TF_STATIC, 'tf2_msgs/msg/TFMessage', STATIC_QOS),
              (TOPIC_IMAGE, 'sensor_msgs/msg/Image', SENSOR_QOS),
              (TOPIC_LIDAR, 'sensor_msgs/msg/PointCloud2', SENSOR_QOS),
              (TOPIC_RSSI['rsu1'], 'sensor_msgs/msg/Temperature', RELIABLE_QOS),
              (TOPIC_RSSI['rsu2'], 'sensor_msgs/msg/Temperature', RELIABLE_QOS))

    def __init__(self, path: str | Path, topics: list[tuple[str, str, Qos]] | None = None):
        self.topics = tuple(self.TOPICS if topics is None else topics)
        self.path = Path(path)
        if self.path.exists():
            raise OutputExistsError(f'{self.path} exists already; refusing to overwrite a bag '
                                  '(choose another --out or delete it)')
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
        self._conns: dict[str, object] = {}
        self._types: dict[str, str] = {}
        self._last_log_ns = -1
        self.counts: dict[str, int] = {}
        self._digest = hashlib.sha256()

    def __enter__(self) -> BagWriter:
        self._writer.open()
        for topic, msgtype, qos in self.topics:
            self._conns[topic] = self._writer.add_connection(
                topic, msgtype, typestore=TYPESTORE, offered_qos_profiles=[qos])
            self._types[topic] = msgtype
            self.counts[topic] = 0
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()

    def write(self, topic: str, msg, log_ns: int) -> None:
        """Serialise ``msg`` to CDR and append it at receive time ``log_ns``."""
        if log_ns < self._last_log_ns:
            raise ValueError(f'{topic}: log time {log_ns} before previous {self._last_log_ns}')
        data = TYPESTORE.serialize_cdr(msg, self._types[topic])
        self._writer.write(self._conns[topic], int(log_ns), data)
        self._last_log_ns = log_ns
        self.counts[topic] += 1
        self._digest.update(topic.encode())
        self._digest.update(int(log_ns).to_bytes(8, 'little'))
        self._digest.update(data)

    @property
    def payload_sha256(self) -> str:
        """Digest of (topic, log time, CDR bytes) of every message: the determinism check."""
        return self._digest.hexdigest()
