"""Orchestration: scenarios -> sensor streams with testbed timing -> bags + ground truth.

Timing model (paper Sec. IV-B: a frame every 300 ms, modalities synchronised within ~50 ms):
frame k has nominal time t0 + k * 300 ms. Each sensor message's header stamp is the nominal time
plus that sensor's own jitter: a per-scenario phase offset (camera U(-25, 25) ms, LiDAR
U(-15, 15) ms, each RSSI link U(-20, 20) ms) plus per-message jitter (camera normal sigma 5 ms
clipped to +-15 ms, LiDAR U(-5, 5) ms, RSSI U(-10, 10) ms), so |jitter| <= 40 ms; the message is
logged a transport delay later (camera 6 +- 1.5 ms, LiDAR 4 +- 1 ms, RSSI 2 +- 0.5 ms, clipped
to 1 ... 10 ms). The scene is evaluated
at each message's own stamp, so a late camera frame really shows the vehicles later. Each
sensor message is dropped with probability 1.5 % (seeded); ``drop_modality`` adds more drops
to one modality ('image', 'lidar' or 'rssi') for robustness tests.

Determinism: every random quantity comes from ``np.random.default_rng([seed, scenario, stream])``
with one stream per purpose, so the same seed gives byte-identical sidecars and identical
message payloads, and extra drops in one modality do not change any other data.

Ground truth (``scenario_XX.truth.json``): per frame the nominal time, the true (noise-free:
path loss + elevation pattern + diffraction + shadowing) RSSI of both RSUs at the nominal
time, the measured RSSI (None if that report was dropped), stamps, receiver and blocker
positions. A frame is blocked when true RSSI of RSU 1 < S_th = -47 dBm (paper Eq. (8));
``blockage_intervals_ns`` are [first, last] nominal times (inclusive) of each blocked run.
"""
from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..constants import FRAME_PERIOD_NS, S_TH_DBM
from . import bag_writer as bw
from . import camera, channel, lidar
from .scene import KIND_SETS, RSU_XYZ_M, SCENARIO_KINDS, Scenario, make_scenario, static_boxes

DEFAULT_FRAMES = 85                      # 10 x 85 frames ~ 800 five-frame windows (Sec. IV-B)
T0_NS = 1_717_200_000_000_000_000        # fixed epoch (2024-06-01) so bags are reproducible
SCENARIO_SPACING_NS = 3_600 * 1_000_000_000
BASE_DROP_PROB = 0.015
MODALITIES = ('image', 'lidar', 'rssi')
TRUTH_VERSION = 1


@dataclass
class ScenarioInfo:
    """What was written for one scenario (also the rows of ``index.json``)."""
    index: int
    name: str
    kind: str
    blocks_by_design: bool
    n_frames: int
    n_blocked_frames: int
    first_blockage_ns: int | None
    first_blockage_s: float | None       # relative to the first frame
    blockage_intervals_ns: list[list[int]]
    bag_path: str
    truth_path: str
    message_counts: dict[str, int]
    payload_sha256: str
    bag_bytes: int = 0
    timing_ms: dict[str, float] = field(default_factory=dict)   # not in index.json

    def index_row(self) -> dict:
        row = {k: v for k, v in self.__dict__.items() if k not in ('timing_ms', 'bag_bytes')}
        row['bag_path'] = Path(self.bag_path).name
        row['truth_path'] = Path(self.truth_path).name
        return row


def parse_drop_modality(spec: str | tuple[str, float] | None) -> tuple[str, float] | None:
    """'image:0.2' or ('image', 0.2) -> ('image', 0.2); bare 'lidar' means probability 0.2."""
    if spec is None or spec == '':
        return None
    if isinstance(spec, str):
        name, _, prob = spec.partition(':')
        spec = (name, float(prob) if prob else 0.2)
    name, prob = spec[0].strip(), float(spec[1])
    if name not in MODALITIES:
        raise ValueError(f'drop modality must be one of {MODALITIES}, not {name!r}')
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f'drop probability must be in [0, 1], not {prob}')
    return name, prob


def _rng(seed: int, index: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, index, zlib.crc32(stream.encode())])


