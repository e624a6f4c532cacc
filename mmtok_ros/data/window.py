"""Synchronized frames -> model input frames, causal windows and link labels.

``WindowStream`` (stream.py) drives these for the live node and offline tools alike.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..constants import FRAME_PERIOD_NS, S_TH_DBM
from ..errors import UserInputError
from ..model.config import ModelConfig
from ..model.preprocess import frame_shapes, image_to_input, points_to_bev, rssi_to_input
from .decode import DecodedCloud
from .topics import role_kind, rsu_index

SUPPORTED_MODALITIES = ('image', 'lidar', 'rssi')


@dataclass
class FrameArrays:
    """One synchronized frame as model inputs; a missing modality is zeros, present False."""

    stamp_ns: int
    arrays: dict[str, np.ndarray]   # image (3, h, w), lidar (3, hb, wb), rssi (n_rsu,)
    present: dict[str, bool]
    rssi_dbm: np.ndarray            # (n_rsu,) raw RSSI in dBm, NaN where missing (labels)


@dataclass(frozen=True)
class Window:
    """``n_frames`` frames stacked on a leading T axis, oldest first, all stamped <= newest."""

    arrays: dict[str, np.ndarray]   # image (T,3,h,w), lidar (T,3,hb,wb), rssi (T,n_rsu),
    stamps_ns: np.ndarray           # (T,) int64                 present (T, M) bool
    newest_stamp_ns: int


class RssiHold:
    """Holds the last good RSSI per RSU so a dropped reading does not blank the modality."""

    def __init__(self, n_rsu: int) -> None:
        self.last_dbm = np.full(n_rsu, np.nan)
        self.substituted = 0

    def reset(self) -> None:
        """Forget the held values (time jumped back); the count goes on (it is monotonic)."""
        self.last_dbm[:] = np.nan

    def fill(self, raw_dbm: np.ndarray) -> np.ndarray:
        good = np.isfinite(raw_dbm)
        held = ~good & np.isfinite(self.last_dbm)
        self.substituted += int(np.count_nonzero(held))
        self.last_dbm[good] = raw_dbm[good]
        return np.where(good, raw_dbm, self.last_dbm)


def _check_modalities(cfg: ModelConfig) -> None:
    unsupported = [m for m in cfg.modalities if m not in SUPPORTED_MODALITIES]
    if unsupported:
        raise UserInputError(f'modalities {unsupported} have no ROS input here; the window '
                             f'layer supports {SUPPORTED_MODALITIES}')


def empty_window(cfg: ModelConfig) -> Window:
    """An all-zero window of the model's shapes, every modality present (warm-up)."""
    T = cfg.n_frames
    arrays = {m: np.zeros((T, *shape), np.float32) for m, shape in frame_shapes(cfg).items()}
    arrays['present'] = np.ones((T, len(cfg.modalities)), bool)
    stamps = np.arange(1, T + 1, dtype=np.int64)
    return Window(arrays, stamps, int(stamps[-1]))


def frame_from_synced(synced: Any, cfg: ModelConfig, topic_map: Mapping[str, str], *,
                      rssi_hold: RssiHold | None = None) -> FrameArrays:
    """A ``SyncedFrame`` of decoded items -> ``FrameArrays`` via ``model.preprocess``.

    ``topic_map`` maps topic -> role. Items: image an (H, W, 3) RGB array, lidar a
    ``DecodedCloud`` (or (P, >=4) points), rssi a (stamp_ns, dbm) tuple. Pass the same
    ``rssi_hold`` for every frame of a stream to substitute a missing RSU's last good value.
    """
    _check_modalities(cfg)
    raw_dbm = np.full(cfg.rssi_dim, np.nan)
    arrays: dict[str, np.ndarray] = {}
    for topic, role in topic_map.items():
        kind = role_kind(role)
        item = synced.items.get(topic)
        if item is None or kind not in cfg.modalities:
            continue
        if kind == 'image':
            arrays['image'] = image_to_input(item, cfg)
        elif kind == 'lidar':
            points = item.points if isinstance(item, DecodedCloud) else np.asarray(item)
            arrays['lidar'] = points_to_bev(points, cfg)
        else:
            index = rsu_index(role)
            if index >= cfg.rssi_dim:
                raise ValueError(f'role {role!r} needs rssi_dim > {index}; config has '
                                 f'rssi_dim={cfg.rssi_dim}')
            raw_dbm[index] = float(item[1])
    if 'rssi' in cfg.modalities:
        filled = rssi_hold.fill(raw_dbm) if rssi_hold is not None else raw_dbm
        if np.isfinite(filled).all():
            arrays['rssi'] = rssi_to_input(filled)
    present = {m: m in arrays for m in cfg.modalities}
    for m, shape in frame_shapes(cfg).items():
        if m not in arrays:
            arrays[m] = np.zeros(shape, dtype=np.float32)
    return FrameArrays(int(synced.stamp_ns), arrays, present, raw_dbm)


