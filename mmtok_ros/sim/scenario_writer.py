"""The one scenario writer: a scenario on a road layout -> a rosbag2 bag + its truth sidecar.

Used for the two-RSU testbed and for N RSUs along a road alike (``layout.py``): the layout says
where the RSUs stand, which carry a camera and LiDAR and what their streams are called; the
scenario says how the receiver car and the blockers move. For each frame every stream's message
is stamped, possibly dropped, rendered at its own stamp (a late camera frame shows the vehicles
later) and logged a transport delay later (``recording.py``).

Channel (``channel.py``, paper Eq. (5)): each link has its own shadowing and noise streams; the
blockage loss of a link is the sum (dB) of the knife-edge losses of the blockers on it. A link is
blocked in a frame when its true (noise-free) RSSI at the nominal time is below S_th (Eq. (8)).

Ground truth (``scenario_XX.truth.json``): per frame the nominal time, every stream's stamp
(None if dropped), the true and measured RSSI (None if dropped) and the blockage loss of every
link, the receiver's and the blockers' positions. With a home RSU (the testbed) ``blocked`` and
``blockage_intervals_ns`` are its link's; without one they are per link (``link_*``).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..constants import FRAME_PERIOD_NS, NS_PER_MS, S_TH_DBM
from ..errors import UserInputError
from . import bag_writer as bw
from . import camera, channel, lidar
from .layout import RoadLayout
from .recording import (SCENARIO_SPACING_NS, blocked_runs, message_drops, refuse_to_overwrite,
                        rounded, seeded_rng, stamp_timing)


def link_channel(layout: RoadLayout, sc, t_s: np.ndarray, shadow_db: dict[str, np.ndarray]
                 ) -> dict[str, dict[str, np.ndarray]]:
    """True RSSI (dBm, Eq. (5) + shadowing) and blockage loss (dB) of every link at t_s."""
    t_s = np.asarray(t_s, float)
    rx = sc.receiver_antenna_xyz_m(t_s)
    out: dict[str, dict[str, np.ndarray]] = {'rssi': {}, 'loss': {}}
    for rsu in layout.rsus:
        tx = layout.rsu_xyz_m(rsu)
        loss = np.zeros(t_s.shape)
        for track, spec in sc.blockers:
            loss = loss + channel.box_blockage_loss_db(tx, rx, track.xy_at(t_s), spec.length_m,
                                                       spec.height_m, cab=spec.cab_profile())
        out['loss'][rsu] = loss
        out['rssi'][rsu] = channel.mean_rssi_dbm(tx, rx, loss) + shadow_db[rsu]
    return out


def link_shadowing(layout: RoadLayout, sc, seed: int, n: int) -> dict[str, np.ndarray]:
    """xi of Eq. (5) per link, correlated over the receiver's displacement between frames."""
    step_m = np.full(n, abs(sc.receiver.speed_mps) * FRAME_PERIOD_NS * 1e-9)
    return {rsu: channel.correlated_shadowing_db(seeded_rng(seed, sc.index, 'shadow_' + rsu),
                                                 step_m)
            for rsu in layout.rsus}


@dataclass
class Recording:
    """What ``write_scenario`` wrote: paths, per-link blockage and the bag's digest."""
    name: str
    bag_path: Path
    truth_path: Path
    t0_ns: int
    blocked_frames: dict[str, int]                 # per link
    blockage_intervals_ns: dict[str, list[list[int]]]
    message_counts: dict[str, int]
    payload_sha256: str
    bag_bytes: int
    timing_ms: dict[str, float] = field(default_factory=dict)