def _jitter_ns(seed: int, index: int, n: int) -> dict[str, np.ndarray]:
    """Stamp jitter and transport delay per sensor, integer ns, |jitter| <= 50 ms.

    Jitter = a per-scenario phase offset (sensors are not triggered together) + a small
    per-message jitter, so periods stay ~300 ms while modalities disagree by tens of ms.
    """
    r = _rng(seed, index, 'jitter')
    ms = 1_000_000
    offset = {'image': r.uniform(-25, 25), 'lidar': r.uniform(-15, 15),
              'rsu1': r.uniform(-20, 20), 'rsu2': r.uniform(-20, 20)}
    jit = {'image': np.clip(r.normal(0, 5, n), -15, 15), 'lidar': r.uniform(-5, 5, n),
           'rsu1': r.uniform(-10, 10, n), 'rsu2': r.uniform(-10, 10, n)}
    delay = {'image': r.normal(6, 1.5, n), 'lidar': r.normal(4, 1, n),
             'rsu1': r.normal(2, 0.5, n), 'rsu2': r.normal(2, 0.5, n)}
    out = {}
    for k in jit:
        out[k] = np.round((offset[k] + jit[k]) * ms).astype(np.int64)
        out[k + '_delay'] = np.round(np.clip(delay[k], 1, 10) * ms).astype(np.int64)
    return out


def _drops(seed: int, index: int, n: int, drop: tuple[str, float] | None) -> dict[str, np.ndarray]:
    r = _rng(seed, index, 'drops')
    out = {k: r.random(n) < BASE_DROP_PROB for k in ('image', 'lidar', 'rsu1', 'rsu2')}
    if drop is not None:
        r_extra = _rng(seed, index, 'xdrops')
        for k in (('rsu1', 'rsu2') if drop[0] == 'rssi' else (drop[0],)):
            out[k] |= r_extra.random(n) < drop[1]
    return out


def channel_truth(sc: Scenario, t_s: np.ndarray, shadow_db: dict[str, np.ndarray]
                  ) -> dict[str, dict[str, np.ndarray]]:
    """True RSSI (dBm) and blockage loss (dB) of both links at times t_s (vectorised)."""
    rx = sc.receiver_antenna_xyz_m(t_s)
    blk_xy = sc.blocker.xy_at(t_s)
    out: dict[str, dict[str, np.ndarray]] = {'rssi': {}, 'loss': {}}
    for rsu, tx in RSU_XYZ_M.items():
        loss = channel.box_blockage_loss_db(tx, rx, blk_xy, sc.blocker_vehicle.length_m,
                                            sc.blocker_vehicle.height_m)
        for track, spec in sc.extra_blockers:   # several screens: their losses (dB) add
            loss = loss + channel.box_blockage_loss_db(tx, rx, track.xy_at(t_s), spec.length_m,
                                                       spec.height_m)
        out['loss'][rsu] = loss
        out['rssi'][rsu] = channel.mean_rssi_dbm(tx, rx, loss) + shadow_db[rsu]   # Eq. (5)
    return out


def shadowing(sc: Scenario, seed: int, n: int) -> dict[str, np.ndarray]:
    """xi of Eq. (5) per link, correlated over the receiver's displacement between frames."""
    step_m = np.full(n, abs(sc.receiver.speed_mps) * FRAME_PERIOD_NS * 1e-9)
    return {rsu: channel.correlated_shadowing_db(_rng(seed, sc.index, 'shadow_' + rsu), step_m)
            for rsu in RSU_XYZ_M}


def blocked_runs(blocked: np.ndarray, t_ns: np.ndarray) -> list[list[int]]:
    """[[first_ns, last_ns], ...] of the runs of consecutive blocked frames."""
    runs, start = [], None
    for k, b in enumerate(blocked):
        if b and start is None:
            start = k
        if start is not None and (not b or k == len(blocked) - 1):
            end = k if b else k - 1
            runs.append([int(t_ns[start]), int(t_ns[end])])
            start = None
    return runs


def _r(x, nd: int = 3):
    """Round for the JSON sidecar (fixed digits: byte-identical across runs and platforms)."""
    if x is None:
        return None
    return [round(float(v), nd) for v in x] if np.ndim(x) else round(float(x), nd)


def refuse_to_overwrite(out_dir: str | Path, n_scenarios: int) -> Path:
    """``out_dir``, created, after checking no scenario bag or sidecar would be overwritten."""
    out = Path(out_dir)
    for i in range(n_scenarios):
        for p in (out / f'scenario_{i:02d}', out / f'scenario_{i:02d}.truth.json'):
            if p.exists():
                raise FileExistsError(f'{p} exists already; refusing to overwrite '
                                      '(choose another output directory or delete it)')
    out.mkdir(parents=True, exist_ok=True)
    return out


