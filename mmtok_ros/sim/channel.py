"""60 GHz RSSI between an RSU and the receiver vehicle: pure numpy, unit-testable.

Why a physical model: the handover labels of the paper (Sec. IV-B) are "RSSI of RSU 1 below
S_th = -47 dBm", so the simulated blockage must switch the RSSI across that threshold with the
onset a real truck produces (the link fades as the truck enters the first Fresnel zone, before
the geometric line of sight is cut), not as a step.

Model (all numbers are module constants below)::

    RSSI_dBm = P_tx + G_rsu + G_veh - L_elev(theta) - PL(d) - J_blk - xi + n

* PL(d) = P0 + 10 * eta * log10(d)  -- paper Eq. (5), close-in free-space reference:
  P0 = 20 * log10(4 * pi / lambda) = 68.0 dB at fc = 60 GHz (lambda = 5.0 mm), eta = 2.0 (LoS).
  PL(1 m) = 68.0 dB, PL(10 m) = 88.0 dB, PL(40 m) = 100.1 dB.
* Link budget: P_tx = 10 dBm, RSU phased array G_rsu = 25 dBi, vehicle array G_veh = 23.5 dBi
  (EIRP 35 dBm, inside the 60 GHz 40 dBm EIRP limit). The beam tracks the vehicle in azimuth
  (WiGig beamforming, paper Eq. (2)-(4)); in elevation the array is fixed, tilted down by
  5 deg with a 20 deg half-power beamwidth and the 3GPP parabolic pattern
  L_elev = min(12 * (dtheta / 20 deg)^2, 20) dB. The tilt trades a few dB close to the pole for
  reach along the road: unblocked (mean) RSSI is about -33 dBm beside RSU 1, -37 dBm at 20 m,
  -42 dBm at 40 m, i.e. 5 ... 10 dB above S_th, so only a > 3 sigma shadowing fade crosses the
  threshold without a blocker (1 frame in ~0.1 % of clear scenarios, as on a real road).
* J_blk: single knife-edge diffraction, ITU-R P.526 approximation
  J(nu) = 6.9 + 20 log10( sqrt((nu - 0.1)^2 + 1) + nu - 0.1 ) dB for nu > -0.78, else 0,
  with nu = h * sqrt(2 (d1 + d2) / (lambda d1 d2)) (h: signed clearance of the edge into the
  ray, d1/d2: distances from the ends to the screen). A box blocker is a screen in its lane
  with three edges (top, front, rear); the wave goes around whichever edges let it, so the
  three diffracted paths are power-summed: J_blk = -10 log10(sum_i 10^(-J(nu_i)/10)), >= 0.
  J(0) = 6.0 dB (grazing), a 3.5 m truck 0.5 m into a 10 m link gives ~ 25-30 dB.
* xi: log-normal shadowing (the large-scale fading of Eq. (5)), sigma = 1.5 dB, spatially
  correlated (Gudmundson): rho = exp(-dx / 2 m) between frames, dx = receiver displacement.
* n: measurement noise of the RSSI report, sigma = 0.75 dB (variance 0.5625 dB^2, which the
  bag carries in Temperature.variance).

"True" RSSI in the ground truth is everything but n; the label threshold is S_th = -47 dBm,
paper Eq. (8) (``constants.S_TH_DBM``).
"""
from __future__ import annotations

import numpy as np

SPEED_OF_LIGHT_MPS = 299_792_458.0
FC_HZ = 60.0e9                                  # paper's carrier (WiGig)
WAVELENGTH_M = SPEED_OF_LIGHT_MPS / FC_HZ       # 4.997 mm
PATH_LOSS_EXPONENT_LOS = 2.0                    # eta in Eq. (5)
TX_POWER_DBM = 10.0
RSU_GAIN_DBI = 25.0
VEHICLE_GAIN_DBI = 23.5
ELEV_TILT_DEG = 5.0                             # RSU array down-tilt
ELEV_HPBW_DEG = 20.0
ELEV_MAX_LOSS_DB = 20.0
SHADOW_SIGMA_DB = 1.5
SHADOW_DECORR_M = 2.0
NOISE_SIGMA_DB = 0.75


