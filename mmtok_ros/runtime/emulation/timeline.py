"""The frames of one scenario as the emulation sees them, for any N >= 2 RSUs.

A :class:`Timeline` holds, per frame, its nominal time, every RSU's true RSSI (what the car
receives when that RSU serves), every RSU's measured RSSI (what the RSU reported; NaN where
the report was lost) and each link's blockage intervals. It is built from a truth sidecar of
``mmtok simulate`` (testbed or road) or, without one, from measured samples.

:func:`frame_index` is the one rule that puts a stamped sample (an RSSI report, a window's
newest frame) on a frame: the nearest frame within half a period, else none.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ...constants import FRAME_PERIOD_NS, NS_PER_S, S_TH_DBM
from ...errors import InputFileNotFoundError, UserInputError

ROAD_TRUTH_PREFIX = 'road/'


@dataclass
class Timeline:
    """Frames of one scenario (see the module docstring); ``home_rsu`` serves at frame 0."""

    t_ns: np.ndarray                               # (F,) int64, ascending
    rssi_dbm: dict[str, np.ndarray]                # rsu -> (F,) true RSSI, NaN where unknown
    measured_dbm: dict[str, np.ndarray]            # rsu -> (F,) measured RSSI, NaN: lost
    link_intervals_ns: dict[str, list[tuple[int, int]]]   # rsu -> [(first, last) frame time]
    home_rsu: str
    period_ns: int = FRAME_PERIOD_NS
    s_th_dbm: float = S_TH_DBM
    name: str = ''
    extra: dict = field(default_factory=dict)      # kind and the like, for reports

    @property
    def rsus(self) -> tuple[str, ...]:
        return tuple(self.rssi_dbm)

    @property
    def t0_ns(self) -> int:
        return int(self.t_ns[0]) if len(self.t_ns) else 0

    @property
    def blockage_intervals_ns(self) -> list[tuple[int, int]]:
        """The blockages of the link serving at the first frame."""
        return self.link_intervals_ns.get(self.home_rsu, [])

    def seconds(self, t_ns: int) -> float:
        """Time since the first frame, in s."""
        return (int(t_ns) - self.t0_ns) / NS_PER_S


def frame_index(t_ns: np.ndarray, stamp_ns: int, period_ns: int) -> int | None:
    """The frame nearest ``stamp_ns`` if it lies within half a period, else None."""
    if not len(t_ns):
        return None
    k = int(np.argmin(np.abs(t_ns - int(stamp_ns))))
    return k if abs(int(t_ns[k]) - int(stamp_ns)) <= period_ns // 2 else None


def values_on_frames(t_ns: np.ndarray, samples: Iterable[tuple[int, float]],
                     period_ns: int) -> np.ndarray:
    """(stamp_ns, value) samples -> one value per frame by :func:`frame_index` (a later sample
    for the same frame wins), NaN where none lands."""
    out = np.full(len(t_ns), np.nan)
    for stamp, value in samples:
        k = frame_index(t_ns, stamp, period_ns)
        if k is not None:
            out[k] = value
    return out


def blocked_intervals(t_ns: np.ndarray, dbm: np.ndarray,
                      s_th_dbm: float) -> list[tuple[int, int]]:
    """[first, last] frame times of each run of frames with RSSI below S_th (NaN: not)."""
    runs, start = [], None
    blocked = np.nan_to_num(dbm, nan=np.inf) < s_th_dbm
    for k, b in enumerate(blocked):
        if b and start is None:
            start = k
        if start is not None and (not b or k == len(blocked) - 1):
            runs.append((int(t_ns[start]), int(t_ns[k if b else k - 1])))
            start = None
    return runs


# --------------------------------------------------------------------------- truth sidecars
def load_truth(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def is_road_truth(truth: Mapping) -> bool:
    return str(truth.get('version', '')).startswith(ROAD_TRUTH_PREFIX)


def bags_and_truths(data_dir: str | Path, bags_arg: str, names: list[str],
                    ) -> tuple[list[str], dict[str, dict]]:
    """The bags ``--bags`` names (all of ``names`` when empty) and their truth sidecars;
    one clear error for an unknown bag or a missing sidecar."""
    wanted = [b for b in bags_arg.split(',') if b] or list(names)
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise UserInputError(f'--bags {unknown} are not bags in {data_dir}; have {sorted(names)}')
    truths = {}
    for name in wanted:
        path = Path(data_dir) / f'{name}.truth.json'
        if not path.is_file():
            raise InputFileNotFoundError(f'truth sidecar not found: {path} (the oracle and the '
                                    'true served RSSI need it; mmtok simulate writes one)')
        truths[name] = load_truth(path)
    return wanted, truths


def _series(frames: Sequence[Mapping], key: str, rsu: str) -> np.ndarray:
    return np.array([np.nan if f[key].get(rsu) is None else f[key][rsu] for f in frames],
                    dtype=float)


def timeline_from_truth(truth: Mapping, *, home_rsu: str | None = None) -> Timeline:
    """A sidecar of ``mmtok simulate`` -> :class:`Timeline`.

    Testbed sidecars record the blockages of RSU 1's link only; the car starts on RSU 1.
    Road sidecars record every link's; the car starts on the RSU measured best at frame 0.
    ``home_rsu`` overrides the first serving RSU.
    """
    frames = truth['frames']
    t_ns = np.array([f['t_nominal_ns'] for f in frames], dtype=np.int64)
    if is_road_truth(truth):
        rsus = tuple(truth['rsus'])
        links = {r: [(int(a), int(b)) for a, b in truth['link_blockage_intervals_ns'].get(r, [])]
                 for r in rsus}
    else:
        rsus = tuple(sorted(frames[0]['true_rssi_dbm'])) if frames else ('rsu1', 'rsu2')
        links = {r: [] for r in rsus}
        links[rsus[0]] = [(int(a), int(b)) for a, b in truth.get('blockage_intervals_ns', [])]
    true = {r: _series(frames, 'true_rssi_dbm', r) for r in rsus}
    measured = {r: _series(frames, 'measured_rssi_dbm', r) for r in rsus}
    if home_rsu is None:
        home_rsu = rsus[0]
        if is_road_truth(truth) and frames:
            first = [measured[r][0] if math.isfinite(measured[r][0]) else -math.inf
                     for r in rsus]
            home_rsu = rsus[int(np.argmax(first))]
    return Timeline(t_ns, true, measured, links, home_rsu,
                    int(truth.get('frame_period_ns', FRAME_PERIOD_NS)),
                    float(truth.get('s_th_dbm', S_TH_DBM)), str(truth.get('scenario', '')),
                    {'kind': truth.get('kind')})


def with_measured(timeline: Timeline,
                  samples: Mapping[str, Sequence[tuple[int, float]]]) -> Timeline:
    """``timeline`` with the measured RSSI of every RSU that has samples replaced by them
    (matched by :func:`frame_index`): what a live listener received."""
    measured = dict(timeline.measured_dbm)
    for rsu, values in samples.items():
        if values and rsu in measured:
            measured[rsu] = values_on_frames(timeline.t_ns, values, timeline.period_ns)
    return Timeline(timeline.t_ns, timeline.rssi_dbm, measured, timeline.link_intervals_ns,
                    timeline.home_rsu, timeline.period_ns, timeline.s_th_dbm, timeline.name,
                    dict(timeline.extra))


def timeline_from_samples(samples: Mapping[str, Sequence[tuple[int, float]]], *,
                          home_rsu: str, period_ns: int = FRAME_PERIOD_NS,
                          s_th_dbm: float = S_TH_DBM, name: str = '') -> Timeline:
    """Measured (stamp_ns, dBm) samples per RSU, without a truth sidecar: frames on the home
    RSU's stamps, the measurements taken as the truth, the home link's blockages = its runs
    below S_th (the other links' are unknown without a sidecar, as in a testbed sidecar)."""
    t_ns = np.array(sorted(s for s, _ in samples.get(home_rsu, [])), dtype=np.int64)
    values = {r: values_on_frames(t_ns, sorted(v), period_ns) for r, v in samples.items()}
    links = {r: [] for r in values}
    links[home_rsu] = blocked_intervals(t_ns, values[home_rsu], s_th_dbm)
    return Timeline(t_ns, values, {r: v.copy() for r, v in values.items()}, links, home_rsu,
                    period_ns, s_th_dbm, name)


__all__ = ['Timeline', 'bags_and_truths', 'blocked_intervals', 'frame_index', 'is_road_truth',
           'load_truth', 'timeline_from_samples', 'timeline_from_truth', 'values_on_frames',
           'with_measured']
