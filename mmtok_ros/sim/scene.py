"""Testbed geometry: a straight road, two RSUs, the receiver car and one blocker vehicle.

World frame 'rsu1' (metres): origin at the foot of RSU 1's pole, x along the road towards RSU 2,
y to the left, z up. The road runs along x between y = -3.0 m (near edge, 3 m from the poles)
and y = -13.5 m, three 3.5 m lanes centred at y = -4.75 (near), -8.25 (middle), -11.75 (far).
RSU antennas sit at 4 m height, RSU 2 at x = 40 m: the layout of the paper's Fig. 4(b) (two
RSUs some tens of metres apart, one car driving from RSU 1 to RSU 2 at <= 10 km/h, a large
vehicle blocking RSU 1's link).

Why kinds with seeded perturbations: the paper's 10 scenarios differ by how the blocker moves
relative to the car; a kind fixes that story (which lane, which direction, which vehicle), the
seed varies speeds and starts a little so repeated scenarios are not copies. The kinds here are
the held-out test sets; ``randomized.py`` (``--kinds random``) draws training traffic afresh.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from .recording import rounded

KMH = 1.0 / 3.6                       # m/s per km/h
MAX_SPEED_MPS = 10.0 * KMH            # paper: at most 10 km/h

ROAD_Y_NEAR_M = -3.0
ROAD_Y_FAR_M = -13.5
LANE_WIDTH_M = 3.5
LANE_Y_M = {'near': -4.75, 'mid': -8.25, 'far': -11.75}
RSU_XYZ_M = {'rsu1': np.array([0.0, 0.0, 4.0]), 'rsu2': np.array([40.0, 0.0, 4.0])}
RSU_POLE_SIZE_M = 0.3
RECEIVER_ANTENNA_HEIGHT_M = 1.5


@dataclass(frozen=True)
class VehicleSpec:
    """An axis-aligned box on the road (long side along x)."""
    kind: str
    length_m: float
    width_m: float
    height_m: float
    color_rgb: tuple[int, int, int]

    def parts(self, lo: np.ndarray, hi: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """The boxes (min, max corner) it is made of, given its bounding box: one for a plain
        box (``randomized.DrawnVehicle`` adds a lower cab)."""
        return [(lo, hi)]

    def cab_profile(self) -> tuple[float, float, int] | None:
        """(cab length, cab height, +1 / -1: cab at the +x / -x end) for the channel's stepped
        screen; None: a plain box."""
        return None


@dataclass(frozen=True)
class Track:
    """Constant-speed motion along a lane: x(t) = start_x + speed * t (< 0: towards RSU 1)."""
    lane: str
    start_x_m: float
    speed_mps: float

    @property
    def lane_y_m(self) -> float:
        return LANE_Y_M[self.lane]

    def xy_at(self, t_s: np.ndarray | float) -> np.ndarray:
        t_s = np.asarray(t_s, float)
        x = self.start_x_m + self.speed_mps * t_s
        return np.stack([x, np.full_like(x, self.lane_y_m)], axis=-1)


CAR = VehicleSpec('car', 4.5, 1.8, 1.45, (200, 30, 35))
POLE = VehicleSpec('pole', RSU_POLE_SIZE_M, RSU_POLE_SIZE_M, 4.2, (120, 120, 125))
VEHICLES = {
    'box_truck': VehicleSpec('box_truck', 8.5, 2.5, 3.6, (235, 235, 225)),
    'semi_truck': VehicleSpec('semi_truck', 12.0, 2.55, 3.9, (40, 90, 170)),
    'bus': VehicleSpec('bus', 11.0, 2.5, 3.2, (240, 190, 30)),
    'van': VehicleSpec('van', 5.3, 2.0, 2.6, (160, 165, 170)),
    'low_van': VehicleSpec('low_van', 5.0, 1.9, 2.1, (60, 130, 70)),
    # sizes the ten default kinds never use (``NEW_SCENARIO_KINDS``)
    'articulated_bus': VehicleSpec('articulated_bus', 18.0, 2.55, 3.2, (200, 60, 40)),
    'tall_van': VehicleSpec('tall_van', 6.0, 2.1, 3.0, (250, 250, 250)),
    'camper': VehicleSpec('camper', 7.5, 2.3, 3.3, (190, 170, 130)),
    'pickup': VehicleSpec('pickup', 5.5, 2.0, 1.9, (30, 30, 30)),
}


@dataclass(frozen=True)
class ScenarioKind:
    name: str
    story: str
    receiver: Track
    blocker: Track
    blocker_vehicle: str
    blocks: bool          # designed to cut RSU 1's link (checked by the tests)
    # more blockers (track, vehicle); the channel adds their knife-edge losses (dB)
    extra_blockers: tuple[tuple[Track, str], ...] = ()


def kmh(v: float) -> float:
    """Metres per second of v km/h."""
    return v * KMH


# Interleaved so that any prefix of >= 2 kinds has a blocked and an unblocked scenario.
SCENARIO_KINDS: tuple[ScenarioKind, ...] = (
    ScenarioKind('truck_overtakes_near', 'box truck overtakes in the near lane',
                 Track('far', 2.0, kmh(5.0)), Track('near', -22.0, kmh(9.5)), 'box_truck', True),
    ScenarioKind('low_van_near_clear', 'low van in the near lane passes under the link',
                 Track('far', 0.0, kmh(6.0)), Track('near', -12.0, kmh(9.0)), 'low_van', False),
    ScenarioKind('bus_oncoming_near', 'bus comes the other way in the near lane',
                 Track('far', 0.0, kmh(5.5)), Track('near', 30.0, -kmh(8.0)), 'bus', True),
    ScenarioKind('truck_behind_far_clear', 'semi truck follows the car in its lane',
                 Track('far', 2.0, kmh(5.5)), Track('far', -12.0, kmh(5.5)), 'semi_truck',
                 False),
    ScenarioKind('van_overtakes_mid', 'van overtakes in the middle lane',
                 Track('far', 0.0, kmh(4.5)), Track('mid', -14.0, kmh(9.0)), 'van', True),
    ScenarioKind('bus_far_side_clear', 'bus beyond the car (car in the middle lane)',
                 Track('mid', 0.0, kmh(5.0)), Track('far', 32.0, -kmh(7.0)), 'bus', False),
    ScenarioKind('truck_slow_near', 'delivery truck crawls in the near lane, car passes it',
                 Track('mid', -8.0, kmh(7.0)), Track('near', 4.0, kmh(1.0)), 'box_truck', True),
    ScenarioKind('semi_oncoming_mid', 'semi truck comes the other way in the middle lane',
                 Track('far', 0.0, kmh(5.0)), Track('mid', 40.0, -kmh(9.0)), 'semi_truck', True),
    ScenarioKind('van_near_grazing_clear', 'van in the near lane, car in the middle lane',
                 Track('mid', 0.0, kmh(5.0)), Track('near', -14.0, kmh(8.5)), 'low_van', False),
    ScenarioKind('bus_overtakes_mid', 'bus overtakes slowly in the middle lane',
                 Track('far', -2.0, kmh(6.0)), Track('mid', -24.0, kmh(9.5)), 'bus', True),
)


# Kinds the default ten do not contain, for evaluation on blockages never trained on:
# other vehicle sizes (articulated bus, tall van, camper, a low pickup), speeds (a blocker at
# 10 km/h, one at 2 km/h), lanes and approach directions (the car driving from RSU 2 towards
# RSU 1, the car in the middle lane with the blocker in the near lane oncoming), and two
# blockers. ``mmtok simulate --kinds new`` cycles through them.
NEW_SCENARIO_KINDS: tuple[ScenarioKind, ...] = (
    ScenarioKind('artic_bus_overtakes_near', 'articulated bus overtakes in the near lane',
                 Track('far', 0.0, kmh(4.5)), Track('near', -30.0, kmh(9.0)),
                 'articulated_bus', True),
    ScenarioKind('pickup_near_clear', 'low pickup overtakes in the near lane, under the link',
                 Track('far', 0.0, kmh(5.0)), Track('near', -14.0, kmh(9.5)), 'pickup', False),
    ScenarioKind('tall_van_oncoming_fast_mid', 'tall van comes the other way fast, middle lane',
                 Track('far', 2.0, kmh(5.0)), Track('mid', 45.0, -kmh(10.0)), 'tall_van', True),
    ScenarioKind('camper_beyond_car_clear', 'camper in the far lane beyond the car (middle lane)',
                 Track('mid', 0.0, kmh(6.0)), Track('far', -10.0, kmh(8.0)), 'camper', False),
    ScenarioKind('car_reverse_truck_overtakes', 'car drives towards RSU 1, box truck overtakes it',
                 Track('far', 38.0, -kmh(5.0)), Track('near', 52.0, -kmh(9.5)), 'box_truck',
                 True),
    ScenarioKind('camper_crawls_mid', 'camper crawls in the middle lane, the car passes it',
                 Track('far', -6.0, kmh(7.5)), Track('mid', 6.0, kmh(2.0)), 'camper', True),
    ScenarioKind('two_blockers_camper_then_bus', 'a camper then a bus overtake in the near lane',
                 Track('far', 0.0, kmh(4.0)), Track('near', -16.0, kmh(9.5)), 'camper', True,
                 ((Track('near', -48.0, kmh(9.5)), 'bus'),)),
    ScenarioKind('two_blockers_crossing', 'truck overtakes (near lane) while a semi comes the '
                 'other way (middle lane)',
                 Track('far', 0.0, kmh(5.0)), Track('near', -22.0, kmh(9.0)), 'box_truck', True,
                 ((Track('mid', 48.0, -kmh(8.0)), 'semi_truck'),)),
)
KIND_SETS: dict[str, tuple[ScenarioKind, ...]] = {
    'default': SCENARIO_KINDS, 'new': NEW_SCENARIO_KINDS,
    'all': SCENARIO_KINDS + NEW_SCENARIO_KINDS}


@dataclass(frozen=True)
class Traffic:
    """The receiver car and the blockers of one scenario, moving along the road."""
    receiver: Track
    blockers: tuple[tuple[Track, VehicleSpec], ...]       # (track, vehicle), the main one first
    photometric = None    # not a field: the camera jitter of a drawn scenario (randomized.py)

    def receiver_antenna_xyz_m(self, t_s: np.ndarray) -> np.ndarray:
        xy = self.receiver.xy_at(t_s)
        return np.concatenate([xy, np.full(xy.shape[:-1] + (1,), RECEIVER_ANTENNA_HEIGHT_M)], -1)

    def boxes_at(self, t_s: float) -> list[tuple[np.ndarray, np.ndarray, VehicleSpec]]:
        """Axis-aligned boxes (min corner, max corner, spec) of the moving vehicles at t."""
        out = []
        for track, spec in ((self.receiver, CAR), *self.blockers):
            x, y = track.xy_at(t_s)
            half = np.array([spec.length_m / 2, spec.width_m / 2])
            lo = np.array([x - half[0], y - half[1], 0.0])
            hi = np.array([x + half[0], y + half[1], spec.height_m])
            out.append((lo, hi, spec))
        return out


@dataclass(frozen=True)
class Scenario(Traffic):
    """One concrete testbed scenario: a kind with its seeded speeds/starts."""
    index: int
    kind: ScenarioKind
    seed: int

    @property
    def blocker(self) -> Track:
        return self.blockers[0][0]

    @property
    def blocker_vehicle(self) -> VehicleSpec:
        return self.blockers[0][1]

    @property
    def extra_blockers(self) -> tuple[tuple[Track, VehicleSpec], ...]:
        return self.blockers[1:]

    def describe(self) -> dict:
        out = {'kind': self.kind.name, 'story': self.kind.story,
               'designed_to_block': self.kind.blocks, 'seed': self.seed,
               'receiver': asdict(self.receiver), 'blocker': asdict(self.blocker),
               'blocker_vehicle': asdict(self.blocker_vehicle)}
        if self.extra_blockers:   # absent for one blocker: the default kinds' bytes stay as before
            out['extra_blockers'] = [{'track': asdict(t), 'vehicle': asdict(v)}
                                     for t, v in self.extra_blockers]
        return out

    def blocker_positions(self, t_s: float) -> dict:
        """The sidecar's per-frame blocker positions (metres, rounded)."""
        out = {'blocker_xy_m': rounded(self.blocker.xy_at(t_s))}
        if self.extra_blockers:
            out['extra_blockers_xy_m'] = [rounded(t.xy_at(t_s)) for t, _ in self.extra_blockers]
        return out


