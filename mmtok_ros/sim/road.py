"""N road-side units along a road (N >= 3): bags with every RSU's camera, LiDAR and RSSI.

The two-RSU testbed (``simulate.py``) has one sensor head, RSU 1's. Here RSU k (1-based) stands
at x = (k - 1) * ROAD_SPACING_M on the same side of the same road (frame 'road': origin at
RSU 1's pole, x along the road, y left, z up; lanes as in ``scene.py``). The receiver car
drives +x past them in the far lane; blockers of different sizes, speeds and lanes cross
*different* links at different times, so the best neighbour differs between events.

Every RSU has its own camera and LiDAR, mounted on its pole exactly as RSU 1's are in the
testbed. They are rendered by the testbed's renderers (``camera.render``, ``lidar.scan``)
with the scene expressed in RSU k's frame: every box is shifted by -x_k along the road, so
RSU k sits where RSU 1 sits in the testbed and the shipped single-RSU model sees what it was
trained on. The other RSUs' poles are static boxes in each view. Like RSU 1's, each camera
looks ahead (+x): an RSU sees the car once the car has passed it, not while it approaches.

Topics (types and QoS as ``bag_writer``): ``/rsuK/camera/image_raw`` (frame 'rsuK_camera'),
``/rsuK/lidar/points`` ('rsuK_lidar'), ``/rssi/rsuK`` (sensor_msgs/Temperature, dBm, frame
'rsuK', stamped at measurement time) for K = 1..N, and ``/tf_static`` ('road' -> 'rsuK' ->
its sensors).

Channel (``channel.py``, paper Eq. (5)): each link k has its own shadowing and noise streams;
the blockage loss of a link is the sum (dB) of the knife-edge losses of the blockers on it.
Timing as the testbed: a frame every 300 ms, per-sensor phase offsets and jitter (|jitter|
<= 40 ms), transport delays, 1.5 % of messages dropped, all from seeded streams.

Ground truth (``scenario_XX.truth.json``): per frame the true and measured RSSI of every link,
blockage losses, stamps and positions; ``link_blockage_intervals_ns[rsuK]`` are the runs of
frames whose true RSSI of link K is below S_th = -47 dBm (Eq. 8), per link.
"""
from __future__ import annotations

import json
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..constants import FRAME_PERIOD_NS, S_TH_DBM
from . import bag_writer as bw
from . import camera, channel, lidar
from .simulate import _r, blocked_runs, refuse_to_overwrite
from .scene import (CAR, KMH, RECEIVER_ANTENNA_HEIGHT_M, RSU_POLE_SIZE_M,
                    RSU_XYZ_M, VEHICLES, Track, VehicleSpec, jitter_track)

ROAD_SPACING_M = 30.0              # RSU k at x = (k - 1) * 30 m (the issue: every 30-40 m)
DEFAULT_ROAD_FRAMES = 60           # 18 s: the car passes RSU 2; bags stay ~ 80 MB per RSU
MIN_RSUS = 3
T0_NS = 1_717_300_000_000_000_000  # fixed epoch, apart from the testbed's
SCENARIO_SPACING_NS = 3_600 * 1_000_000_000
BASE_DROP_PROB = 0.015
ROAD_TRUTH_VERSION = 'road/1'
ROAD_FRAME = 'road'
POLE = VehicleSpec('pole', RSU_POLE_SIZE_M, RSU_POLE_SIZE_M, 4.2, (120, 120, 125))


def rsu_name(k: int) -> str:
    """'rsuK' for the 1-based index K."""
    return f'rsu{k}'


def road_topics(rsu: str) -> dict[str, str]:
    """The bag topics of one RSU: its camera, LiDAR and the RSSI of its link."""
    return {'image': f'/{rsu}/camera/image_raw', 'lidar': f'/{rsu}/lidar/points',
            'rssi': f'/rssi/{rsu}'}


def neighbour_ahead(k: int, n_rsus: int) -> int:
    """The neighbour whose RSSI RSU k's model reads second: the nearest RSU ahead (k + 1),
    as RSU 2 is ahead of RSU 1 in the testbed the model was trained on; the last RSU has
    none ahead and reads the nearest behind (N - 1)."""
    if not 1 <= k <= n_rsus:
        raise ValueError(f'RSU index {k} outside 1..{n_rsus}')
    return k + 1 if k < n_rsus else k - 1


