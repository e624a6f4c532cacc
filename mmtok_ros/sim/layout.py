"""Road layouts: where the RSUs stand, which carry a sensor head, and what their streams are called.

Every simulated recording is a road with N >= 2 RSUs on the same side of the road of
``scene.py`` (frame: origin at RSU 1's pole, x along the road, y left, z up). RSU k's antenna is
RSU 1's testbed antenna shifted to x_k; an RSU with a sensor head has RSU 1's camera and LiDAR
mounted on its pole exactly as in the testbed, so a model trained on the testbed sees what it
was trained on.

Two presets:

* ``TESTBED``: two RSUs 40 m apart, one sensor head (RSU 1's), the topics of ``bag_writer``
  (``/camera/image_raw``, ``/lidar/points``, ``/rssi/rsu1``, ``/rssi/rsu2``), world frame 'rsu1'.
  Its stream names and the one shared timing stream are those the shipped models' bags were
  written with, so the same seed keeps giving the same bytes.
* ``road_layout(n)``: N RSUs ``ROAD_SPACING_M`` apart, each with its own sensor head, topics
  ``/rsuK/camera/image_raw``, ``/rsuK/lidar/points``, ``/rssi/rsuK``, world frame 'road'.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import bag_writer as bw
from . import camera, lidar
from .scene import POLE, RSU_POLE_SIZE_M, RSU_XYZ_M

ROAD_SPACING_M = 30.0              # RSU k at x = (k - 1) * 30 m: RSUs every 30-40 m
ROAD_FRAME = 'road'
MESSAGE_TYPES = {'image': ('sensor_msgs/msg/Image', bw.SENSOR_QOS),
                 'lidar': ('sensor_msgs/msg/PointCloud2', bw.SENSOR_QOS),
                 'rssi': ('sensor_msgs/msg/Temperature', bw.RELIABLE_QOS)}


def rsu_name(k: int) -> str:
    """'rsuK' for the 1-based index K."""
    return f'rsu{k}'


def road_topics(rsu: str) -> dict[str, str]:
    """The bag topics of one road RSU: its camera, LiDAR and the RSSI of its link."""
    return {'image': f'/{rsu}/camera/image_raw', 'lidar': f'/{rsu}/lidar/points',
            'rssi': f'/rssi/{rsu}'}


@dataclass(frozen=True)
class SensorStream:
    """One recorded sensor: the RSU it belongs to, its topic and its seeded random streams."""
    key: str               # its name in the sidecar's stamps and in the drop tables
    rsu: str
    sensor: str            # 'image', 'lidar' or 'rssi' (the RSSI of the RSU's link)
    topic: str
    timing_stream: str     # stamp jitter and delay; streams sharing a name share a generator
    render_stream: str     # camera / LiDAR noise ('' for RSSI)

    @property
    def frame_id(self) -> str:
        return {'image': f'{self.rsu}_camera', 'lidar': f'{self.rsu}_lidar'}.get(self.sensor,
                                                                                self.rsu)

    @property
    def message_type(self) -> tuple[str, object]:
        """(ROS message type, offered QoS) of its topic."""
        return MESSAGE_TYPES[self.sensor]


@dataclass(frozen=True)
class RoadLayout:
    """RSU positions along x, the recorded streams (in write order), world frame and epoch."""
    name: str
    rsu_x_m: tuple[float, ...]
    streams: tuple[SensorStream, ...]
    world_frame: str
    t0_ns: int             # nominal time of scenario 0's first frame (fixed: same bytes)
    home_rsu: str | None = None   # the RSU whose link the sidecar's 'blocked' describes

    @property
    def rsus(self) -> list[str]:
        return [rsu_name(k) for k in range(1, len(self.rsu_x_m) + 1)]

    def rsu_x(self, rsu: str) -> float:
        return self.rsu_x_m[self.rsus.index(rsu)]

    def rsu_xyz_m(self, rsu: str) -> np.ndarray:
        """Antenna position: RSU 1's testbed antenna, shifted along the road."""
        return RSU_XYZ_M['rsu1'] + np.array([self.rsu_x(rsu), 0.0, 0.0])

    def heads(self) -> list[str]:
        """The RSUs with a camera and LiDAR, in stream order."""
        return list(dict.fromkeys(s.rsu for s in self.streams if s.sensor != 'rssi'))

    def rssi_stream(self, rsu: str) -> SensorStream:
        return next(s for s in self.streams if s.sensor == 'rssi' and s.rsu == rsu)

    def bag_topics(self) -> list[tuple[str, str, object]]:
        """(topic, type, QoS) of the bag: /tf_static, then every stream."""
        return [(bw.TOPIC_TF_STATIC, 'tf2_msgs/msg/TFMessage', bw.STATIC_QOS)] + [
            (s.topic, *s.message_type) for s in self.streams]

    def seen_from(self, rsu: str, boxes: list) -> list:
        """Moving ``boxes`` plus the other RSUs' poles, in the sensor frame of ``rsu`` (shifted
        by -x so that it stands where RSU 1 stands in the testbed); its own pole is out of
        view."""
        x0, h = self.rsu_x(rsu), RSU_POLE_SIZE_M / 2
        poles = [(np.array([x - h, -h, 0.0]), np.array([x + h, h, POLE.height_m]), POLE)
                 for other, x in zip(self.rsus, self.rsu_x_m) if other != rsu]
        shift = np.array([x0, 0.0, 0.0])
        return [(lo - shift, hi - shift, spec) for lo, hi, spec in boxes + poles]

    def transforms(self) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
        """(parent, child, translation, rotation) of /tf_static: world -> each head's pole
        (none where the pole is the world frame), pole -> its camera and LiDAR."""
        out = []
        for rsu in self.heads():
            if rsu != self.world_frame:
                out.append((self.world_frame, rsu, np.array([self.rsu_x(rsu), 0.0, 0.0]),
                            np.eye(3)))
            out.append((rsu, f'{rsu}_camera', camera.CAMERA_XYZ_M, camera.R_WORLD_TO_CAM.T))
            out.append((rsu, f'{rsu}_lidar', lidar.LIDAR_XYZ_M, np.eye(3)))
        return out


