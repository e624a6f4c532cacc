"""RSU 1's spinning LiDAR, ray-cast analytically against the ground plane and the vehicle boxes.

Sensor: 32 channels, elevations evenly spaced over -25 ... +15 deg (ring 0 = lowest),
0.4 deg azimuth steps (900 firings per channel, 28 800 rays per scan), max range 80 m, range
noise sigma 2 cm, 1 % random dropouts. Mounted on RSU 1's pole at (0.0, -0.5, 1.8) m in 'rsu1'
with axes parallel to it (x along the road towards RSU 2, y left, z up), so the road surface
is at z ~ -1.8 m in the sensor frame -- below the model's bev_ground_z_m = -1.4 ground cut.
The scan is treated as instantaneous at its stamp (no motion distortion: vehicles move
< 0.3 m per 100 ms rotation at <= 10 km/h).

Intensity (0-255) = 255 * reflectivity * |cos(incidence)| with reflectivities asphalt 0.12,
lane paint 0.80 (retro-reflective), sidewalk 0.30, grass 0.25, vehicle paint 0.45, pole 0.35.

Output: (P, 5) float32 [x, y, z, intensity, ring] in frame 'rsu1_lidar', no-return rays dropped.
"""
from __future__ import annotations

import numpy as np

from .scene import LANE_WIDTH_M, ROAD_Y_FAR_M, ROAD_Y_NEAR_M

N_CHANNELS = 32
ELEV_MIN_DEG, ELEV_MAX_DEG = -25.0, 15.0
AZIMUTH_STEP_DEG = 0.4
MAX_RANGE_M = 80.0
RANGE_NOISE_SIGMA_M = 0.02
DROPOUT_PROB = 0.01
LIDAR_XYZ_M = np.array([0.0, -0.5, 1.8])
REFLECTIVITY = {'asphalt': 0.12, 'paint': 0.80, 'sidewalk': 0.30, 'grass': 0.25,
                'vehicle': 0.45, 'pole': 0.35}


def _ray_table() -> tuple[np.ndarray, np.ndarray]:
    elev = np.radians(np.linspace(ELEV_MIN_DEG, ELEV_MAX_DEG, N_CHANNELS))
    azim = np.radians(np.arange(0.0, 360.0, AZIMUTH_STEP_DEG))
    el, az = np.meshgrid(elev, azim, indexing='ij')           # (channels, firings)
    dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)
    ring = np.broadcast_to(np.arange(N_CHANNELS, dtype=np.float32)[:, None], el.shape)
    return dirs.reshape(-1, 3), ring.reshape(-1).copy()


RAY_DIRS, RAY_RING = _ray_table()


def _ground_reflectivity(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    refl = np.full(gx.shape, REFLECTIVITY['grass'])
    refl[(gy < -0.8) & (gy >= ROAD_Y_NEAR_M)] = REFLECTIVITY['sidewalk']
    road = (gy < ROAD_Y_NEAR_M) & (gy > ROAD_Y_FAR_M)
    refl[road] = REFLECTIVITY['asphalt']
    paint = np.zeros(gx.shape, bool)
    for edge_y in (ROAD_Y_NEAR_M - 0.2, ROAD_Y_FAR_M + 0.2):
        paint |= np.abs(gy - edge_y) < 0.08
    for k in (1, 2):
        paint |= (np.abs(gy - (ROAD_Y_NEAR_M - k * LANE_WIDTH_M)) < 0.07) & (gx % 9.0 < 3.0)
    refl[paint] = REFLECTIVITY['paint']
    return refl


def scan(boxes: list, rng: np.random.Generator) -> np.ndarray:
    """One scan against the ground and ``boxes`` = [(lo_m, hi_m, spec), ...] in 'rsu1'."""
    d = RAY_DIRS
    o = LIDAR_XYZ_M
    n_rays = d.shape[0]
    t_hit = np.full(n_rays, np.inf)
    cos_inc = np.zeros(n_rays)
    refl = np.zeros(n_rays)
    down = d[:, 2] < -1e-6
    t_ground = np.where(down, -o[2] / np.where(down, d[:, 2], -1.0), np.inf)
    t_hit = np.where(down, t_ground, t_hit)
    cos_inc = np.where(down, -d[:, 2], cos_inc)
    t_finite = np.where(down, t_ground, 0.0)
    gx = o[0] + t_finite * d[:, 0]
    gy = o[1] + t_finite * d[:, 1]
    refl = np.where(down, _ground_reflectivity(gx, gy), refl)
    # a vehicle with a lower cab is two boxes (``VehicleSpec.parts``); a plain box is one
    boxes = [(lo, hi, spec) for box_lo, box_hi, spec in boxes
             for lo, hi in spec.parts(box_lo, box_hi)]
    if boxes:
        lo = np.stack([b[0] for b in boxes])                   # (B, 3)
        hi = np.stack([b[1] for b in boxes])
        with np.errstate(divide='ignore'):
            inv = 1.0 / np.where(np.abs(d) < 1e-12, 1e-12, d)   # (R, 3)
        t1 = (lo[None] - o) * inv[:, None]                      # (R, B, 3) slab method
        t2 = (hi[None] - o) * inv[:, None]
        tmin = np.minimum(t1, t2)
        t_near = tmin.max(-1)
        t_far = np.maximum(t1, t2).min(-1)
        hit = (t_near <= t_far) & (t_near > 0.0)
        t_box = np.where(hit, t_near, np.inf)
        best = t_box.argmin(1)
        t_best = t_box[np.arange(n_rays), best]
        axis = tmin[np.arange(n_rays), best].argmax(-1)         # slab that was entered last
        box_cos = np.abs(d[np.arange(n_rays), axis])
        box_refl = np.array([REFLECTIVITY['pole' if b[2].kind == 'pole' else 'vehicle']
                             for b in boxes])[best]
        closer = t_best < t_hit
        t_hit = np.where(closer, t_best, t_hit)
        cos_inc = np.where(closer, box_cos, cos_inc)
        refl = np.where(closer, box_refl, refl)
    keep = (t_hit <= MAX_RANGE_M) & (rng.random(n_rays) >= DROPOUT_PROB)
    r_m = t_hit[keep] + rng.normal(0.0, RANGE_NOISE_SIGMA_M, int(keep.sum()))
    xyz = d[keep] * r_m[:, None]                                # sensor frame = shifted world
    intensity = np.clip(255.0 * refl[keep] * cos_inc[keep] + rng.normal(0.0, 2.0, r_m.shape),
                        0.0, 255.0)
    return np.column_stack([xyz, intensity, RAY_RING[keep]]).astype(np.float32)