def window_topic_map(k: int, n_rsus: int) -> dict[str, str]:
    """topic -> role for RSU k's node (``WindowStream``): its own sensors, its own link's
    RSSI first ('rssi/rsu1') and the neighbour ahead's second ('rssi/rsu2')."""
    own, nxt = road_topics(rsu_name(k)), road_topics(rsu_name(neighbour_ahead(k, n_rsus)))
    return {own['image']: 'image', own['lidar']: 'lidar', own['rssi']: 'rssi/rsu1',
            nxt['rssi']: 'rssi/rsu2'}


# --------------------------------------------------------------------------- scenarios
@dataclass(frozen=True)
class RoadKind:
    name: str
    story: str
    receiver: Track
    blockers: tuple[tuple[str, Track], ...]     # (vehicle kind of scene.VEHICLES, track)


def _kmh(v: float) -> float:
    return v * KMH


# The car drives +x in the far lane from just past RSU 1 at ~8.5 km/h (18 s: to x ~ 45 m).
# Crossing times below are for ROAD_SPACING_M = 30 and the default 60 frames; the tests check
# that at least two links are blocked at different times in the blocking kinds.
_CAR = Track('far', 3.0, _kmh(8.5))
ROAD_KINDS: tuple[RoadKind, ...] = (
    RoadKind('truck_overtakes_near',
             'box truck overtakes in the near lane: RSU 1 link at ~4-9 s, RSU 2 link at ~14 s',
             _CAR, (('box_truck', Track('near', -10.0, _kmh(9.8))),)),
    RoadKind('crawler_and_bus',
             'a delivery truck crawls at RSU 2 link (0-9 s) while a bus overtakes in the '
             'middle lane across RSU 1 link (~3-14 s): the nearest neighbour is blocked too',
             _CAR, (('box_truck', Track('near', 21.0, _kmh(1.0))),
                    ('bus', Track('mid', -10.0, _kmh(9.7))))),
    RoadKind('semi_oncoming_mid',
             'semi truck comes the other way in the middle lane: RSU 3, 2, 1 links in turn',
             _CAR, (('semi_truck', Track('mid', 60.0, -_kmh(9.0))),)),
    RoadKind('low_van_clear', 'low van overtakes in the near lane, under every link',
             _CAR, (('low_van', Track('near', -12.0, _kmh(9.5))),)),
    RoadKind('bus_oncoming_near',
             'bus comes the other way in the near lane: RSU 3 link, RSU 2 link, RSU 1 link',
             _CAR, (('bus', Track('near', 55.0, -_kmh(8.0))),)),
)


