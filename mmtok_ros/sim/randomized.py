"""Domain-randomised blockers (``mmtok simulate --kinds random``): every scenario a fresh draw.

Why: the named kinds of ``scene.py`` give each blocker one size and one colour, so a predictor
trained on them can learn "white box = blockage" instead of geometry. A random scenario draws
its traffic and camera exposure from wide ranges, independently of every other scenario, from
``np.random.default_rng([seed, index, RNG_CONSTANT])``. Ranges (uniform unless stated):

* receiver car: lane mid or far, towards RSU 2 or towards RSU 1 (1/2 each), 3-10 km/h.
  Towards RSU 2 it starts at x in [-1, 12] m (in the camera's view) and drives at most
  7.2 km/h, so that it is still within 50 m of RSU 1 at the end of a default scenario (85
  frames, 25.5 s): farther on, RSU 1's clear link is less than 2 shadowing sigmas above S_th
  and distance alone would be labelled a blockage. Towards RSU 1 it starts at x in [28, 48] m
  and ends at x >= -25 m.
* blockers: 1, or 2 with probability 0.25, each in its own lane, never the car's. Length
  3.5-19 m, width 1.7-2.6 m, height 1.5-4.3 m (narrowed by the design below), colour any hue,
  saturation and value in [0.05, 1] (drawn in HSV; never a named vehicle's colour), speed
  1-10 km/h either way. Shape: a plain box, or (probability 0.4 when at least 5.5 m long and
  2.2 m tall) a box with a lower cab at the end it drives towards: 1.6-2.6 m long (at most 35 %
  of the vehicle), 55-80 % of its height (``DrawnVehicle``; camera, LiDAR and channel see its
  two boxes).
* design: with probability 0.65 a scenario is ``designed_to_block`` and its first blocker is
  'cut': in a lane between RSU 1 and the car, >= 0.4 m taller than the RSU 1 -> car line of
  sight there, its centre crossing that line at a drawn time in 6-19 s while the car is 4-48 m
  along, its leading edge (+1 m) reaching the line >= 2.5 s after the start and its trailing
  edge leaving it >= 2.5 s before the end (speed and direction are redrawn, at most 20 times,
  until such a time exists). The other blockers are 'low' (between, >= 0.5 m under the line,
  crossing it as 'cut' does), 'miss' (between and tall, crossing >= 2 s before the start or
  after the end) or 'beyond' (a lane beyond the car, passing behind it at 6-19 s); a second
  blocker of a designed scenario may be 'cut' too. The designs refer to the default 85 frames;
  whether a scenario is blocked is the channel's verdict (the truth sidecar's ``blocked``
  frames), ``designed_to_block`` says what was intended.
* camera exposure (``camera.Photometric``): gain 0.7-1.3, offset -20..20 DN, colour cast
  0.9-1.1 per channel, noise sigma 1-5 DN (the named kinds: none, sigma 2 DN).

The named kinds (``--kinds default`` / ``new``) are never drawn from: they stay the held-out
test sets. The draw order is fixed (``DRAW_VERSION``); changing it changes every scenario.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from ..constants import FRAME_PERIOD_NS
from .camera import Photometric
from .scene import (CAR, KMH, LANE_Y_M, MAX_SPEED_MPS, POLE, RECEIVER_ANTENNA_HEIGHT_M,
                    RSU_XYZ_M, VEHICLES, Scenario, Track, VehicleSpec)

RANDOM_KIND_SET = 'random'
DRAW_VERSION = 1
RNG_CONSTANT = 0x7A4D               # the named kinds use 0x5CE, the road 0x20AD
DESIGN_FRAMES = 85                  # simulate.DEFAULT_FRAMES: the scenario the designs fit
DESIGN_S = DESIGN_FRAMES * FRAME_PERIOD_NS * 1e-9
P_DESIGNED_TO_BLOCK, P_TWO_BLOCKERS, P_CAB = 0.65, 0.25, 0.4
RECEIVER_SPEED_KMH = (3.0, 10.0)
FORWARD_START_X_M, FORWARD_END_MAX_X_M = (-1.0, 12.0), 50.0
REVERSE_START_X_M, REVERSE_END_MIN_X_M = (28.0, 48.0), -25.0
LENGTH_M, WIDTH_M, HEIGHT_M = (3.5, 19.0), (1.7, 2.6), (1.5, 4.3)
BLOCKER_SPEED_KMH = (1.0, 10.0)
HSV_VALUE = (0.05, 1.0)
CAB_LENGTH_M, CAB_HEIGHT_FRACTION, CAB_MAX_FRACTION = (1.6, 2.6), (0.55, 0.8), 0.35
CAB_MIN_LENGTH_M, CAB_MIN_HEIGHT_M = 5.5, 2.2
ABOVE_LOS_M, BELOW_LOS_M = 0.4, 0.5    # 'cut' / 'miss' at least this taller, 'low' lower
CROSS_S, CLEAR_S, EDGE_MARGIN_M = (6.0, 19.0), 2.5, 1.0
RX_AT_CROSSING_X_M = (4.0, 48.0)       # the crossing in the camera's view, car before RSU 2
MISS_GAP_S, MAX_TRIES = (2.0, 10.0), 20
GAIN, OFFSET_DN, CAST, NOISE_SIGMA_DN = (0.7, 1.3), (-20.0, 20.0), (0.9, 1.1), (1.0, 5.0)
NAMED_COLOURS = {v.color_rgb for v in (*VEHICLES.values(), CAR, POLE)}


@dataclass(frozen=True)
class DrawnVehicle(VehicleSpec):
    """A drawn blocker: a plain box, or a box with a lower cab at its ``cab_end`` ('+x' / '-x',
    the end it drives towards)."""
    shape: str = 'box'                 # 'box' or 'box_with_cab'
    cab_length_m: float = 0.0
    cab_height_m: float = 0.0
    cab_end: str = ''

    def parts(self, lo: np.ndarray, hi: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        if self.shape != 'box_with_cab':
            return [(lo, hi)]
        step = hi[0] - self.cab_length_m if self.cab_end == '+x' else lo[0] + self.cab_length_m
        cab_lo, cab_hi, cargo_lo, cargo_hi = lo.copy(), hi.copy(), lo.copy(), hi.copy()
        cab_hi[2] = self.cab_height_m
        if self.cab_end == '+x':
            cab_lo[0], cargo_hi[0] = step, step
        else:
            cab_hi[0], cargo_lo[0] = step, step
        return [(cab_lo, cab_hi), (cargo_lo, cargo_hi)]

    def cab_profile(self) -> tuple[float, float, int] | None:
        if self.shape != 'box_with_cab':
            return None
        return self.cab_length_m, self.cab_height_m, 1 if self.cab_end == '+x' else -1


@dataclass(frozen=True)
class DrawnKind:
    """What ``Scenario.describe`` reads of a kind: the set's name, a story, the design."""
    name: str
    story: str
    blocks: bool


