"""Sensor arrays -> model input arrays (numpy in, numpy out; no rclpy, no torch state).

One function per modality, shared by dataset building, the live node and the tests, so a
window built offline and a window built live are the same arrays (train/serve parity).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .config import ModelConfig

BEV_CHANNELS = 3  # occupancy, max height, mean intensity


def frame_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Per-frame input shape of every modality ``cfg`` uses: the one place that says them."""
    shapes = {'image': (3, *cfg.image_hw), 'lidar': (BEV_CHANNELS, *cfg.bev_hw),
              'radar': (cfg.n_radar_points, 4), 'gps': (cfg.gps_dim,), 'rssi': (cfg.rssi_dim,)}
    return {m: shapes[m] for m in cfg.modalities}


def image_to_input(rgb: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, h, w) float32 in [0, 1] at ``cfg.image_hw`` (area resize)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'expected an (H, W, 3) RGB array, got shape {rgb.shape}')
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0
    if tuple(x.shape[-2:]) != tuple(cfg.image_hw):
        # area interpolation averages whole pixels: a cheap, alias-free downscale
        x = F.interpolate(x, size=cfg.image_hw, mode='area')
    return x[0].numpy()


def points_to_bev(points: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """(P, >=4) float32 [x, y, z, intensity, ...] in the LiDAR frame -> (3, H, W) BEV grid.

    Ground removal (Section III-B): points below ``bev_ground_z_m`` or above ``bev_max_z_m``
    and non-finite points are discarded. Channels: log-occupancy, max height above ground,
    mean intensity; all scaled to about [0, 1].
    """
    h, w = cfg.bev_hw
    bev = np.zeros((BEV_CHANNELS, h, w), dtype=np.float32)
    if points.size == 0:
        return bev
    if points.ndim != 2 or points.shape[1] < 4:
        raise ValueError(f'expected (P, >=4) points [x, y, z, intensity], got {points.shape}')
    x, y, z, inten = (points[:, i] for i in range(4))
    x0, x1, y0, y1 = cfg.bev_range_m
    keep = (np.isfinite(points[:, :4]).all(axis=1) & (z > cfg.bev_ground_z_m)
            & (z < cfg.bev_max_z_m) & (x >= x0) & (x < x1) & (y >= y0) & (y < y1))
    if not keep.any():
        return bev
    row = ((x[keep] - x0) / (x1 - x0) * h).astype(np.int64).clip(0, h - 1)
    col = ((y[keep] - y0) / (y1 - y0) * w).astype(np.int64).clip(0, w - 1)
    cell = row * w + col
    count = np.bincount(cell, minlength=h * w).astype(np.float32)
    height = (z[keep] - cfg.bev_ground_z_m) / (cfg.bev_max_z_m - cfg.bev_ground_z_m)
    max_height = np.zeros(h * w, dtype=np.float32)
    np.maximum.at(max_height, cell, height.astype(np.float32))
    inten_sum = np.bincount(cell, weights=inten[keep], minlength=h * w).astype(np.float32)
    bev[0] = (np.log1p(count) / np.log(64.0)).reshape(h, w)
    bev[1] = max_height.reshape(h, w)
    bev[2] = (inten_sum / np.maximum(count, 1.0) / 255.0).reshape(h, w)
    return bev


def rssi_to_input(rssi_dbm: np.ndarray) -> np.ndarray:
    """RSSI in dBm -> a centred, scaled float32 vector (-60 dBm -> 0, 20 dB -> 1).

    Non-finite readings must be handled before this (the window builder substitutes the last
    good value and counts it); here they raise so they can never reach the model silently.
    """
    rssi_dbm = np.asarray(rssi_dbm, dtype=np.float32)
    if not np.isfinite(rssi_dbm).all():
        raise ValueError(f'non-finite RSSI {rssi_dbm.tolist()}')
    return (rssi_dbm + 60.0) / 20.0