class _Sensors:
    """Renders the camera and LiDAR messages of the layout's sensor heads, timing the work."""

    def __init__(self, layout: RoadLayout, sc, seed: int):
        self.layout, self.sc = layout, sc
        self.rng = {s.key: seeded_rng(seed, sc.index, s.render_stream)
                    for s in layout.streams if s.render_stream}
        self.seconds = {'image': 0.0, 'lidar': 0.0}
        self.count = {'image': 0, 'lidar': 0}

    def message(self, stream, t_s: float, stamp: int):
        tic = time.perf_counter()
        boxes = self.layout.seen_from(stream.rsu, self.sc.boxes_at(t_s))
        if stream.sensor == 'image':
            msg = bw.image_msg(camera.render(boxes, self.rng[stream.key], self.sc.photometric),
                               stamp, stream.frame_id)
        else:
            msg = bw.pointcloud_msg(lidar.scan(boxes, self.rng[stream.key]), stamp,
                                    stream.frame_id)
        self.seconds[stream.sensor] += time.perf_counter() - tic
        self.count[stream.sensor] += 1
        return msg

    def ms_per_frame(self) -> dict[str, float]:
        return {'render_ms_per_frame': 1e3 * self.seconds['image'] / max(self.count['image'], 1),
                'raycast_ms_per_frame': 1e3 * self.seconds['lidar'] / max(self.count['lidar'], 1)}


def write_scenario(out_dir: Path, layout: RoadLayout, sc, seed: int, n_frames: int, *,
                   drop: tuple[str, float] | None = None,
                   truth_fields: dict | None = None, progress: bool = False) -> Recording:
    """Write ``scenario_XX/`` (bag) and ``scenario_XX.truth.json`` of scenario ``sc``.

    ``drop``: extra drops (sensor, probability); ``truth_fields`` are added to the sidecar's
    top level. The layout's home RSU, if any, is the link ``blocked`` and
    ``blockage_intervals_ns`` describe; without one they are per link (``link_*``).
    """
    from tqdm import tqdm

    index, home_rsu = sc.index, layout.home_rsu
    name = f'scenario_{index:02d}'
    bag_path, truth_path = out_dir / name, out_dir / f'{name}.truth.json'
    t0_ns = layout.t0_ns + index * SCENARIO_SPACING_NS
    nominal_ns = t0_ns + FRAME_PERIOD_NS * np.arange(n_frames, dtype=np.int64)

    def rel_s(ns):
        return (np.asarray(ns, np.int64) - t0_ns) * 1e-9

    streams = layout.streams
    timing = stamp_timing(seed, index, streams, n_frames)
    drops = message_drops(seed, index, streams, n_frames, drop)
    shadow = link_shadowing(layout, sc, seed, n_frames)
    truth = link_channel(layout, sc, rel_s(nominal_ns), shadow)
    rssi_key = {rsu: layout.rssi_stream(rsu).key for rsu in layout.rsus}
    measured = {}
    for rsu in layout.rsus:
        noise = seeded_rng(seed, index, 'noise_' + rsu).normal(0, channel.NOISE_SIGMA_DB, n_frames)
        at_stamp = link_channel(layout, sc, rel_s(nominal_ns + timing[rssi_key[rsu]]), shadow)
        measured[rsu] = np.round(at_stamp['rssi'][rsu] + noise, 2)
    blocked = {rsu: truth['rssi'][rsu] < S_TH_DBM for rsu in layout.rsus}
    sensors = _Sensors(layout, sc, seed)
    variance_db2 = channel.NOISE_SIGMA_DB ** 2
    frames = []
    with bw.BagWriter(bag_path, layout.bag_topics()) as bag:
        tf_ns = int(nominal_ns[0]) - 100 * NS_PER_MS
        bag.write(bw.TOPIC_TF_STATIC, bw.tf_static_msg(tf_ns, layout.transforms()),
                  tf_ns + NS_PER_MS)
        for k in tqdm(range(n_frames), desc=name, leave=False, disable=not progress, position=1):
            pending = []                          # (log_ns, order, topic, msg) of this frame
            stamps: dict[str, int | None] = {}
            for order, s in enumerate(streams):
                stamp = int(nominal_ns[k] + timing[s.key][k])
                stamps[s.key] = None if drops[s.key][k] else stamp
                if drops[s.key][k]:
                    continue
                log_ns = stamp + int(timing[s.key + '_delay'][k])
                if s.sensor == 'rssi':
                    msg = bw.rssi_msg(measured[s.rsu][k], variance_db2, stamp, s.rsu)
                else:
                    msg = sensors.message(s, float(rel_s(stamp)), stamp)
                pending.append((log_ns, order, s.topic, msg))
            for log_ns, _, topic, msg in sorted(pending, key=lambda p: (p[0], p[1])):
                bag.write(topic, msg, log_ns)
            t_k = float(rel_s(nominal_ns[k]))
            frames.append({
                'k': k, 't_nominal_ns': int(nominal_ns[k]), 'stamp_ns': stamps,
                'true_rssi_dbm': {r: rounded(truth['rssi'][r][k]) for r in layout.rsus},
                'measured_rssi_dbm': {r: (None if drops[rssi_key[r]][k]
                                          else rounded(measured[r][k], 2)) for r in layout.rsus},
                'blockage_loss_db': {r: rounded(truth['loss'][r][k]) for r in layout.rsus},
                'blocked': (bool(blocked[home_rsu][k]) if home_rsu else
                            {r: bool(blocked[r][k]) for r in layout.rsus}),
                'receiver_xyz_m': rounded(sc.receiver_antenna_xyz_m(np.array(t_k))),
                **sc.blocker_positions(t_k),
            })
        counts, digest = dict(bag.counts), bag.payload_sha256
    runs = {rsu: blocked_runs(blocked[rsu], nominal_ns) for rsu in layout.rsus}
    n_blocked = {rsu: int(blocked[rsu].sum()) for rsu in layout.rsus}
    blockage = ({'blockage_intervals_ns': runs[home_rsu], 'n_blocked_frames': n_blocked[home_rsu]}
                if home_rsu else
                {'link_blockage_intervals_ns': runs, 'link_blocked_frames': n_blocked})
    truth_doc = {
        'scenario': name, 'index': index, **sc.describe(), **(truth_fields or {}),
        'frame_period_ns': FRAME_PERIOD_NS, 't0_ns': int(t0_ns), 'n_frames': n_frames,
        's_th_dbm': S_TH_DBM, 'rsu_xyz_m': {r: rounded(layout.rsu_xyz_m(r)) for r in layout.rsus},
        'rssi_noise_variance_db2': variance_db2, **blockage, 'frames': frames,
    }
    write_json(truth_path, truth_doc)
    bag_bytes = sum(p.stat().st_size for p in bag_path.rglob('*') if p.is_file())
    return Recording(name, bag_path, truth_path, int(t0_ns), n_blocked, runs, counts, digest,
                     bag_bytes, sensors.ms_per_frame())