def reference_path_loss_db(wavelength_m: float = WAVELENGTH_M) -> float:
    """P0 of Eq. (5): free-space loss at 1 m, 20 log10(4 pi / lambda)."""
    return float(20.0 * np.log10(4.0 * np.pi / wavelength_m))


def path_loss_db(distance_m: np.ndarray | float, eta: float = PATH_LOSS_EXPONENT_LOS,
                 wavelength_m: float = WAVELENGTH_M) -> np.ndarray:
    """Close-in path loss, Eq. (5) without xi: P0 + 10 eta log10(d). d is clipped at 1 m."""
    d_m = np.maximum(np.asarray(distance_m, dtype=np.float64), 1.0)
    return reference_path_loss_db(wavelength_m) + 10.0 * eta * np.log10(d_m)


def knife_edge_loss_db(nu: np.ndarray | float) -> np.ndarray:
    """ITU-R P.526 single knife-edge approximation J(nu) in dB (0 for nu <= -0.78)."""
    nu = np.asarray(nu, dtype=np.float64)
    v = nu - 0.1
    j_db = 6.9 + 20.0 * np.log10(np.sqrt(v * v + 1.0) + v)
    return np.where(nu > -0.78, j_db, 0.0)


def fresnel_nu(clearance_m: np.ndarray, d1_m: np.ndarray, d2_m: np.ndarray,
               wavelength_m: float = WAVELENGTH_M) -> np.ndarray:
    """Fresnel-Kirchhoff parameter nu = h sqrt(2 (d1 + d2) / (lambda d1 d2))."""
    d1_m = np.maximum(d1_m, 1e-3)
    d2_m = np.maximum(d2_m, 1e-3)
    return clearance_m * np.sqrt(2.0 * (d1_m + d2_m) / (wavelength_m * d1_m * d2_m))


def elevation_pattern_loss_db(tx_xyz_m: np.ndarray, rx_xyz_m: np.ndarray) -> np.ndarray:
    """3GPP parabolic elevation pattern of the down-tilted RSU array (azimuth is steered)."""
    delta = np.asarray(rx_xyz_m, float) - np.asarray(tx_xyz_m, float)
    horiz_m = np.hypot(delta[..., 0], delta[..., 1])
    depression_deg = np.degrees(np.arctan2(-delta[..., 2], horiz_m))
    off_deg = depression_deg - ELEV_TILT_DEG
    return np.minimum(12.0 * (off_deg / ELEV_HPBW_DEG) ** 2, ELEV_MAX_LOSS_DB)


