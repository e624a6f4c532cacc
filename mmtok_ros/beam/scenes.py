"""Synthetic beam scenes (deterministic per seed): one vehicle driving along the street in
front of the RSU, seen by the RSU's camera, LiDAR and FMCW radar, and reporting its GPS; a
second vehicle that can block the line of sight; a building facade that reflects.

World, camera and LiDAR are those of the handover simulator (``mmtok_ros.sim``, frame 'rsu1':
x along the road, y left, z up, RSU pole at the origin). The base-station array hangs at the
RSU antenna (4 m), its boresight yawed like the camera (-55 deg), so the 90 degree field of
the 64-beam codebook covers the part of the road the camera sees.

Label (Eqs. 1-7): at the frame after the window, the received power of every beam of the
codebook is computed over two paths -- the line of sight (with knife-edge loss when the other
vehicle is in the way) and the specular reflection off the facade at y = -17 m (8 dB loss) --
each with Eq. 5's path loss and 1 dB of i.i.d. large-scale fading; the label is the best beam.
When the line of sight is blocked the facade path can win, which GPS alone does not reveal.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ..constants import NS_PER_S
from ..errors import UserInputError
from ..model.config import ModelConfig
from ..sim import camera, lidar
from ..sim.channel import box_blockage_loss_db
from ..sim.layout import static_boxes
from ..sim.scene import CAR, LANE_Y_M, RSU_XYZ_M, VEHICLES, Track, VehicleSpec
from ..train.dataset import WindowDataset
from .inputs import FRAME_PERIOD_S, frame_inputs
from .radar import DEEPSENSE_RADAR, synthetic_cube
from .system_model import Codebook, best_beam, path_loss_eq5_db, received_power_dbm

BS_XYZ_M = RSU_XYZ_M['rsu1']
ARRAY_YAW_DEG = camera.CAMERA_YAW_DEG            # boresight, from +x towards the road
RADAR_XYZ_M = np.array([0.0, -0.3, 2.5])
RX_ANTENNA_HEIGHT_M = 1.5
FACADE_Y_M = -17.0                                # building front beyond the far road edge
FACADE_X_M = (-20.0, 90.0)
FACADE_LOSS_DB = 8.0
FADING_SIGMA_DB = 1.0
TX_POWER_DBM = 10.0
GPS_BIAS_SIGMA_M = 1.0                            # per scene (multipath, satellites)
GPS_NOISE_SIGMA_M = 0.5                           # per frame
BACK_LOBE_LOSS_DB = 30.0                          # behind the array (|theta| > 90 deg)


@dataclass(frozen=True)
class BeamScene:
    index: int
    seed: int
    target: Track
    other: Track
    other_vehicle: VehicleSpec

    def boxes_at(self, t_s: float) -> list:
        """(lo, hi, spec) boxes of both vehicles and the static poles at time ``t_s``."""
        out = []
        for track, spec in ((self.target, CAR), (self.other, self.other_vehicle)):
            x, y = track.xy_at(t_s)
            half = np.array([spec.length_m / 2, spec.width_m / 2, 0.0])
            centre = np.array([x, y, 0.0])
            out.append((centre - half, centre + half + [0, 0, spec.height_m], spec))
        return out + static_boxes()


def make_scene(index: int, seed: int) -> BeamScene:
    """Scene ``index`` of a run: lanes, directions, speeds and starts drawn from (seed, index)."""
    rng = np.random.default_rng([seed, index, 0xBEA])
    lanes = list(LANE_Y_M)

    def track(lane: str) -> Track:
        forward = rng.random() < 0.5
        speed = rng.uniform(6.0, 14.0)
        start = rng.uniform(-2.0, 25.0) if forward else rng.uniform(45.0, 70.0)
        return Track(lane, round(start, 3), round(speed if forward else -speed, 4))

    target = track(lanes[rng.integers(3)])
    other = track(lanes[rng.integers(3)])
    vehicle = VEHICLES[sorted(VEHICLES)[rng.integers(len(VEHICLES))]]
    return BeamScene(index, seed, target, other, vehicle)


def _angles(origin_m: np.ndarray, points_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth off the array boresight and elevation of ``points_m`` (..., 3) seen from origin."""
    d = points_m - origin_m
    yaw = np.arctan2(d[..., 1], d[..., 0]) - np.radians(ARRAY_YAW_DEG)
    theta = (yaw + np.pi) % (2 * np.pi) - np.pi
    phi = np.arctan2(d[..., 2], np.hypot(d[..., 0], d[..., 1]))
    return theta, phi


