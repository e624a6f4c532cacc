"""N road-side units along a road (N >= 3): bags with every RSU's camera, LiDAR and RSSI.

The road preset of ``layout.py`` (``road_layout(n)``) with kinds of its own: RSU k (1-based)
stands at x = (k - 1) * ROAD_SPACING_M on the same side of the testbed's road. The receiver car
drives +x past them in the far lane; blockers of different sizes, speeds and lanes cross
*different* links at different times, so the best neighbour differs between events.

Every RSU has its own camera and LiDAR, mounted on its pole exactly as RSU 1's are in the
testbed and rendered with the scene in RSU k's frame (``RoadLayout.seen_from``), so the shipped
single-RSU model sees what it was trained on. Like RSU 1's, each camera looks ahead (+x): an RSU
sees the car once the car has passed it, not while it approaches.

Topics (types and QoS as ``bag_writer``): ``/rsuK/camera/image_raw`` (frame 'rsuK_camera'),
``/rsuK/lidar/points`` ('rsuK_lidar'), ``/rssi/rsuK`` (sensor_msgs/Temperature, dBm, frame
'rsuK', stamped at measurement time) for K = 1..N, and ``/tf_static`` ('road' -> 'rsuK' ->
its sensors). Channel, timing and drops are the testbed's (``scenario_writer.py``,
``recording.py``).

Ground truth (``scenario_XX.truth.json``): there is no home RSU, so ``blocked`` is per link and
``link_blockage_intervals_ns[rsuK]`` are the runs of frames whose true RSSI of link K is below
S_th = -47 dBm (Eq. 8).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..constants import FRAME_PERIOD_NS
from ..errors import UserInputError
from . import bag_writer as bw
from .layout import ROAD_SPACING_M, RoadLayout, road_layout, road_topics, rsu_name
from .recording import rounded
from .scenario_writer import IndexRow, link_channel, write_json, write_scenario, write_scenarios
from .scene import VEHICLES, Track, Traffic, VehicleSpec, jitter_track, kmh

DEFAULT_ROAD_FRAMES = 60           # 18 s: the car passes RSU 2; bags stay ~ 80 MB per RSU
MIN_RSUS = 3
ROAD_TRUTH_VERSION = 'road/1'
GENERATOR = 'mmtok_ros.sim.road'


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


@dataclass(frozen=True)
class RoadKind:
    """A road scenario's story: the receiver's track and the blockers' (vehicle, track)."""
    name: str
    story: str
    receiver: Track
    blockers: tuple[tuple[str, Track], ...]     # (vehicle kind of scene.VEHICLES, track)


# The car drives +x in the far lane from just past RSU 1 at ~8.5 km/h (18 s: to x ~ 45 m).
# Crossing times below are for ROAD_SPACING_M = 30 and the default 60 frames; the tests check
# that at least two links are blocked at different times in the blocking kinds.
_CAR = Track('far', 3.0, kmh(8.5))
ROAD_KINDS: tuple[RoadKind, ...] = (
    RoadKind('truck_overtakes_near',
             'box truck overtakes in the near lane: RSU 1 link at ~4-9 s, RSU 2 link at ~14 s',
             _CAR, (('box_truck', Track('near', -10.0, kmh(9.8))),)),
    RoadKind('crawler_and_bus',
             'a delivery truck crawls at RSU 2 link (0-9 s) while a bus overtakes in the '
             'middle lane across RSU 1 link (~3-14 s): the nearest neighbour is blocked too',
             _CAR, (('box_truck', Track('near', 21.0, kmh(1.0))),
                    ('bus', Track('mid', -10.0, kmh(9.7))))),
    RoadKind('semi_oncoming_mid',
             'semi truck comes the other way in the middle lane: RSU 3, 2, 1 links in turn',
             _CAR, (('semi_truck', Track('mid', 60.0, -kmh(9.0))),)),
    RoadKind('low_van_clear', 'low van overtakes in the near lane, under every link',
             _CAR, (('low_van', Track('near', -12.0, kmh(9.5))),)),
    RoadKind('bus_oncoming_near',
             'bus comes the other way in the near lane: RSU 3 link, RSU 2 link, RSU 1 link',
             _CAR, (('bus', Track('near', 55.0, -kmh(8.0))),)),
)


@dataclass(frozen=True)
class RoadScenario(Traffic):
    """One concrete road scenario: a kind with seeded speeds and starts, and N RSUs."""
    index: int
    kind: RoadKind
    seed: int
    n_rsus: int
    spacing_m: float = ROAD_SPACING_M

    @property
    def layout(self) -> RoadLayout:
        return road_layout(self.n_rsus, self.spacing_m)

    @property
    def rsus(self) -> list[str]:
        return [rsu_name(k) for k in range(1, self.n_rsus + 1)]

    def boxes_for_rsu(self, k: int, t_s: float) -> list[tuple[np.ndarray, np.ndarray,
                                                              VehicleSpec]]:
        """The scene in RSU k's frame (RSU k where RSU 1 is in the testbed): vehicles and the
        other RSUs' poles, shifted by -x_k; RSU k's own pole is out of its sensors' view."""
        return self.layout.seen_from(rsu_name(k), self.boxes_at(t_s))

    def describe(self) -> dict:
        return {'kind': self.kind.name, 'story': self.kind.story, 'seed': self.seed,
                'n_rsus': self.n_rsus, 'spacing_m': self.spacing_m,
                'receiver': asdict(self.receiver),
                'blockers': [{'vehicle': asdict(spec), 'track': asdict(track)}
                             for track, spec in self.blockers]}

    def blocker_positions(self, t_s: float) -> dict:
        """The sidecar's per-frame blocker positions (metres, rounded)."""
        return {'blockers_xy_m': [rounded(track.xy_at(t_s)) for track, _ in self.blockers]}