@dataclass(frozen=True)
class BlockerDraw:
    design: str                        # 'cut', 'low', 'miss' or 'beyond'
    los_crossing_s: float              # centre on the RSU 1 -> car line (extended: 'beyond')
    colour_hsv: tuple[float, float, float]


@dataclass(frozen=True)
class RandomScenario(Scenario):
    """One drawn scenario: ``Scenario`` with the draws and the camera's exposure jitter."""
    draws: tuple[BlockerDraw, ...] = ()
    photometric: Photometric | None = None

    def drawn(self) -> dict:
        """Everything drawn, for the truth sidecar and the index."""
        return {'draw_version': DRAW_VERSION, 'receiver': asdict(self.receiver),
                'photometric': asdict(self.photometric),
                'blockers': [{**asdict(d), 'track': asdict(t), 'vehicle': asdict(v)}
                             for d, (t, v) in zip(self.draws, self.blockers)]}

    def describe(self) -> dict:
        return {**super().describe(), 'drawn': self.drawn()}


def hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    """Hue, saturation, value in [0, 1] -> 8-bit RGB (hexcone model)."""
    k = (np.array([5.0, 3.0, 1.0]) + 6.0 * h) % 6.0
    rgb = v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return tuple(int(round(255.0 * c)) for c in rgb)


