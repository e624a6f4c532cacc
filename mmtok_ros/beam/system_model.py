"""Section II system model: the RSU's planar array, its DFT codebook and the beam label.

The array is a uniform planar array (UPA) of ``q_x`` x ``q_y`` half-wavelength-spaced elements
(``q_y = 1``: a uniform linear array). Angles, as in Eq. 4: ``theta`` is the azimuth off the
array's boresight, ``phi`` the elevation (0 = horizontal); the x axis of the array is horizontal,
its y axis vertical, so a road user at low elevation is resolved by the x axis.

Departures from the printed equations, each for a stated reason:
  * Eq. 4 prints the phase step as ``sin(theta) cos(phi)``; half-wavelength spacing makes it
    ``pi sin(theta) cos(phi)`` (k d = 2 pi / lambda * lambda / 2 = pi). We use the pi.
  * Eq. 2 prints ``10 log10 |f^H a|``; we use ``20 log10 |f^H a|`` (= 10 log10 of the power
    gain) so that gains and path losses add in one unit. The argmax over beams is the same.
  * Eq. 1 adds the per-path terms ``R - Omega`` in dB, i.e. it multiplies path powers. A receiver
    adds powers, so ``received_power_dbm`` power-sums the per-path terms. For one path both
    are equal (tested); the label (Eq. 7, argmax over the codebook) is then identical.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sim.channel import WAVELENGTH_M, path_loss_db

DEEPSENSE_BEAMS = 64          # DeepSense 6G scenarios 31-34: 64 beams over about 90 degrees
SIMULATION_BEAMS = 152        # the CARLA-MATLAB set of [21]


def axis_response(q: int, spatial_freq: np.ndarray) -> np.ndarray:
    """Eq. 4 on one axis: (..., q) unit-norm response, phase step pi * ``spatial_freq``."""
    n = np.arange(q)
    return np.exp(1j * np.pi * np.asarray(spatial_freq)[..., None] * n) / np.sqrt(q)


def array_response(q_x: int, q_y: int, theta_rad, phi_rad) -> np.ndarray:
    """Eq. 3-4: a = a_x (x) a_y, shape (..., q_x * q_y), unit norm."""
    theta, phi = np.broadcast_arrays(np.asarray(theta_rad, float), np.asarray(phi_rad, float))
    a_x = axis_response(q_x, np.sin(theta) * np.cos(phi))          # (..., q_x)
    a_y = axis_response(q_y, np.sin(theta) * np.sin(phi))          # (..., q_y)
    return (a_x[..., :, None] * a_y[..., None, :]).reshape(*theta.shape, q_x * q_y)


@dataclass(frozen=True)
class Codebook:
    """A DFT codebook F = {f_i}: ``n_x`` x ``n_y`` beams of a ``q_x`` x ``q_y`` UPA.

    Beam centres are spread uniformly in spatial frequency (sin of the angle) over the field of
    view. With ``n = q`` and a 180 degree field of view this is the (unitary) DFT matrix; with
    more beams than elements it is oversampled (DeepSense: 64 beams from a 16-element array
    over 90 degrees) and neighbouring beams overlap.
    """

    q_x: int = 16
    q_y: int = 1
    n_x: int = DEEPSENSE_BEAMS
    n_y: int = 1
    fov_x_deg: float = 90.0
    fov_y_deg: float = 0.0

    @property
    def n_beams(self) -> int:
        return self.n_x * self.n_y

    @staticmethod
    def _centres(n: int, fov_deg: float) -> np.ndarray:
        """n spatial frequencies, uniformly spaced, cell-centred inside sin(+-fov/2)."""
        half = np.sin(np.radians(min(fov_deg, 180.0)) / 2)
        return -half + half * (2 * np.arange(n) + 1) / n if n > 1 else np.zeros(1)

    def vectors(self) -> np.ndarray:
        """(n_beams, q_x * q_y) complex beamforming vectors f_i, unit norm, x index slowest."""
        f_x = axis_response(self.q_x, self._centres(self.n_x, self.fov_x_deg))   # (n_x, q_x)
        f_y = axis_response(self.q_y, self._centres(self.n_y, self.fov_y_deg))   # (n_y, q_y)
        f = f_x[:, None, :, None] * f_y[None, :, None, :]            # (n_x, n_y, q_x, q_y)
        return f.reshape(self.n_beams, self.q_x * self.q_y)

    def steering_angles_rad(self) -> np.ndarray:
        """(n_beams, 2) [theta, phi] each beam points to (the inverse of Eq. 4's phases)."""
        u = self._centres(self.n_x, self.fov_x_deg)                  # sin(theta) cos(phi)
        v = self._centres(self.n_y, self.fov_y_deg)                  # sin(theta) sin(phi)
        uu, vv = np.meshgrid(u, v, indexing='ij')
        sign = np.where(uu < 0, -1.0, 1.0)                           # cos(phi) > 0
        theta = sign * np.arcsin(np.clip(np.hypot(uu, vv), 0.0, 1.0))
        phi = np.arctan2(sign * vv, np.abs(uu))
        return np.stack([theta.ravel(), phi.ravel()], axis=1)


def beam_gain_db(codebook: Codebook, theta_rad, phi_rad) -> np.ndarray:
    """Eq. 2: R(f_i) = 20 log10 |f_i^H a(theta, phi)| for every beam, shape (..., n_beams)."""
    a = array_response(codebook.q_x, codebook.q_y, theta_rad, phi_rad)   # (..., M)
    amp = np.abs(a @ codebook.vectors().conj().T)                       # (..., n_beams)
    return 20.0 * np.log10(np.maximum(amp, 1e-12))


def path_loss_eq5_db(distance_m, *, eta: float = 2.0, shadowing_db=0.0,
                     wavelength_m: float = WAVELENGTH_M) -> np.ndarray:
    """Eq. 5: Omega = P0 + 10 eta log10(l) + xi (P0: free-space loss at 1 m)."""
    return path_loss_db(distance_m, eta, wavelength_m) + np.asarray(shadowing_db, float)


def received_power_dbm(codebook: Codebook, tx_power_dbm: float, theta_rad, phi_rad,
                       path_loss_db_) -> np.ndarray:
    """Eq. 1 per beam: the per-path terms P_tx + R_j(f_i) - Omega_j, power-summed over paths j.

    ``theta_rad``, ``phi_rad``, ``path_loss_db_``: (..., J) per path. Returns (..., n_beams).
    """
    per_path = (tx_power_dbm + beam_gain_db(codebook, theta_rad, phi_rad)
                - np.asarray(path_loss_db_, float)[..., None])               # (..., J, n_beams)
    peak = per_path.max(axis=-2, keepdims=True)
    total = peak[..., 0, :] + 10.0 * np.log10(np.sum(10.0 ** ((per_path - peak) / 10.0), -2))
    return total


def best_beam(power_dbm: np.ndarray) -> np.ndarray:
    """Eq. 7: the index (0-based) of the beam with the highest received power."""
    return np.argmax(power_dbm, axis=-1)
