"""FMCW radar: a synthetic raw cube shaped like DeepSense's radar ``.npy`` and the
"highest point sampling" of Section III-B that turns any such cube into N_rad points (Eq. 15).

Cube layout, as DeepSense stores it: (receive antennas, samples per chirp, chirps per frame),
complex. Defaults: 4 Rx at half-wavelength spacing, 256 samples, 128 chirps; a range bin of
0.3 m (76.8 m span) and a velocity bin of 0.2 m/s (+-12.8 m/s unambiguous).

Processing (``cube_to_points``): range FFT over samples, Doppler FFT over chirps, angle FFT over
the (zero-padded) Rx axis, power per cell; local maxima in range-Doppler; the ``n_points``
strongest kept, strongest first. A point is [velocity, azimuth, altitude, depth] scaled to about
[-1, 1] (Eq. 15). DeepSense's radar has one row of Rx antennas, so altitude is not resolved;
its column carries the point's relative power (0 dB at the frame's peak -> 1, -40 dB -> 0)
instead, the "height" of the highest point.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RadarSpec:
    n_rx: int = 4
    n_samples: int = 256
    n_chirps: int = 128
    range_bin_m: float = 0.3
    velocity_bin_mps: float = 0.2
    angle_fft: int = 16          # zero-padded angle FFT size
    noise_sigma: float = 0.02    # per complex sample, relative to a unit scatterer at 1 m

    @property
    def max_range_m(self) -> float:
        return self.n_samples * self.range_bin_m

    @property
    def max_velocity_mps(self) -> float:
        return self.n_chirps * self.velocity_bin_mps / 2


DEEPSENSE_RADAR = RadarSpec()


def synthetic_cube(range_m: np.ndarray, radial_velocity_mps: np.ndarray,
                   azimuth_rad: np.ndarray, amplitude: np.ndarray, rng: np.random.Generator,
                   spec: RadarSpec = DEEPSENSE_RADAR) -> np.ndarray:
    """(n_rx, n_samples, n_chirps) complex64 beat signal of point scatterers plus noise.

    Each scatterer adds a tone per axis: range -> beat frequency over samples, radial velocity
    -> phase step over chirps, azimuth -> phase step pi sin(az) over the Rx antennas.
    """
    r = np.asarray(range_m, float)
    k_range = r / spec.range_bin_m / spec.n_samples                        # cycles per sample
    k_doppler = np.asarray(radial_velocity_mps, float) / spec.velocity_bin_mps / spec.n_chirps
    rx = np.exp(1j * np.pi * np.outer(np.sin(azimuth_rad), np.arange(spec.n_rx)))  # (P, n_rx)
    fast = np.exp(2j * np.pi * np.outer(k_range, np.arange(spec.n_samples)))       # (P, n_s)
    slow = np.exp(2j * np.pi * np.outer(k_doppler, np.arange(spec.n_chirps)))      # (P, n_c)
    amp = np.asarray(amplitude, float)
    cube = np.einsum('p,pa,ps,pc->asc', amp, rx, fast, slow)
    shape = (spec.n_rx, spec.n_samples, spec.n_chirps)
    cube += spec.noise_sigma * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
    return cube.astype(np.complex64)


def cube_to_points(cube: np.ndarray, n_points: int,
                   spec: RadarSpec = DEEPSENSE_RADAR) -> np.ndarray:
    """(n_rx, samples, chirps) complex cube -> (n_points, 4) float32 points, strongest first.

    Rows beyond the number of local maxima are zeros. The range/velocity scales come from
    ``spec``; the cube's own shape sets the number of bins, so other radar set-ups work too.
    """
    if cube.ndim != 3 or not np.iscomplexobj(cube):
        raise ValueError(f'expected a complex (rx, samples, chirps) radar cube, got '
                         f'{cube.dtype} {cube.shape}')
    n_rx, n_s, n_c = cube.shape
    x = np.fft.fft(cube, axis=1)                                              # range
    x = np.fft.fftshift(np.fft.fft(x, axis=2), axes=2)                        # Doppler
    x = np.fft.fftshift(np.fft.fft(x, n=max(spec.angle_fft, n_rx), axis=0), axes=0)  # angle
    power = (np.abs(x) ** 2).max(axis=0)                                      # (n_s, n_c)
    angle_bin = (np.abs(x) ** 2).argmax(axis=0)                               # (n_s, n_c)
    peak = np.ones_like(power, dtype=bool)
    for axis in (0, 1):
        for shift in (1, -1):
            peak &= power >= np.roll(power, shift, axis=axis)
    cells = np.flatnonzero(peak)
    cells = cells[np.argsort(-power.ravel()[cells], kind='stable')][:n_points]
    r_bin, d_bin = np.unravel_index(cells, power.shape)
    n_angle = x.shape[0]
    sin_az = (angle_bin[r_bin, d_bin] - n_angle // 2) * 2.0 / n_angle          # -1 ... 1
    velocity = (d_bin - n_c // 2) * spec.velocity_bin_mps / spec.max_velocity_mps
    depth = r_bin * spec.range_bin_m / spec.max_range_m
    rel_db = 10 * np.log10(power[r_bin, d_bin] / max(float(power.max()), 1e-30) + 1e-30)
    level = np.clip(1.0 + rel_db / 40.0, 0.0, 1.0)
    out = np.zeros((n_points, 4), np.float32)
    out[:len(cells)] = np.stack([velocity, sin_az, level, depth], axis=1)
    return out