@dataclass(frozen=True)
class RoadScenario:
    """One concrete road scenario: a kind with seeded speeds and starts, and N RSUs."""

    index: int
    kind: RoadKind
    seed: int
    n_rsus: int
    receiver: Track
    blockers: tuple[tuple[VehicleSpec, Track], ...]
    spacing_m: float = ROAD_SPACING_M

    @property
    def rsus(self) -> list[str]:
        return [rsu_name(k) for k in range(1, self.n_rsus + 1)]

    def rsu_x_m(self, k: int) -> float:
        return (k - 1) * self.spacing_m

    def rsu_xyz_m(self, k: int) -> np.ndarray:
        """Antenna position of RSU k in 'road' (RSU 1's testbed antenna, shifted along x)."""
        return RSU_XYZ_M['rsu1'] + np.array([self.rsu_x_m(k), 0.0, 0.0])

    def receiver_antenna_xyz_m(self, t_s: np.ndarray) -> np.ndarray:
        xy = self.receiver.xy_at(t_s)
        return np.concatenate([xy, np.full(xy.shape[:-1] + (1,), RECEIVER_ANTENNA_HEIGHT_M)], -1)

    def boxes_at(self, t_s: float) -> list[tuple[np.ndarray, np.ndarray, VehicleSpec]]:
        """Boxes of the car and the blockers at t in 'road'."""
        out = []
        for spec, track in ((CAR, self.receiver), *self.blockers):
            x, y = track.xy_at(t_s)
            half = np.array([spec.length_m / 2, spec.width_m / 2])
            out.append((np.array([x - half[0], y - half[1], 0.0]),
                        np.array([x + half[0], y + half[1], spec.height_m]), spec))
        return out

    def boxes_for_rsu(self, k: int, t_s: float) -> list[tuple[np.ndarray, np.ndarray,
                                                              VehicleSpec]]:
        """The scene in RSU k's frame (RSU k where RSU 1 is in the testbed): vehicles and the
        other RSUs' poles, shifted by -x_k; RSU k's own pole is out of its sensors' view."""
        shift = np.array([self.rsu_x_m(k), 0.0, 0.0])
        h = RSU_POLE_SIZE_M / 2
        poles = [(np.array([self.rsu_x_m(j) - h, -h, 0.0]),
                  np.array([self.rsu_x_m(j) + h, h, POLE.height_m]), POLE)
                 for j in range(1, self.n_rsus + 1) if j != k]
        return [(lo - shift, hi - shift, spec) for lo, hi, spec in self.boxes_at(t_s) + poles]

    def describe(self) -> dict:
        return {'kind': self.kind.name, 'story': self.kind.story, 'seed': self.seed,
                'n_rsus': self.n_rsus, 'spacing_m': self.spacing_m,
                'receiver': asdict(self.receiver),
                'blockers': [{'vehicle': asdict(spec), 'track': asdict(track)}
                             for spec, track in self.blockers]}


def make_road_scenario(index: int, seed: int, n_rsus: int) -> RoadScenario:
    """Scenario ``index``: kind ``index % len(ROAD_KINDS)``, speeds x U(0.94, 1.06) (capped at
    10 km/h), starts +-0.6 m, as the testbed's ``scene.make_scenario``."""
    if n_rsus < MIN_RSUS:
        raise ValueError(f'a road needs at least {MIN_RSUS} RSUs, got {n_rsus} '
                         '(two RSUs: the testbed, mmtok simulate without --rsus)')
    kind = ROAD_KINDS[index % len(ROAD_KINDS)]
    rng = np.random.default_rng([seed, index, 0x20AD])

    def jitter(track: Track) -> Track:
        return jitter_track(track, rng)

    return RoadScenario(index, kind, seed, n_rsus, jitter(kind.receiver),
                        tuple((VEHICLES[v], jitter(tr)) for v, tr in kind.blockers))


# --------------------------------------------------------------------------- channel
def _rng(seed: int, index: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, index, zlib.crc32(stream.encode())])


def road_channel(sc: RoadScenario, t_s: np.ndarray, shadow_db: dict[str, np.ndarray]
                 ) -> dict[str, dict[str, np.ndarray]]:
    """True RSSI (dBm, Eq. (5) + shadowing) and blockage loss (dB) of every link at t_s."""
    t_s = np.asarray(t_s, float)
    rx = sc.receiver_antenna_xyz_m(t_s)
    out: dict[str, dict[str, np.ndarray]] = {'rssi': {}, 'loss': {}}
    for k, rsu in enumerate(sc.rsus, start=1):
        tx = sc.rsu_xyz_m(k)
        loss = np.zeros(len(t_s))
        for spec, track in sc.blockers:
            loss += channel.box_blockage_loss_db(tx, rx, track.xy_at(t_s), spec.length_m,
                                                 spec.height_m)
        out['loss'][rsu] = loss
        out['rssi'][rsu] = channel.mean_rssi_dbm(tx, rx, loss) + shadow_db[rsu]
    return out


# --------------------------------------------------------------------------- bags
class RoadBagWriter(bw.BagWriter):
    """The testbed's bag writer with every RSU's topics."""

    def __init__(self, path: str | Path, rsus: list[str]) -> None:
        topics = [(bw.TOPIC_TF_STATIC, 'tf2_msgs/msg/TFMessage', bw.STATIC_QOS)]
        for rsu in rsus:
            t = road_topics(rsu)
            topics += [(t['image'], 'sensor_msgs/msg/Image', bw.SENSOR_QOS),
                       (t['lidar'], 'sensor_msgs/msg/PointCloud2', bw.SENSOR_QOS),
                       (t['rssi'], 'sensor_msgs/msg/Temperature', bw.RELIABLE_QOS)]
        self.TOPICS = tuple(topics)
        super().__init__(path)