def beam_powers_dbm(scene: BeamScene, t_s: np.ndarray, codebook: Codebook,
                    rng: np.random.Generator) -> np.ndarray:
    """(frames, n_beams) received power of every beam (Eq. 1) over the LoS and facade paths."""
    t_s = np.asarray(t_s, float)
    xy = scene.target.xy_at(t_s)
    rx = np.column_stack([xy, np.full(len(t_s), RX_ANTENNA_HEIGHT_M)])           # (F, 3)
    other_xy = scene.other.xy_at(t_s)
    spec = scene.other_vehicle
    image = rx * [1, -1, 1] + [0, 2 * FACADE_Y_M, 0]                             # mirror
    s = (FACADE_Y_M - BS_XYZ_M[1]) / (image[:, 1] - BS_XYZ_M[1])                 # bounce
    bounce = BS_XYZ_M + s[:, None] * (image - BS_XYZ_M)
    los_loss = box_blockage_loss_db(BS_XYZ_M, rx, other_xy, spec.length_m, spec.height_m)
    via_loss = (box_blockage_loss_db(BS_XYZ_M, bounce, other_xy, spec.length_m, spec.height_m)
                + box_blockage_loss_db(bounce, rx, other_xy, spec.length_m, spec.height_m))
    on_facade = (bounce[:, 0] > FACADE_X_M[0]) & (bounce[:, 0] < FACADE_X_M[1])
    via_loss = via_loss + FACADE_LOSS_DB + np.where(on_facade, 0.0, 200.0)
    ends = np.stack([rx, image], axis=1)                                          # (F, J=2, 3)
    theta, phi = _angles(BS_XYZ_M, ends)
    length_m = np.linalg.norm(ends - BS_XYZ_M, axis=-1)
    fading = rng.normal(0.0, FADING_SIGMA_DB, length_m.shape)
    extra = np.stack([los_loss, via_loss], 1) + np.where(np.abs(theta) > np.pi / 2,
                                                          BACK_LOBE_LOSS_DB, 0.0)
    omega = path_loss_eq5_db(length_m, shadowing_db=fading) + extra                # Eq. 5
    return received_power_dbm(codebook, TX_POWER_DBM, theta, phi, omega)


def radar_scatterers(boxes: list, velocities_mps: list[np.ndarray]):
    """Point scatterers (range, radial velocity, azimuth, amplitude) of the boxes' near faces."""
    rows = []
    for (lo, hi, spec), v in zip(boxes, velocities_mps + [np.zeros(2)] * len(boxes)):
        xs = np.linspace(lo[0], hi[0], 4)
        y_near = hi[1] if RADAR_XYZ_M[1] > hi[1] else lo[1]      # face towards the radar
        pts = np.column_stack([xs, np.full(4, y_near), np.full(4, 0.6 * hi[2])])
        d = pts - RADAR_XYZ_M
        r = np.linalg.norm(d, axis=1)
        radial = (d[:, :2] @ v) / r
        theta, _ = _angles(RADAR_XYZ_M, pts)
        size = np.sqrt((hi[0] - lo[0]) * (hi[2] - lo[2]))
        rows.append(np.column_stack([r, radial, theta, size / np.maximum(r, 1.0) ** 2]))
    return np.concatenate(rows).T


def scene_frames(scene: BeamScene, cfg: ModelConfig, n_frames: int,
                 codebook: Codebook) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Model inputs (n_frames, ...) per modality and the best beam of every frame."""
    rng = np.random.default_rng([scene.seed, scene.index, 0xF4A])
    t_s = np.arange(n_frames) * FRAME_PERIOD_S
    beams = best_beam(beam_powers_dbm(scene, t_s, codebook, rng))
    gps_bias = rng.normal(0.0, GPS_BIAS_SIGMA_M, 2)
    velocities = [np.array([scene.target.speed_mps, 0.0]), np.array([scene.other.speed_mps, 0.0])]
    frames: dict[str, list] = {m: [] for m in cfg.modalities}
    for t in t_s:
        boxes = scene.boxes_at(t)
        raw = {}
        if 'image' in cfg.modalities:
            raw['rgb'] = camera.render(boxes, rng)
        if 'lidar' in cfg.modalities:
            raw['points'] = lidar.scan(boxes, rng)
        if 'radar' in cfg.modalities:
            raw['radar_cube'] = synthetic_cube(*radar_scatterers(boxes, velocities), rng,
                                               DEEPSENSE_RADAR)
        gps = scene.target.xy_at(t) + gps_bias + rng.normal(0.0, GPS_NOISE_SIGMA_M, 2)
        for m, x in frame_inputs(cfg, gps_xy_m=gps, **raw).items():
            frames[m].append(x)
    return {m: np.stack(v).astype(np.float32) for m, v in frames.items()}, beams


def synthetic_dataset(cfg: ModelConfig, *, n_scenes: int, frames_per_scene: int = 36,
                      seed: int = 0, codebook: Codebook | None = None,
                      progress: bool = True) -> WindowDataset:
    """Windows of ``cfg.n_frames`` frames from ``n_scenes`` scenes, labelled with the best beam
    of the frame after each window (int64); group = scene index."""
    codebook = codebook or Codebook(n_x=cfg.n_classes)
    if codebook.n_beams != cfg.n_classes:
        raise ValueError(f'codebook has {codebook.n_beams} beams but the model predicts '
                         f'{cfg.n_classes} classes')
    T = cfg.n_frames
    if frames_per_scene < T + 1:
        raise UserInputError(f'frames_per_scene={frames_per_scene} must be >= n_frames + 1 = '
                             f'{T + 1}')
    parts = []
    for index in tqdm(range(n_scenes), desc='beam scenes', disable=not progress):
        frames, beams = scene_frames(make_scene(index, seed), cfg, frames_per_scene, codebook)
        last = np.arange(T - 1, frames_per_scene - 1)                  # window's newest frame
        parts.append(WindowDataset(
            tuple(cfg.modalities), frames,
            np.ones((frames_per_scene, len(cfg.modalities)), dtype=bool),
            last[:, None] - np.arange(T - 1, -1, -1)[None, :],         # (W, T) oldest first
            beams[last + 1].astype(np.int64), np.full(len(last), index, dtype=np.int64),
            (last * FRAME_PERIOD_S * NS_PER_S).astype(np.int64)))
    return WindowDataset.concat(parts)