def jitter_track(track: Track, rng: np.random.Generator) -> Track:
    """One instance of a kind's track: speed x U(0.94, 1.06) (within the speed cap), start
    +-0.6 m; the draws in this order, so a seed gives the same scenarios."""
    v = float(np.clip(track.speed_mps * rng.uniform(0.94, 1.06), -MAX_SPEED_MPS, MAX_SPEED_MPS))
    return replace(track, start_x_m=round(track.start_x_m + rng.uniform(-0.6, 0.6), 3),
                   speed_mps=round(v, 4))


def make_scenario(index: int, seed: int, kinds: tuple[ScenarioKind, ...] = SCENARIO_KINDS
                  ) -> Scenario:
    """Scenario ``index`` of a run: kind ``index % len(kinds)``, speeds x U(0.94, 1.06),
    starts +-0.6 m (extra blockers drawn after the main ones, so one-blocker kinds draw as
    before)."""
    kind = kinds[index % len(kinds)]
    rng = np.random.default_rng([seed, index, 0x5CE])

    def jitter(track: Track) -> Track:
        return jitter_track(track, rng)

    receiver, blocker = jitter(kind.receiver), jitter(kind.blocker)
    extra = tuple((jitter(track), VEHICLES[vehicle]) for track, vehicle in kind.extra_blockers)
    return Scenario(receiver, ((blocker, VEHICLES[kind.blocker_vehicle]), *extra), index=index,
                    kind=kind, seed=seed)