def _tf_static(stamp_ns: int, sc: RoadScenario):
    """'road' -> 'rsuK' (the pole foot) and 'rsuK' -> its camera and LiDAR."""
    m = bw.TYPESTORE.types
    out = []

    def tf(parent: str, child: str, trans_m: np.ndarray, rot: np.ndarray):
        qx, qy, qz, qw = bw.quaternion_from_matrix(rot)
        return m['geometry_msgs/msg/TransformStamped'](
            header=bw.header(stamp_ns, parent), child_frame_id=child,
            transform=m['geometry_msgs/msg/Transform'](
                translation=m['geometry_msgs/msg/Vector3'](
                    x=float(trans_m[0]), y=float(trans_m[1]), z=float(trans_m[2])),
                rotation=m['geometry_msgs/msg/Quaternion'](
                    x=float(qx), y=float(qy), z=float(qz), w=float(qw))))

    for k, rsu in enumerate(sc.rsus, start=1):
        out.append(tf(ROAD_FRAME, rsu, np.array([sc.rsu_x_m(k), 0.0, 0.0]), np.eye(3)))
        out.append(tf(rsu, f'{rsu}_camera', camera.CAMERA_XYZ_M, camera.R_WORLD_TO_CAM.T))
        out.append(tf(rsu, f'{rsu}_lidar', lidar.LIDAR_XYZ_M, np.eye(3)))
    return m['tf2_msgs/msg/TFMessage'](transforms=out)


def _timing(seed: int, index: int, keys: list[str], n: int) -> dict[str, np.ndarray]:
    """Stamp jitter and transport delay (integer ns) per sensor stream, as the testbed's:
    phase offset + per-message jitter (|jitter| <= 40 ms), delay clipped to 1 ... 10 ms."""
    ms = 1_000_000
    out = {}
    for key in keys:
        r = _rng(seed, index, 'timing_' + key)
        sensor = key.split('/')[1]
        if sensor == 'image':
            jit = r.uniform(-25, 25) + np.clip(r.normal(0, 5, n), -15, 15)
            delay = r.normal(6, 1.5, n)
        elif sensor == 'lidar':
            jit = r.uniform(-15, 15) + r.uniform(-5, 5, n)
            delay = r.normal(4, 1, n)
        else:
            jit = r.uniform(-20, 20) + r.uniform(-10, 10, n)
            delay = r.normal(2, 0.5, n)
        out[key] = np.round(jit * ms).astype(np.int64)
        out[key + '_delay'] = np.round(np.clip(delay, 1, 10) * ms).astype(np.int64)
    return out


@dataclass
class RoadScenarioInfo:
    index: int
    name: str
    kind: str
    n_rsus: int
    n_frames: int
    link_blocked_frames: dict[str, int]
    link_blockage_intervals_ns: dict[str, list[list[int]]]
    bag_path: str
    truth_path: str
    message_counts: dict[str, int]
    payload_sha256: str
    bag_bytes: int = 0

    def index_row(self) -> dict:
        row = {k: v for k, v in self.__dict__.items() if k != 'bag_bytes'}
        row['bag_path'] = Path(self.bag_path).name
        row['truth_path'] = Path(self.truth_path).name
        return row


