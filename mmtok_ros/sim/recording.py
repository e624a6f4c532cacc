"""How the simulated RSUs record: seeded streams, stamp jitter, transport delay and drops.

One set of numbers for every road layout (the two-RSU testbed and N RSUs along a road). Frame k
has the nominal time t0 + k * FRAME_PERIOD_NS; a sensor message is stamped at the nominal time
plus that sensor's jitter, which is a per-scenario phase offset (sensors are not triggered
together) plus a small per-message jitter, so the period stays 300 ms while modalities disagree
by tens of milliseconds (|jitter| <= 40 ms, within the testbed's ~50 ms synchronisation). The
message is logged a transport delay later, and each message is dropped with a small base
probability.

Determinism: every random quantity comes from ``seeded_rng(seed, scenario, stream)``, one named
stream per purpose, so the same seed writes the same bytes and extra drops in one modality leave
every other draw unchanged.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from ..constants import NS_PER_MS
from ..errors import OutputExistsError, UserInputError

SCENARIO_SPACING_NS = 3_600 * 1_000_000_000   # scenario i starts at t0 + i hours
BASE_DROP_PROB = 0.015                        # every sensor message, independently
MODALITIES = ('image', 'lidar', 'rssi')       # the sensors of an RSU, as in stream.sensor
DEFAULT_EXTRA_DROP_PROB = 0.2                 # of a bare --drop-modality name

# per sensor: phase offset U(-a, a) ms once per scenario; transport delay N(mean, sd) ms
PHASE_OFFSET_MS = {'image': 25.0, 'lidar': 15.0, 'rssi': 20.0}
DELAY_MS = {'image': (6.0, 1.5), 'lidar': (4.0, 1.0), 'rssi': (2.0, 0.5)}
DELAY_CLIP_MS = (1.0, 10.0)


def seeded_rng(seed: int, index: int, stream: str) -> np.random.Generator:
    """The generator of one named random stream of scenario ``index``."""
    return np.random.default_rng([seed, index, zlib.crc32(stream.encode())])


def _per_message_jitter_ms(sensor: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """Camera: normal, sigma 5 ms, clipped to +-15 ms; LiDAR U(-5, 5) ms; RSSI U(-10, 10) ms."""
    if sensor == 'image':
        return np.clip(rng.normal(0, 5, n), -15, 15)
    if sensor == 'lidar':
        return rng.uniform(-5, 5, n)
    return rng.uniform(-10, 10, n)


def stamp_timing(seed: int, index: int, streams, n: int) -> dict[str, np.ndarray]:
    """{key: stamp jitter, key + '_delay': transport delay} in integer ns per sensor stream.

    ``streams`` have ``key``, ``sensor`` and ``timing_stream``, the name of their seeded
    generator; streams that name the same one share it. The draws go phase offsets first, then
    per-message jitters, then delays, each in stream order, so a shared generator gives a fixed
    sequence.
    """
    generators: dict[str, np.random.Generator] = {}
    for s in streams:
        if s.timing_stream not in generators:
            generators[s.timing_stream] = seeded_rng(seed, index, s.timing_stream)
    rng_of = {s.key: generators[s.timing_stream] for s in streams}
    offset = {s.key: rng_of[s.key].uniform(-PHASE_OFFSET_MS[s.sensor], PHASE_OFFSET_MS[s.sensor])
              for s in streams}
    jitter = {s.key: _per_message_jitter_ms(s.sensor, rng_of[s.key], n) for s in streams}
    delay = {s.key: rng_of[s.key].normal(*DELAY_MS[s.sensor], n) for s in streams}
    out = {}
    for s in streams:
        out[s.key] = np.round((offset[s.key] + jitter[s.key]) * NS_PER_MS).astype(np.int64)
        out[s.key + '_delay'] = np.round(np.clip(delay[s.key], *DELAY_CLIP_MS)
                                         * NS_PER_MS).astype(np.int64)
    return out


def message_drops(seed: int, index: int, streams, n: int,
                  extra: tuple[str, float] | None) -> dict[str, np.ndarray]:
    """{key: dropped?} per frame: the base drops, plus ``extra`` = (sensor, probability) from a
    stream of its own (so the other modalities' drops stay as without it)."""
    rng = seeded_rng(seed, index, 'drops')
    out = {s.key: rng.random(n) < BASE_DROP_PROB for s in streams}
    if extra is not None:
        rng_extra = seeded_rng(seed, index, 'xdrops')
        for s in streams:
            if s.sensor == extra[0]:
                out[s.key] |= rng_extra.random(n) < extra[1]
    return out


def parse_drop_modality(spec: str | tuple[str, float] | None) -> tuple[str, float] | None:
    """'image:0.2' or ('image', 0.2) -> ('image', 0.2); a bare name means probability 0.2."""
    if spec is None or spec == '':
        return None
    if isinstance(spec, str):
        name, _, prob = spec.partition(':')
        spec = (name, float(prob) if prob else DEFAULT_EXTRA_DROP_PROB)
    name, prob = spec[0].strip(), float(spec[1])
    if name not in MODALITIES:
        raise UserInputError(f'drop modality must be one of {MODALITIES}, not {name!r}')
    if not 0.0 <= prob <= 1.0:
        raise UserInputError(f'drop probability must be in [0, 1], not {prob}')
    return name, prob


def blocked_runs(blocked: np.ndarray, t_ns: np.ndarray) -> list[list[int]]:
    """[[first_ns, last_ns], ...] of the runs of consecutive blocked frames."""
    runs, start = [], None
    for k, b in enumerate(blocked):
        if b and start is None:
            start = k
        if start is not None and (not b or k == len(blocked) - 1):
            end = k if b else k - 1
            runs.append([int(t_ns[start]), int(t_ns[end])])
            start = None
    return runs


def rounded(x, nd: int = 3):
    """A number or vector rounded for a JSON sidecar (fixed digits: the same bytes each run)."""
    if x is None:
        return None
    return [round(float(v), nd) for v in x] if np.ndim(x) else round(float(x), nd)


def refuse_to_overwrite(out_dir: str | Path, n_scenarios: int) -> Path:
    """``out_dir``, created, after checking no scenario bag or sidecar would be overwritten."""
    out = Path(out_dir)
    for i in range(n_scenarios):
        for p in (out / f'scenario_{i:02d}', out / f'scenario_{i:02d}.truth.json'):
            if p.exists():
                raise OutputExistsError(f'{p} exists already; refusing to overwrite '
                                      '(choose another output directory or delete it)')
    out.mkdir(parents=True, exist_ok=True)
    return out