def _u(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _pick(rng: np.random.Generator, options: list):
    return options[int(rng.integers(len(options)))]


def los_fraction(lane: str, rx_lane: str) -> float:
    """Where a lane cuts the RSU 1 -> car line (ground projection), as a fraction of it."""
    return LANE_Y_M[lane] / LANE_Y_M[rx_lane]


def los_height_m(fraction: float) -> float:
    """Height of the RSU 1 -> car antenna line at that fraction of the way."""
    top = RSU_XYZ_M['rsu1'][2]
    return float(top - (top - RECEIVER_ANTENNA_HEIGHT_M) * fraction)


def draw_receiver(rng: np.random.Generator) -> Track:
    lane = _pick(rng, ['mid', 'far'])
    forward = bool(rng.random() < 0.5)
    route_kmh = (FORWARD_END_MAX_X_M - FORWARD_START_X_M[0]) / DESIGN_S / KMH
    speed = min(_u(rng, (RECEIVER_SPEED_KMH[0], min(RECEIVER_SPEED_KMH[1], route_kmh)
                         if forward else RECEIVER_SPEED_KMH[1])) * KMH, MAX_SPEED_MPS)
    travel = speed * DESIGN_S
    if forward:
        x0 = _u(rng, (FORWARD_START_X_M[0],
                      max(FORWARD_START_X_M[0], min(FORWARD_START_X_M[1],
                                                    FORWARD_END_MAX_X_M - travel))))
    else:
        x0 = _u(rng, (max(REVERSE_START_X_M[0], REVERSE_END_MIN_X_M + travel),
                      REVERSE_START_X_M[1]))
    return Track(lane, round(x0, 3), round(speed if forward else -speed, 4))


def draw_vehicle(rng: np.random.Generator, height_m: tuple[float, float]
                 ) -> tuple[DrawnVehicle, tuple[float, float, float]]:
    """Size, colour and shape (the cab's end is set once the direction is drawn)."""
    length, width, height = _u(rng, LENGTH_M), _u(rng, WIDTH_M), _u(rng, height_m)
    hsv = (_u(rng, (0.0, 1.0)), _u(rng, (0.0, 1.0)), _u(rng, HSV_VALUE))
    rgb = hsv_to_rgb(*hsv)
    if rgb in NAMED_COLOURS:                         # drawn values only, never a named colour
        rgb = (rgb[0] + 1 if rgb[0] < 255 else 254,) + rgb[1:]
    cab = bool(rng.random() < P_CAB)
    cab_length = min(_u(rng, CAB_LENGTH_M), CAB_MAX_FRACTION * length)
    cab_height = _u(rng, CAB_HEIGHT_FRACTION) * height
    cab &= length >= CAB_MIN_LENGTH_M and height >= CAB_MIN_HEIGHT_M
    vehicle = DrawnVehicle('drawn', round(length, 3), round(width, 3), round(height, 3), rgb,
                           'box_with_cab' if cab else 'box', round(cab_length, 3) if cab else 0.0,
                           round(cab_height, 3) if cab else 0.0)
    return vehicle, tuple(round(x, 4) for x in hsv)


def _crossing_window(rx: Track, half_s: float) -> tuple[float, float]:
    """Centre-crossing times with the blockage inside the scenario and the car before RSU 2."""
    t_a, t_b = ((x - rx.start_x_m) / rx.speed_mps for x in RX_AT_CROSSING_X_M)
    lo = max(CROSS_S[0], CLEAR_S + half_s, min(t_a, t_b))
    return lo, min(CROSS_S[1], DESIGN_S - CLEAR_S - half_s, max(t_a, t_b))


def draw_motion(rng: np.random.Generator, design: str, rx: Track, fraction: float,
                length_m: float) -> tuple[float, float, float]:
    """(speed m/s, line-of-sight crossing time s, start x m) of one blocker."""
    for attempt in range(MAX_TRIES + 1):
        if attempt < MAX_TRIES:
            speed = _pick(rng, [-1.0, 1.0]) * _u(rng, BLOCKER_SPEED_KMH) * KMH
        else:                          # fallback: the fastest, against the line's motion
            speed = -np.sign(rx.speed_mps) * BLOCKER_SPEED_KMH[1] * KMH
        rel = speed - fraction * rx.speed_mps          # relative to the line's crossing point
        if abs(rel) < 0.05:
            continue
        half_s = (length_m / 2 + EDGE_MARGIN_M) / abs(rel)
        if design == 'beyond':
            t_cross = _u(rng, CROSS_S)
        elif design == 'miss':
            gap = half_s + _u(rng, MISS_GAP_S)
            t_cross = -gap if rng.random() < 0.5 else DESIGN_S + gap
        else:
            lo, hi = _crossing_window(rx, half_s)
            if lo >= hi:
                continue
            t_cross = _u(rng, (lo, hi))
        break
    x0 = fraction * (rx.start_x_m + rx.speed_mps * t_cross) - speed * t_cross
    return float(speed), t_cross, float(x0)


def draw_blocker(rng: np.random.Generator, design: str, lane: str, rx: Track
                 ) -> tuple[Track, DrawnVehicle, BlockerDraw]:
    fraction = los_fraction(lane, rx.lane)
    h_los = los_height_m(fraction)
    height = {'cut': (max(HEIGHT_M[0], h_los + ABOVE_LOS_M), HEIGHT_M[1]),
              'miss': (max(HEIGHT_M[0], h_los + ABOVE_LOS_M), HEIGHT_M[1]),
              'low': (HEIGHT_M[0], h_los - BELOW_LOS_M)}.get(design, HEIGHT_M)
    vehicle, hsv = draw_vehicle(rng, height)
    speed, t_cross, x0 = draw_motion(rng, design, rx, fraction, vehicle.length_m)
    if vehicle.shape == 'box_with_cab':
        vehicle = replace(vehicle, cab_end='+x' if speed >= 0 else '-x')
    track = Track(lane, round(x0, 3), round(speed, 4))
    return track, vehicle, BlockerDraw(design, round(t_cross, 3), hsv)


def _designs(rng: np.random.Generator, rx_lane: str, designed: bool
             ) -> list[tuple[str, str]]:
    """(design, lane) of each blocker: the first, then maybe a second in another lane."""
    between = [l for l in LANE_Y_M if abs(LANE_Y_M[l]) < abs(LANE_Y_M[rx_lane])]
    beyond = [l for l in LANE_Y_M if abs(LANE_Y_M[l]) > abs(LANE_Y_M[rx_lane])]
    if designed:
        first = ('cut', _pick(rng, between))
    else:
        design = _pick(rng, ['low', 'miss'] + (['beyond'] if beyond else []))
        first = (design, _pick(rng, beyond if design == 'beyond' else between))
    out = [first]
    if rng.random() < P_TWO_BLOCKERS:
        lane = _pick(rng, [l for l in LANE_Y_M if l not in (rx_lane, first[1])])
        if lane in beyond:
            out.append(('beyond', lane))
        else:
            out.append((_pick(rng, ['cut', 'cut', 'low', 'miss'] if designed
                              else ['low', 'miss']), lane))
    return out


def draw_photometric(rng: np.random.Generator) -> Photometric:
    return Photometric(round(_u(rng, GAIN), 4), round(_u(rng, OFFSET_DN), 3),
                       tuple(round(float(c), 4) for c in rng.uniform(*CAST, 3)),
                       round(_u(rng, NOISE_SIGMA_DN), 3))


def _story(rx: Track, blockers: list, draws: list) -> str:
    where = 'towards RSU 2' if rx.speed_mps > 0 else 'towards RSU 1'
    parts = [f'car in the {rx.lane} lane {where} at {abs(rx.speed_mps) / KMH:.1f} km/h']
    for (track, vehicle), d in zip(blockers, draws):
        shape = 'box with a cab' if vehicle.shape == 'box_with_cab' else 'box'
        parts.append(f'{d.design}: {vehicle.length_m:.1f} x {vehicle.width_m:.1f} x '
                     f'{vehicle.height_m:.1f} m {shape} in the {track.lane} lane at '
                     f'{track.speed_mps / KMH:+.1f} km/h')
    return 'random: ' + '; '.join(parts)


def make_random_scenario(index: int, seed: int) -> RandomScenario:
    """Scenario ``index`` of a ``--kinds random`` run: receiver, design, blockers, exposure."""
    rng = np.random.default_rng([seed, index, RNG_CONSTANT])
    rx = draw_receiver(rng)
    designed = bool(rng.random() < P_DESIGNED_TO_BLOCK)
    blockers, draws = [], []
    for design, lane in _designs(rng, rx.lane, designed):
        track, vehicle, draw = draw_blocker(rng, design, lane, rx)
        blockers.append((track, vehicle))
        draws.append(draw)
    kind = DrawnKind(RANDOM_KIND_SET, _story(rx, blockers, draws), designed)
    return RandomScenario(rx, tuple(blockers), index=index, kind=kind, seed=seed,
                          draws=tuple(draws), photometric=draw_photometric(rng))