def _testbed() -> RoadLayout:
    def stream(key: str, rsu: str, sensor: str, topic: str, render: str = '') -> SensorStream:
        return SensorStream(key, rsu, sensor, topic, 'jitter', render)

    return RoadLayout(
        'testbed', (0.0, float(RSU_XYZ_M['rsu2'][0])),
        (stream('image', 'rsu1', 'image', bw.TOPIC_IMAGE, 'camera'),
         stream('lidar', 'rsu1', 'lidar', bw.TOPIC_LIDAR, 'lidar'),
         stream('rsu1', 'rsu1', 'rssi', bw.TOPIC_RSSI['rsu1']),
         stream('rsu2', 'rsu2', 'rssi', bw.TOPIC_RSSI['rsu2'])),
        world_frame='rsu1', t0_ns=1_717_200_000_000_000_000, home_rsu='rsu1')  # 2024-06-01


TESTBED = _testbed()


def road_layout(n_rsus: int, spacing_m: float = ROAD_SPACING_M) -> RoadLayout:
    """N RSUs ``spacing_m`` apart, each with its own camera, LiDAR and RSSI streams."""
    rsus = [rsu_name(k) for k in range(1, n_rsus + 1)]
    streams = tuple(SensorStream(f'{rsu}/{sensor}', rsu, sensor, road_topics(rsu)[sensor],
                                 f'timing_{rsu}/{sensor}',
                                 '' if sensor == 'rssi' else f'sensor_{rsu}/{sensor}')
                    for rsu in rsus for sensor in ('image', 'lidar', 'rssi'))
    return RoadLayout('road', tuple((k - 1) * spacing_m for k in range(1, n_rsus + 1)),
                      streams, world_frame=ROAD_FRAME, t0_ns=1_717_300_000_000_000_000)


def static_boxes() -> list:
    """RSU 2's pole in RSU 1's sensor view (RSU 1's own pole is out of its sensors' view)."""
    return TESTBED.seen_from('rsu1', [])