def simulate_road_scenario(out_dir: Path, index: int, seed: int, n_rsus: int, n_frames: int,
                           progress: bool) -> RoadScenarioInfo:
    """Write ``scenario_XX/`` (bag) and ``scenario_XX.truth.json`` for one road scenario."""
    from tqdm import tqdm

    sc = make_road_scenario(index, seed, n_rsus)
    name = f'scenario_{index:02d}'
    bag_path, truth_path = out_dir / name, out_dir / f'{name}.truth.json'
    t0_ns = T0_NS + index * SCENARIO_SPACING_NS
    nominal_ns = t0_ns + FRAME_PERIOD_NS * np.arange(n_frames, dtype=np.int64)

    def rel_s(ns):
        return (np.asarray(ns, np.int64) - t0_ns) * 1e-9

    keys = [f'{rsu}/{s}' for rsu in sc.rsus for s in ('image', 'lidar', 'rssi')]
    timing = _timing(seed, index, keys, n_frames)
    drop_rng = _rng(seed, index, 'drops')
    drops = {key: drop_rng.random(n_frames) < BASE_DROP_PROB for key in keys}
    step_m = np.full(n_frames, abs(sc.receiver.speed_mps) * FRAME_PERIOD_NS * 1e-9)
    shadow = {rsu: channel.correlated_shadowing_db(_rng(seed, index, 'shadow_' + rsu), step_m)
              for rsu in sc.rsus}
    truth = road_channel(sc, rel_s(nominal_ns), shadow)
    measured = {}
    for rsu in sc.rsus:
        at_stamp = road_channel(sc, rel_s(nominal_ns + timing[f'{rsu}/rssi']), shadow)
        noise = _rng(seed, index, 'noise_' + rsu).normal(0, channel.NOISE_SIGMA_DB, n_frames)
        measured[rsu] = np.round(at_stamp['rssi'][rsu] + noise, 2)
    blocked = {rsu: truth['rssi'][rsu] < S_TH_DBM for rsu in sc.rsus}
    sensor_rng = {key: _rng(seed, index, 'sensor_' + key) for key in keys}
    variance_db2 = channel.NOISE_SIGMA_DB ** 2
    frames = []
    with RoadBagWriter(bag_path, sc.rsus) as bag:
        tf_ns = int(nominal_ns[0]) - 100_000_000
        bag.write(bw.TOPIC_TF_STATIC, _tf_static(tf_ns, sc), tf_ns + 1_000_000)
        for f in tqdm(range(n_frames), desc=name, leave=False, disable=not progress,
                      position=1):
            pending = []                          # (log_ns, order, topic, msg)
            stamps: dict[str, int | None] = {}
            for order, key in enumerate(keys):
                stamp = int(nominal_ns[f] + timing[key][f])
                stamps[key] = None if drops[key][f] else stamp
                if drops[key][f]:
                    continue
                log_ns = stamp + int(timing[key + '_delay'][f])
                rsu, sensor = key.split('/')
                k = int(rsu[3:])
                topic = road_topics(rsu)[sensor]
                if sensor == 'image':
                    img = camera.render(sc.boxes_for_rsu(k, float(rel_s(stamp))),
                                        sensor_rng[key])
                    msg = bw.image_msg(img, stamp)
                    msg.header = bw.header(stamp, f'{rsu}_camera')
                elif sensor == 'lidar':
                    pts = lidar.scan(sc.boxes_for_rsu(k, float(rel_s(stamp))), sensor_rng[key])
                    msg = bw.pointcloud_msg(pts, stamp)
                    msg.header = bw.header(stamp, f'{rsu}_lidar')
                else:
                    msg = bw.rssi_msg(measured[rsu][f], variance_db2, stamp, rsu)
                pending.append((log_ns, order, topic, msg))
            for log_ns, _, topic, msg in sorted(pending, key=lambda p: (p[0], p[1])):
                bag.write(topic, msg, log_ns)
            t_f = float(rel_s(nominal_ns[f]))
            frames.append({
                'k': f, 't_nominal_ns': int(nominal_ns[f]), 'stamp_ns': stamps,
                'true_rssi_dbm': {r: _r(truth['rssi'][r][f]) for r in sc.rsus},
                'measured_rssi_dbm': {r: (None if drops[f'{r}/rssi'][f]
                                          else _r(measured[r][f], 2)) for r in sc.rsus},
                'blockage_loss_db': {r: _r(truth['loss'][r][f]) for r in sc.rsus},
                'blocked': {r: bool(blocked[r][f]) for r in sc.rsus},
                'receiver_xyz_m': _r(sc.receiver_antenna_xyz_m(np.array(t_f))),
                'blockers_xy_m': [_r(track.xy_at(t_f)) for _, track in sc.blockers],
            })
        counts, digest = dict(bag.counts), bag.payload_sha256
    runs = {rsu: blocked_runs(blocked[rsu], nominal_ns) for rsu in sc.rsus}
    truth_doc = {
        'version': ROAD_TRUTH_VERSION, 'generator': 'mmtok_ros.sim.road', 'scenario': name,
        'index': index, **sc.describe(), 'rsus': sc.rsus,
        'frame_period_ns': FRAME_PERIOD_NS, 't0_ns': int(t0_ns), 'n_frames': n_frames,
        's_th_dbm': S_TH_DBM, 'rsu_xyz_m': {r: _r(sc.rsu_xyz_m(k))
                                            for k, r in enumerate(sc.rsus, start=1)},
        'topics': {r: road_topics(r) for r in sc.rsus},
        'window_topic_maps': {r: window_topic_map(k, n_rsus)
                              for k, r in enumerate(sc.rsus, start=1)},
        'rssi_noise_variance_db2': variance_db2,
        'link_blockage_intervals_ns': runs,
        'link_blocked_frames': {r: int(blocked[r].sum()) for r in sc.rsus},
        'frames': frames,
    }
    truth_path.write_text(json.dumps(truth_doc, sort_keys=True, indent=1) + '\n')
    bag_bytes = sum(p.stat().st_size for p in bag_path.rglob('*') if p.is_file())
    return RoadScenarioInfo(index, name, sc.kind.name, n_rsus, n_frames,
                            {r: int(blocked[r].sum()) for r in sc.rsus}, runs, str(bag_path),
                            str(truth_path), counts, digest, bag_bytes)


