"""One frame of raw beam-task sensor data -> model input arrays, shared by the synthetic scenes
and the DeepSense loader (the same functions for both, as ``model/preprocess.py`` does for the
handover task)."""
from __future__ import annotations

import numpy as np

from ..errors import UserInputError
from ..model.config import ModelConfig
from ..model.preprocess import image_to_input, points_to_bev
from .radar import DEEPSENSE_RADAR, RadarSpec, cube_to_points

GPS_SCALE_M = 50.0   # local metres -> model units (a 100 m street maps to about [-1, 1])
FRAME_PERIOD_S = 0.1  # beam-task frames: DeepSense samples at about 10 Hz, the scenes alike


def gps_to_input(xy_m: np.ndarray) -> np.ndarray:
    """Vehicle position in local metres (east/north or the scene's x/y) -> (2,) float32."""
    xy_m = np.asarray(xy_m, dtype=np.float64)
    if xy_m.shape != (2,) or not np.isfinite(xy_m).all():
        raise ValueError(f'expected a finite (2,) position in metres, got {xy_m.tolist()}')
    return (xy_m / GPS_SCALE_M).astype(np.float32)


def frame_inputs(cfg: ModelConfig, *, rgb: np.ndarray | None = None,
                 points: np.ndarray | None = None, radar_cube: np.ndarray | None = None,
                 gps_xy_m: np.ndarray | None = None,
                 radar_spec: RadarSpec = DEEPSENSE_RADAR) -> dict[str, np.ndarray]:
    """Model inputs of the modalities ``cfg`` uses; each raw input is needed only if used."""
    convert = {
        'image': lambda: image_to_input(rgb, cfg),
        'lidar': lambda: points_to_bev(points, cfg),
        'radar': lambda: cube_to_points(radar_cube, cfg.n_radar_points, radar_spec),
        'gps': lambda: gps_to_input(gps_xy_m),
    }
    unknown = [m for m in cfg.modalities if m not in convert]
    if unknown:
        raise UserInputError(f'the beam task has no input for modalities {unknown}')
    return {m: convert[m]() for m in cfg.modalities}