def make_road_scenario(index: int, seed: int, n_rsus: int) -> RoadScenario:
    """Scenario ``index``: kind ``index % len(ROAD_KINDS)``, speeds x U(0.94, 1.06) (capped at
    10 km/h), starts +-0.6 m, as the testbed's ``scene.make_scenario``."""
    if n_rsus < MIN_RSUS:
        raise UserInputError(f'a road needs at least {MIN_RSUS} RSUs, got {n_rsus} '
                         '(two RSUs: the testbed, mmtok simulate without --rsus)')
    kind = ROAD_KINDS[index % len(ROAD_KINDS)]
    rng = np.random.default_rng([seed, index, 0x20AD])
    receiver = jitter_track(kind.receiver, rng)
    blockers = tuple((jitter_track(track, rng), VEHICLES[v]) for v, track in kind.blockers)
    return RoadScenario(receiver, blockers, index=index, kind=kind, seed=seed, n_rsus=n_rsus)


def road_channel(sc: RoadScenario, t_s: np.ndarray, shadow_db: dict[str, np.ndarray]
                 ) -> dict[str, dict[str, np.ndarray]]:
    """True RSSI (dBm, Eq. (5) + shadowing) and blockage loss (dB) of every link at t_s."""
    return link_channel(sc.layout, sc, t_s, shadow_db)


@dataclass
class RoadScenarioInfo(IndexRow):
    """What was written for one road scenario (also the rows of ``index.json``)."""
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


def _road_fields(n_rsus: int) -> dict:
    """RSU names, topics and every RSU's window topic map: in the index and every sidecar."""
    rsus = [rsu_name(k) for k in range(1, n_rsus + 1)]
    return {'topics': {r: road_topics(r) for r in rsus},
            'window_topic_maps': {r: window_topic_map(k, n_rsus)
                                  for k, r in enumerate(rsus, start=1)}}


def simulate_road_scenario(out_dir: Path, index: int, seed: int, n_rsus: int, n_frames: int,
                           progress: bool) -> RoadScenarioInfo:
    """Write ``scenario_XX/`` (bag) and ``scenario_XX.truth.json`` for one road scenario."""
    sc = make_road_scenario(index, seed, n_rsus)
    rec = write_scenario(out_dir, sc.layout, sc, seed, n_frames, progress=progress,
                         truth_fields={'version': ROAD_TRUTH_VERSION, 'generator': GENERATOR,
                                       'rsus': sc.rsus, **_road_fields(n_rsus)})
    return RoadScenarioInfo(index, rec.name, sc.kind.name, n_rsus, n_frames, rec.blocked_frames,
                            rec.blockage_intervals_ns, str(rec.bag_path), str(rec.truth_path),
                            rec.message_counts, rec.payload_sha256, rec.bag_bytes)


def simulate_road(out_dir: str | Path, *, n_rsus: int, n_scenarios: int = 4, seed: int = 0,
                  frames_per_scenario: int | None = None,
                  progress: bool = True) -> list[RoadScenarioInfo]:
    """Simulate ``n_scenarios`` road runs with ``n_rsus`` RSUs into ``out_dir`` (bags, truth
    sidecars, ``index.json``). Refuses to overwrite an existing scenario."""
    if n_rsus < MIN_RSUS:
        raise UserInputError(f'--rsus must be >= {MIN_RSUS} for a road (got {n_rsus})')
    started = time.perf_counter()
    out, n_frames, infos = write_scenarios(
        out_dir, n_scenarios, frames_per_scenario, DEFAULT_ROAD_FRAMES,
        lambda out, i, n: simulate_road_scenario(out, i, seed, n_rsus, n, progress),
        desc='road scenarios', progress=progress)
    fields = _road_fields(n_rsus)
    index_doc = {'generator': GENERATOR, 'truth_version': ROAD_TRUTH_VERSION,
                 'seed': seed, 'n_rsus': n_rsus, 'spacing_m': ROAD_SPACING_M,
                 'frame_period_ns': FRAME_PERIOD_NS, 'frames_per_scenario': n_frames,
                 **fields, 'topics': fields['topics'] | {'tf_static': bw.TOPIC_TF_STATIC},
                 'scenarios': [info.index_row() for info in infos]}
    write_json(out / 'index.json', index_doc)
    if progress:
        print(f'simulated in {time.perf_counter() - started:.1f} s', flush=True)
    return infos


__all__ = ['DEFAULT_ROAD_FRAMES', 'MIN_RSUS', 'ROAD_KINDS', 'ROAD_SPACING_M', 'RoadKind',
           'RoadScenario', 'RoadScenarioInfo', 'make_road_scenario', 'neighbour_ahead',
           'road_channel', 'road_topics', 'rsu_name', 'simulate_road', 'window_topic_map']