def box_blockage_loss_db(tx_xyz_m: np.ndarray, rx_xyz_m: np.ndarray,
                         box_center_xy_m: np.ndarray, box_length_m: float,
                         box_height_m: float, wavelength_m: float = WAVELENGTH_M,
                         cab: tuple[float, float, int] | None = None) -> np.ndarray:
    """Diffraction loss (dB, >= 0) of a road vehicle on the tx->rx ray, vectorised over frames.

    The vehicle (axis-aligned box on the ground, long side along x) is reduced to a vertical
    screen in the plane y = box centre y, spanning x in [xc - L/2, xc + L/2], z in [0, H]. Its
    three free edges each give a knife-edge path; see the module docstring for the power sum.
    ``cab`` = (length, height, +1 / -1): a lower cab at the +x / -x end makes the screen
    stepped: where the ray meets the cab's stretch the top edge is the cab's, and a ray above
    the cab goes round the step (the cargo's end) instead of the cab's end.
    Shapes: tx (3,) or (N, 3); rx and box_center_xy (N, 3) / (N, 2). Returns (N,).
    """
    tx = np.broadcast_to(np.asarray(tx_xyz_m, float), np.shape(rx_xyz_m))
    rx = np.asarray(rx_xyz_m, float)
    c = np.asarray(box_center_xy_m, float).reshape(-1, 2)
    dy = rx[:, 1] - tx[:, 1]
    with np.errstate(divide='ignore', invalid='ignore'):
        t = (c[:, 1] - tx[:, 1]) / dy
    between = np.isfinite(t) & (t > 0.0) & (t < 1.0)
    t = np.where(between, t, 0.5)
    ray = rx - tx
    d_m = np.linalg.norm(ray, axis=1)
    u = ray / d_m[:, None]
    p = tx + t[:, None] * ray                      # ray point in the screen plane
    d1_m, d2_m = t * d_m, (1.0 - t) * d_m
    half_l = 0.5 * box_length_m
    top_z, plus_x, minus_x = np.full_like(t, box_height_m), c[:, 0] + half_l, c[:, 0] - half_l
    if cab is not None:
        cab_l, cab_h, end = cab
        step = plus_x - cab_l if end > 0 else minus_x + cab_l
        top_z = np.where((p[:, 0] - step) * end > 0.0, cab_h, top_z)
        if end > 0:
            plus_x = np.where(p[:, 2] > cab_h, step, plus_x)
        else:
            minus_x = np.where(p[:, 2] > cab_h, step, minus_x)
    # Edge points on the screen nearest to the ray, and the signed "into the ray" clearance.
    edges = (
        (np.stack([p[:, 0], p[:, 1], top_z], 1), top_z - p[:, 2]),
        (np.stack([plus_x, p[:, 1], p[:, 2]], 1), plus_x - p[:, 0]),
        (np.stack([minus_x, p[:, 1], p[:, 2]], 1), p[:, 0] - minus_x),
    )
    power_sum = np.zeros_like(t)
    for q, signed_h in edges:
        w = q - tx
        perp = w - np.sum(w * u, axis=1)[:, None] * u  # perpendicular offset from the ray
        h_m = np.sign(signed_h) * np.linalg.norm(perp, axis=1)
        power_sum += 10.0 ** (-knife_edge_loss_db(fresnel_nu(h_m, d1_m, d2_m, wavelength_m)) / 10)
    loss_db = np.maximum(-10.0 * np.log10(power_sum), 0.0)
    return np.where(between, loss_db, 0.0)


def mean_rssi_dbm(tx_xyz_m: np.ndarray, rx_xyz_m: np.ndarray,
                  blockage_db: np.ndarray | float = 0.0) -> np.ndarray:
    """Deterministic RSSI: link budget - elevation pattern - Eq. (5) path loss - blockage."""
    rx = np.asarray(rx_xyz_m, float)
    d_m = np.linalg.norm(rx - np.asarray(tx_xyz_m, float), axis=-1)
    return (TX_POWER_DBM + RSU_GAIN_DBI + VEHICLE_GAIN_DBI
            - elevation_pattern_loss_db(tx_xyz_m, rx) - path_loss_db(d_m) - blockage_db)


def correlated_shadowing_db(rng: np.random.Generator, step_m: np.ndarray,
                            sigma_db: float = SHADOW_SIGMA_DB,
                            decorr_m: float = SHADOW_DECORR_M) -> np.ndarray:
    """xi of Eq. (5): stationary AR(1) log-normal shadowing over successive frames.

    rho_k = exp(-step_k / decorr) (Gudmundson); innovations keep the marginal sigma.
    """
    step_m = np.asarray(step_m, float)
    z = rng.standard_normal(step_m.shape[0])
    xi = np.empty_like(z)
    rho = np.exp(-np.abs(step_m) / decorr_m)
    prev = 0.0
    for k in range(z.shape[0]):   # O(frames), not O(pixels)
        prev = z[k] if k == 0 else rho[k] * prev + np.sqrt(1.0 - rho[k] ** 2) * z[k]
        xi[k] = prev
    return sigma_db * xi