def link_blocked(rssi_dbm: np.ndarray, *, s_th_dbm: float = S_TH_DBM,
                 serving_index: int = 0) -> float | None:
    """1.0 if the serving link is blocked (RSSI < S_th), 0.0 if not, None if unknown.

    This is 1 - epsilon of the paper's Eq. 8 with S_th = -47 dBm: epsilon = 1 when the
    serving RSU's RSSI is at or above S_th (link usable), so the label is "blocked".
    """
    dbm = float(rssi_dbm[serving_index])
    if not np.isfinite(dbm):
        return None
    return 1.0 if dbm < s_th_dbm else 0.0


class WindowBuilder:
    """Keeps the last ``n_frames`` frames and stacks them into a ``Window``; strictly causal.

    A frame stamped at or before the newest frame is dropped ('out_of_order'), so a window
    for time t never holds a frame stamped after t. A frame more than ``jump_back_ns`` older
    clears the builder ('time_jump', a looped bag). Frames older than ``max_span_ns`` before
    the newest are discarded ('gap') so a window never straddles a sensor outage.
    """

    def __init__(self, cfg: ModelConfig, *, n_frames: int | None = None,
                 period_ns: int = FRAME_PERIOD_NS, s_th_dbm: float = S_TH_DBM,
                 serving_index: int = 0, slack_ns: int = 100_000_000,
                 jump_back_ns: int = 1_000_000_000) -> None:
        _check_modalities(cfg)
        self.cfg = cfg
        self.n_frames = cfg.n_frames if n_frames is None else int(n_frames)
        if self.n_frames < 1 or period_ns <= 0 or slack_ns < 0:
            raise UserInputError(f'need n_frames >= 1, period_ns > 0, slack_ns >= 0; got '
                                 f'{self.n_frames}, {period_ns}, {slack_ns}')
        if not 0 <= serving_index < cfg.rssi_dim:
            raise UserInputError(f'serving_index={serving_index} outside [0, {cfg.rssi_dim})')
        self.period_ns = int(period_ns)
        self.s_th_dbm = float(s_th_dbm)
        self.serving_index = int(serving_index)
        self.jump_back_ns = int(jump_back_ns)
        self.max_span_ns = int((self.n_frames - 1) * self.period_ns * 1.5) + int(slack_ns)
        self.max_next_ns = int(self.period_ns * 1.5) + int(slack_ns)  # for labels
        self.counters: Counter[str] = Counter(
            {'frames': 0, 'windows': 0, 'out_of_order': 0, 'gap': 0, 'time_jump': 0})
        self._frames: deque[FrameArrays] = deque()
        self._newest_ns: int | None = None
        self.last_accepted = False  # whether the last push kept its frame

    def reset(self) -> None:
        self._frames.clear()
        self._newest_ns = None

    def push(self, frame: FrameArrays) -> Window | None:
        """Add the newest frame; return the window ending at it once ``n_frames`` are held."""
        self.counters['frames'] += 1
        self.last_accepted = False
        if self._newest_ns is not None:
            if frame.stamp_ns < self._newest_ns - self.jump_back_ns:
                self.counters['time_jump'] += 1
                self.reset()
            elif frame.stamp_ns <= self._newest_ns:
                self.counters['out_of_order'] += 1
                return None
        self.last_accepted = True
        self._newest_ns = frame.stamp_ns
        self._frames.append(frame)
        while len(self._frames) > self.n_frames:
            self._frames.popleft()
        while frame.stamp_ns - self._frames[0].stamp_ns > self.max_span_ns:
            self._frames.popleft()
            self.counters['gap'] += 1
        if len(self._frames) < self.n_frames:
            return None
        self.counters['windows'] += 1
        return self._stack()

    def _stack(self) -> Window:
        frames = list(self._frames)
        arrays = {m: np.stack([f.arrays[m] for f in frames]) for m in self.cfg.modalities}
        arrays['present'] = np.array([[f.present[m] for m in self.cfg.modalities]
                                      for f in frames], dtype=bool)       # (T, M)
        stamps = np.array([f.stamp_ns for f in frames], dtype=np.int64)  # (T,)
        return Window(arrays, stamps, int(stamps[-1]))

    def label(self, window: Window, next_frame: FrameArrays) -> float | None:
        """Label of ``window``: serving-link blockage at the next synchronized frame.

        None (not labelled) when the next frame is not after the window (time jump), comes
        more than ``max_next_ns`` later (outage), or has no serving RSSI. See ``link_blocked``.
        """
        gap_ns = next_frame.stamp_ns - window.newest_stamp_ns
        if not 0 < gap_ns <= self.max_next_ns:
            return None
        return link_blocked(next_frame.rssi_dbm, s_th_dbm=self.s_th_dbm,
                            serving_index=self.serving_index)


__all__ = ['FrameArrays', 'RssiHold', 'S_TH_DBM', 'Window', 'WindowBuilder', 'empty_window',
           'frame_from_synced', 'link_blocked']