def write_json(path: Path, doc: dict) -> None:
    """A sidecar or index: sorted keys, one-space indent, newline-terminated (stable bytes)."""
    path.write_text(json.dumps(doc, sort_keys=True, indent=1) + '\n')


class IndexRow:
    """What was written for one scenario; ``index_row`` is its row of ``index.json``."""
    OMIT_IF_NONE = ('drawn',)    # optional fields: absent from the row (not null) when None

    def index_row(self) -> dict:
        """The fields without the bag's size and the render timings, file names only."""
        row = {k: v for k, v in self.__dict__.items() if k not in ('timing_ms', 'bag_bytes')
               and not (k in self.OMIT_IF_NONE and v is None)}
        row['bag_path'] = Path(self.bag_path).name
        row['truth_path'] = Path(self.truth_path).name
        return row


def write_scenarios(out_dir: str | Path, n_scenarios: int, frames_per_scenario: int | None,
                    default_frames: int, write_one, *, desc: str, progress: bool
                    ) -> tuple[Path, int, list]:
    """(out, n_frames, infos): ``write_one(out, i, n_frames)`` for every scenario i, after
    checking the counts and that no scenario bag or sidecar would be overwritten."""
    from tqdm import tqdm

    if n_scenarios < 1:
        raise UserInputError('n_scenarios must be >= 1')
    n_frames = default_frames if frames_per_scenario is None else int(frames_per_scenario)
    if n_frames < 1:
        raise UserInputError('frames_per_scenario must be >= 1')
    out = refuse_to_overwrite(out_dir, n_scenarios)
    infos = [write_one(out, i, n_frames)
             for i in tqdm(range(n_scenarios), desc=desc, disable=not progress, position=0)]
    return out, n_frames, infos