def _tf_transforms() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {bw.FRAME_CAMERA: (camera.CAMERA_XYZ_M, camera.R_WORLD_TO_CAM.T),
            bw.FRAME_LIDAR: (lidar.LIDAR_XYZ_M, np.eye(3))}


def simulate_scenario(out_dir: Path, index: int, seed: int, n_frames: int,
                      drop: tuple[str, float] | None, progress: bool,
                      kinds: tuple = SCENARIO_KINDS) -> ScenarioInfo:
    """Write ``scenario_XX/`` (bag) and ``scenario_XX.truth.json`` for one scenario."""
    from tqdm import tqdm

    sc = make_scenario(index, seed, kinds)
    name = f'scenario_{index:02d}'
    bag_path, truth_path = out_dir / name, out_dir / f'{name}.truth.json'
    t0_ns = T0_NS + index * SCENARIO_SPACING_NS
    nominal_ns = t0_ns + FRAME_PERIOD_NS * np.arange(n_frames, dtype=np.int64)
    rel_s = lambda ns: (np.asarray(ns, np.int64) - t0_ns) * 1e-9   # noqa: E731
    jit = _jitter_ns(seed, index, n_frames)
    drops = _drops(seed, index, n_frames, drop)
    xi = shadowing(sc, seed, n_frames)
    truth = channel_truth(sc, rel_s(nominal_ns), xi)
    noise_db = {rsu: _rng(seed, index, 'noise_' + rsu).normal(0, channel.NOISE_SIGMA_DB, n_frames)
                for rsu in RSU_XYZ_M}
    measured = {}
    for rsu in RSU_XYZ_M:
        at_stamp = channel_truth(sc, rel_s(nominal_ns + jit[rsu]), xi)['rssi'][rsu]
        measured[rsu] = np.round(at_stamp + noise_db[rsu], 2)
    blocked = truth['rssi']['rsu1'] < S_TH_DBM
    cam_rng, lidar_rng = _rng(seed, index, 'camera'), _rng(seed, index, 'lidar')
    statics = static_boxes()
    variance_db2 = channel.NOISE_SIGMA_DB ** 2
    t_render = t_cast = 0.0
    n_render = n_cast = 0
    frames = []
    with bw.BagWriter(bag_path) as bag:
        tf_ns = int(nominal_ns[0]) - 100_000_000
        bag.write(bw.TOPIC_TF_STATIC, bw.tf_static_msg(tf_ns, _tf_transforms()), tf_ns + 1_000_000)
        for k in tqdm(range(n_frames), desc=name, leave=False, disable=not progress, position=1):
            pending = []                        # (log_ns, order, topic, msg) of this frame
            stamps: dict[str, int | None] = {}
            for key in ('image', 'lidar', 'rsu1', 'rsu2'):
                stamp = int(nominal_ns[k] + jit[key][k])
                stamps[key] = None if drops[key][k] else stamp
                if drops[key][k]:
                    continue
                log_ns = stamp + int(jit[key + '_delay'][k])
                if key == 'image':
                    tic = time.perf_counter()
                    img = camera.render(sc.boxes_at(float(rel_s(stamp))) + statics, cam_rng)
                    t_render += time.perf_counter() - tic
                    n_render += 1
                    pending.append((log_ns, 0, bw.TOPIC_IMAGE, bw.image_msg(img, stamp)))
                elif key == 'lidar':
                    tic = time.perf_counter()
                    pts = lidar.scan(sc.boxes_at(float(rel_s(stamp))) + statics, lidar_rng)
                    t_cast += time.perf_counter() - tic
                    n_cast += 1
                    pending.append((log_ns, 1, bw.TOPIC_LIDAR, bw.pointcloud_msg(pts, stamp)))
                else:
                    msg = bw.rssi_msg(measured[key][k], variance_db2, stamp, key)
                    pending.append((log_ns, 2, bw.TOPIC_RSSI[key], msg))
            for log_ns, _, topic, msg in sorted(pending, key=lambda p: (p[0], p[1])):
                bag.write(topic, msg, log_ns)
            t_k = float(rel_s(nominal_ns[k]))
            frames.append({
                'k': k, 't_nominal_ns': int(nominal_ns[k]),
                'stamp_ns': stamps,
                'true_rssi_dbm': {r: _r(truth['rssi'][r][k]) for r in RSU_XYZ_M},
                'measured_rssi_dbm': {r: (None if drops[r][k] else _r(measured[r][k], 2))
                                      for r in RSU_XYZ_M},
                'blockage_loss_db': {r: _r(truth['loss'][r][k]) for r in RSU_XYZ_M},
                'blocked': bool(blocked[k]),
                'receiver_xyz_m': _r(sc.receiver_antenna_xyz_m(np.array(t_k))),
                'blocker_xy_m': _r(sc.blocker.xy_at(t_k)),
                **({'extra_blockers_xy_m': [_r(t.xy_at(t_k)) for t, _ in sc.extra_blockers]}
                   if sc.extra_blockers else {}),
            })
        counts, digest = dict(bag.counts), bag.payload_sha256
    runs = blocked_runs(blocked, nominal_ns)
    first = runs[0][0] if runs else None
    truth_doc = {
        'version': TRUTH_VERSION, 'scenario': name, 'index': index, **sc.describe(),
        'frame_period_ns': FRAME_PERIOD_NS, 't0_ns': int(t0_ns), 'n_frames': n_frames,
        's_th_dbm': S_TH_DBM, 'rsu_xyz_m': {r: _r(v) for r, v in RSU_XYZ_M.items()},
        'drop_modality': list(drop) if drop else None,
        'rssi_noise_variance_db2': variance_db2,
        'blockage_intervals_ns': runs, 'n_blocked_frames': int(blocked.sum()),
        'frames': frames,
    }
    truth_path.write_text(json.dumps(truth_doc, sort_keys=True, indent=1) + '\n')
    bag_bytes = sum(p.stat().st_size for p in bag_path.rglob('*') if p.is_file())
    return ScenarioInfo(
        index=index, name=name, kind=sc.kind.name, blocks_by_design=sc.kind.blocks,
        n_frames=n_frames, n_blocked_frames=int(blocked.sum()), first_blockage_ns=first,
        first_blockage_s=None if first is None else round((first - t0_ns) * 1e-9, 3),
        blockage_intervals_ns=runs, bag_path=str(bag_path), truth_path=str(truth_path),
        message_counts=counts, payload_sha256=digest, bag_bytes=bag_bytes,
        timing_ms={'render_ms_per_frame': 1e3 * t_render / max(n_render, 1),
                   'raycast_ms_per_frame': 1e3 * t_cast / max(n_cast, 1)})