def simulate_road(out_dir: str | Path, *, n_rsus: int, n_scenarios: int = 4, seed: int = 0,
                  frames_per_scenario: int | None = None,
                  progress: bool = True) -> list[RoadScenarioInfo]:
    """Simulate ``n_scenarios`` road runs with ``n_rsus`` RSUs into ``out_dir`` (bags, truth
    sidecars, ``index.json``). Refuses to overwrite an existing scenario."""
    from tqdm import tqdm

    if n_rsus < MIN_RSUS:
        raise ValueError(f'--rsus must be >= {MIN_RSUS} for a road (got {n_rsus})')
    if n_scenarios < 1:
        raise ValueError('n_scenarios must be >= 1')
    n_frames = DEFAULT_ROAD_FRAMES if frames_per_scenario is None else int(frames_per_scenario)
    if n_frames < 1:
        raise ValueError('frames_per_scenario must be >= 1')
    out = refuse_to_overwrite(out_dir, n_scenarios)
    started = time.perf_counter()
    infos = [simulate_road_scenario(out, i, seed, n_rsus, n_frames, progress)
             for i in tqdm(range(n_scenarios), desc='road scenarios', disable=not progress,
                           position=0)]
    rsus = [rsu_name(k) for k in range(1, n_rsus + 1)]
    index_doc = {'generator': 'mmtok_ros.sim.road', 'truth_version': ROAD_TRUTH_VERSION,
                 'seed': seed, 'n_rsus': n_rsus, 'spacing_m': ROAD_SPACING_M,
                 'frame_period_ns': FRAME_PERIOD_NS, 'frames_per_scenario': n_frames,
                 'topics': {r: road_topics(r) for r in rsus} | {'tf_static': bw.TOPIC_TF_STATIC},
                 'window_topic_maps': {r: window_topic_map(k, n_rsus)
                                       for k, r in enumerate(rsus, start=1)},
                 'scenarios': [info.index_row() for info in infos]}
    (out / 'index.json').write_text(json.dumps(index_doc, sort_keys=True, indent=1) + '\n')
    if progress:
        print(f'simulated in {time.perf_counter() - started:.1f} s', flush=True)
    return infos


__all__ = ['DEFAULT_ROAD_FRAMES', 'ROAD_KINDS', 'ROAD_SPACING_M', 'RoadScenario',
           'RoadScenarioInfo', 'make_road_scenario', 'neighbour_ahead', 'road_channel',
           'road_topics', 'rsu_name', 'simulate_road', 'window_topic_map']
