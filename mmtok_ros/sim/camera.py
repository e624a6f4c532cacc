"""RSU 1's camera: a 640 x 480 rgb8 pinhole render of the road and the vehicles (numpy only).

Why rendered and not sampled from a dataset: the image must show the *same* blocker the channel
model sees, at the same place, so the model can learn "truck approaching the line of sight".

Intrinsics (pixels): fx = fy = 300, cx = 319.5, cy = 239.5, no distortion (HFOV 93.7 deg,
VFOV 77.3 deg). Extrinsics (frame 'rsu1', metres): optical centre at (0.0, -0.3, 3.8) on the
pole, yawed -55 deg (from +x towards the road) and pitched 15 deg down, so it sees the road from
just behind the pole (x ~ -2 m in the near lane) to beyond RSU 2; a blocker is in view several
frames before it reaches the RSU 1 -> car line of sight. Optical frame: x right, y down, z forward.

Rendering: the static background (sky gradient, grass, asphalt with lane markings, haze) is
ray-cast once per pixel; each frame copies it and paints the vehicle boxes far-to-near (painter's
algorithm), each visible face a near-plane-clipped convex polygon filled by half-plane tests on
its bounding-box pixel grid, Lambert-shaded by a fixed sun. A vehicle made of two boxes (a
lower cab, ``VehicleSpec.parts``) paints the part across the step from the camera first. Sensor
noise (sigma 2 DN) is added. A drawn scenario (``--kinds random``) also jitters the exposure
(``Photometric``: gain, offset, colour cast, its own noise sigma); the other kinds have none.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scene import LANE_WIDTH_M, ROAD_Y_FAR_M, ROAD_Y_NEAR_M

WIDTH_PX, HEIGHT_PX = 640, 480
FX_PX = FY_PX = 300.0
CX_PX, CY_PX = 319.5, 239.5
CAMERA_XYZ_M = np.array([0.0, -0.3, 3.8])
CAMERA_YAW_DEG = -55.0
CAMERA_PITCH_DEG = -15.0
NEAR_M = 0.2
NOISE_SIGMA_DN = 2.0
SUN_DIR = np.array([0.35, 0.55, 0.76]) / np.linalg.norm([0.35, 0.55, 0.76])  # towards the sun


def camera_rotation(yaw_deg: float = CAMERA_YAW_DEG, pitch_deg: float = CAMERA_PITCH_DEG
                    ) -> np.ndarray:
    """World -> optical rotation; rows are the optical x (right), y (down), z (forward) axes."""
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    fwd = np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])
    right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    down = np.cross(fwd, right)
    return np.stack([right, down, fwd])


@dataclass(frozen=True)
class Photometric:
    """Per-scenario exposure jitter: pixel = clean * gain * cast + offset, then N(0, sigma)."""
    gain: float
    offset_dn: float
    cast_rgb: tuple[float, float, float]
    noise_sigma_dn: float


R_WORLD_TO_CAM = camera_rotation()
K = np.array([[FX_PX, 0.0, CX_PX], [0.0, FY_PX, CY_PX], [0.0, 0.0, 1.0]])


def _static_background() -> np.ndarray:
    """Sky, grass, road and lane markings, ray-cast once (the camera never moves)."""
    v, u = np.mgrid[0:HEIGHT_PX, 0:WIDTH_PX].astype(np.float64)
    rays_cam = np.stack([(u - CX_PX) / FX_PX, (v - CY_PX) / FY_PX, np.ones_like(u)], -1)
    rays = rays_cam @ R_WORLD_TO_CAM            # optical -> world (R is orthonormal)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    dz = rays[..., 2]
    img = np.empty((HEIGHT_PX, WIDTH_PX, 3), np.float64)
    elev = np.clip(dz, 0.0, 1.0)[..., None]
    img[:] = np.array([205.0, 222.0, 238.0]) * (1 - elev) + np.array([90.0, 140.0, 215.0]) * elev
    ground = dz < -1e-4
    t = np.where(ground, -CAMERA_XYZ_M[2] / np.where(ground, dz, -1.0), 0.0)
    gx = CAMERA_XYZ_M[0] + t * rays[..., 0]
    gy = CAMERA_XYZ_M[1] + t * rays[..., 1]
    # deterministic texture: a hash of the ground cell, so asphalt is not flat
    tex = (np.sin(gx * 12.9898 + gy * 78.233) * 43758.5453) % 1.0
    col = np.zeros_like(img)
    col[:] = np.array([95.0, 140.0, 70.0]) + 25.0 * tex[..., None]           # grass
    sidewalk = (gy < -0.8) & (gy >= ROAD_Y_NEAR_M)
    col[sidewalk] = np.array([170.0, 168.0, 160.0]) + 10.0 * tex[sidewalk, None]
    road = (gy < ROAD_Y_NEAR_M) & (gy > ROAD_Y_FAR_M)
    col[road] = np.array([78.0, 78.0, 82.0]) + 14.0 * tex[road, None]
    paint = np.zeros_like(road)
    for edge_y in (ROAD_Y_NEAR_M - 0.2, ROAD_Y_FAR_M + 0.2):                 # solid edge lines
        paint |= np.abs(gy - edge_y) < 0.08
    for k in (1, 2):                                                         # dashed lane lines
        paint |= (np.abs(gy - (ROAD_Y_NEAR_M - k * LANE_WIDTH_M)) < 0.07) & (gx % 9.0 < 3.0)
    col[paint & ground] = np.array([235.0, 235.0, 225.0])
    haze = np.clip(t / 150.0, 0.0, 0.85)[..., None]
    col = col * (1 - haze) + np.array([205.0, 222.0, 238.0]) * haze
    img[ground] = col[ground]
    return img.astype(np.float32)


_BACKGROUND: np.ndarray | None = None

# Box faces: corner indices (bits: x, y, z of the max corner) in counter-clockwise order seen
# from outside, and the outward normal.
_FACES = (
    ((4, 6, 7, 5), (0.0, 0.0, 1.0)),   # top
    ((1, 3, 7, 5), (1.0, 0.0, 0.0)),   # +x (front when driving +x)
    ((0, 4, 6, 2), (-1.0, 0.0, 0.0)),
    ((2, 6, 7, 3), (0.0, 1.0, 0.0)),
    ((0, 1, 5, 4), (0.0, -1.0, 0.0)),
)


def _box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    idx = np.arange(8)
    return np.stack([np.where(idx & 1, hi[0], lo[0]), np.where(idx & 2, hi[1], lo[1]),
                     np.where(idx & 4, hi[2], lo[2])], -1)


def _clip_near(poly_cam: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman clip of a camera-frame polygon against z = NEAR_M (a few vertices)."""
    out = []
    n = len(poly_cam)
    for i in range(n):
        a, b = poly_cam[i], poly_cam[(i + 1) % n]
        a_in, b_in = a[2] >= NEAR_M, b[2] >= NEAR_M
        if a_in:
            out.append(a)
        if a_in != b_in:
            s = (NEAR_M - a[2]) / (b[2] - a[2])
            out.append(a + s * (b - a))
    return np.array(out) if out else np.zeros((0, 3))