def simulate(out_dir: str | Path, *, n_scenarios: int = 10, seed: int = 0,
             frames_per_scenario: int | None = None,
             drop_modality: str | tuple[str, float] | None = None,
             progress: bool = True, kind_set: str = 'default') -> list[ScenarioInfo]:
    """Simulate ``n_scenarios`` testbed runs into ``out_dir`` (bags, truth sidecars, index.json).

    Scenario i uses kind i % 10 (see ``scene.SCENARIO_KINDS``); ``kind_set='new'``: kind
    i % 8 of ``scene.NEW_SCENARIO_KINDS`` (kinds never in the default set), ``'all'``: the 18
    in turn. Raises FileExistsError before writing anything if a scenario bag or sidecar
    already exists.
    """
    from tqdm import tqdm

    if n_scenarios < 1:
        raise ValueError('n_scenarios must be >= 1')
    n_frames = DEFAULT_FRAMES if frames_per_scenario is None else int(frames_per_scenario)
    if n_frames < 1:
        raise ValueError('frames_per_scenario must be >= 1')
    drop = parse_drop_modality(drop_modality)
    if kind_set not in KIND_SETS:
        raise ValueError(f'unknown kind set {kind_set!r}; choose from {sorted(KIND_SETS)}')
    kinds = KIND_SETS[kind_set]
    out = refuse_to_overwrite(out_dir, n_scenarios)
    infos = [simulate_scenario(out, i, seed, n_frames, drop, progress, kinds)
             for i in tqdm(range(n_scenarios), desc='scenarios', disable=not progress,
                           position=0)]
    index_doc = {'generator': 'mmtok_ros.sim', 'truth_version': TRUTH_VERSION, 'seed': seed,
                 'frame_period_ns': FRAME_PERIOD_NS, 'frames_per_scenario': n_frames,
                 'drop_modality': list(drop) if drop else None,
                 **({'kind_set': kind_set} if kind_set != 'default' else {}),
                 'topics': {'image': bw.TOPIC_IMAGE, 'lidar': bw.TOPIC_LIDAR,
                            'rssi': bw.TOPIC_RSSI, 'tf_static': bw.TOPIC_TF_STATIC},
                 'scenarios': [info.index_row() for info in infos]}
    (out / 'index.json').write_text(json.dumps(index_doc, sort_keys=True, indent=1) + '\n')
    return infos