def fill_convex_polygon(img: np.ndarray, poly_px: np.ndarray, color: np.ndarray) -> None:
    """Paint pixels whose centres lie inside a convex polygon (vectorised half-plane tests)."""
    if len(poly_px) < 3:
        return
    h, w = img.shape[:2]
    x0 = max(int(np.floor(poly_px[:, 0].min())), 0)
    x1 = min(int(np.ceil(poly_px[:, 0].max())), w - 1)
    y0 = max(int(np.floor(poly_px[:, 1].min())), 0)
    y1 = min(int(np.ceil(poly_px[:, 1].max())), h - 1)
    if x0 > x1 or y0 > y1:
        return
    ys = np.arange(y0, y1 + 1, dtype=np.float32)[:, None]
    xs = np.arange(x0, x1 + 1, dtype=np.float32)[None, :]
    a, b = poly_px, np.roll(poly_px, -1, axis=0)
    area2 = np.sum(a[:, 0] * b[:, 1] - b[:, 0] * a[:, 1])
    sign = 1.0 if area2 >= 0 else -1.0
    inside = np.ones((y1 - y0 + 1, x1 - x0 + 1), bool)
    for (ax, ay), (bx, by) in zip(a, b):
        inside &= sign * ((bx - ax) * (ys - ay) - (by - ay) * (xs - ax)) >= 0.0
    img[y0:y1 + 1, x0:x1 + 1][inside] = color


def project_world(points_world_m: np.ndarray) -> np.ndarray:
    """(N, 3) world -> (N, 3) camera-frame points (use K for pixels); for tests and overlays."""
    return (np.asarray(points_world_m, float) - CAMERA_XYZ_M) @ R_WORLD_TO_CAM.T


def _paint_order(parts: list) -> list:
    """Parts of one vehicle, adjacent along x: the one farther from the camera in x first."""
    cam_x = CAMERA_XYZ_M[0]
    return sorted(parts, key=lambda p: -max(p[0][0] - cam_x, cam_x - p[1][0], 0.0))


def render(boxes: list, rng: np.random.Generator | None = None,
           photometric: Photometric | None = None) -> np.ndarray:
    """(480, 640, 3) uint8 image of the scene with ``boxes`` = [(lo_m, hi_m, spec), ...]."""
    global _BACKGROUND
    if _BACKGROUND is None:
        _BACKGROUND = _static_background()
    img = _BACKGROUND.copy()
    centres = [0.5 * (lo + hi) for lo, hi, _ in boxes]
    order = np.argsort([-np.linalg.norm(c - CAMERA_XYZ_M) for c in centres], kind='stable')
    for i in order:
        spec = boxes[i][2]
        for lo, hi in _paint_order(spec.parts(boxes[i][0], boxes[i][1])):
            _paint_box(img, lo, hi, np.array(spec.color_rgb, np.float32))
    if photometric is not None:
        img = (img * np.float32(photometric.gain) * np.asarray(photometric.cast_rgb, np.float32)
               + np.float32(photometric.offset_dn))
    sigma = NOISE_SIGMA_DN if photometric is None else photometric.noise_sigma_dn
    if rng is not None:
        img += rng.normal(0.0, sigma, img.shape).astype(np.float32)
    return np.clip(img, 0.0, 255.0).astype(np.uint8)


def _paint_box(img: np.ndarray, lo: np.ndarray, hi: np.ndarray, base: np.ndarray) -> None:
    """Paint the camera-facing faces of one box, Lambert-shaded."""
    corners = _box_corners(lo, hi)
    cam = project_world(corners)
    for idx, normal in _FACES:
        n = np.array(normal)
        face = corners[list(idx)]
        if np.dot(n, CAMERA_XYZ_M - face.mean(0)) <= 0.0:      # back-face
            continue
        poly = _clip_near(cam[list(idx)])
        if len(poly) < 3:
            continue
        px = (poly[:, :2] / poly[:, 2:3]) * [FX_PX, FY_PX] + [CX_PX, CY_PX]
        shade = 0.45 + 0.55 * max(float(np.dot(n, SUN_DIR)), 0.0)
        fill_convex_polygon(img, px.astype(np.float32), base * shade)
