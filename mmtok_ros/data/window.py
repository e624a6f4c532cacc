"""Synchronized frames -> model input windows and link labels; bag reading for offline use.

The live node and offline dataset building run the same path (train/serve parity):
decoded messages -> ``ApproximateTimeSynchronizer`` -> ``frame_from_synced`` ->
``WindowBuilder.push``. ``build_windows_from_messages`` is that loop over a message list.
"""
from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..model.config import ModelConfig
from ..model.preprocess import BEV_CHANNELS, image_to_input, points_to_bev, rssi_to_input
from .decode import DecodedCloud, decode_image, decode_pointcloud2, decode_rssi, stamp_ns
from .errors import BagReadError
from .sync import ApproximateTimeSynchronizer
from .topics import DEFAULT_TOPICS, MSG_TYPES, default_topic_map, role_kind, rsu_index

_log = logging.getLogger(__name__)

S_TH_DBM = -47.0            # S_th of the paper's Eq. 8: below it the serving link is blocked
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

    def fill(self, raw_dbm: np.ndarray) -> np.ndarray:
        good = np.isfinite(raw_dbm)
        held = ~good & np.isfinite(self.last_dbm)
        self.substituted += int(np.count_nonzero(held))
        self.last_dbm[good] = raw_dbm[good]
        return np.where(good, raw_dbm, self.last_dbm)


def _check_modalities(cfg: ModelConfig) -> None:
    unsupported = [m for m in cfg.modalities if m not in SUPPORTED_MODALITIES]
    if unsupported:
        raise ValueError(f'modalities {unsupported} have no ROS input here; the window layer '
                         f'supports {SUPPORTED_MODALITIES}')


def _zeros(modality: str, cfg: ModelConfig) -> np.ndarray:
    shape = {'image': (3, *cfg.image_hw), 'lidar': (BEV_CHANNELS, *cfg.bev_hw),
             'rssi': (cfg.rssi_dim,)}[modality]
    return np.zeros(shape, dtype=np.float32)


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
    for m in cfg.modalities:
        arrays.setdefault(m, _zeros(m, cfg))
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
                 period_ns: int = 300_000_000, s_th_dbm: float = S_TH_DBM,
                 serving_index: int = 0, slack_ns: int = 100_000_000,
                 jump_back_ns: int = 1_000_000_000) -> None:
        _check_modalities(cfg)
        self.cfg = cfg
        self.n_frames = cfg.n_frames if n_frames is None else int(n_frames)
        if self.n_frames < 1 or period_ns <= 0 or slack_ns < 0:
            raise ValueError(f'need n_frames >= 1, period_ns > 0, slack_ns >= 0; got '
                             f'{self.n_frames}, {period_ns}, {slack_ns}')
        if not 0 <= serving_index < cfg.rssi_dim:
            raise ValueError(f'serving_index={serving_index} outside [0, {cfg.rssi_dim})')
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


def label_windows(pairs: Iterable[tuple[Window, FrameArrays | None]],
                  builder: WindowBuilder) -> np.ndarray:
    """(window, next frame) pairs -> (N,) float32 labels, NaN where a window is unlabelled."""
    labels = [builder.label(w, f) if f is not None else None for w, f in pairs]
    return np.array([np.nan if v is None else v for v in labels], dtype=np.float32)


def iter_windows_from_messages(
        messages: Iterable[tuple[str, int, Any]], cfg: ModelConfig, *,
        topic_map: Mapping[str, str] | None = None, slop_ns: int = 50_000_000,
        queue_size: int = 10, emit_partial: bool = False, partial_wait_ns: int = 0,
        n_frames: int | None = None, period_ns: int = 300_000_000,
        s_th_dbm: float = S_TH_DBM, serving_index: int = 0, slack_ns: int = 100_000_000,
        jump_back_ns: int = 1_000_000_000, stats: dict[str, int] | None = None,
) -> Iterator[tuple[Window, float]]:
    """Streams labelled (window, label) pairs; use it when all windows won't fit in memory.

    ``stats`` (if given) is filled with prefixed counters when the stream ends.
    """
    topic_map = default_topic_map() if topic_map is None else dict(topic_map)
    sync = ApproximateTimeSynchronizer(list(topic_map), slop_ns=slop_ns, queue_size=queue_size,
                                       emit_partial=emit_partial, jump_back_ns=jump_back_ns,
                                       partial_wait_ns=partial_wait_ns)
    builder = WindowBuilder(cfg, n_frames=n_frames, period_ns=period_ns, s_th_dbm=s_th_dbm,
                            serving_index=serving_index, slack_ns=slack_ns,
                            jump_back_ns=jump_back_ns)
    hold = RssiHold(cfg.rssi_dim)
    labels: Counter[str] = Counter({'labelled': 0, 'unlabelled': 0, 'unknown_topic': 0})
    pending: Window | None = None  # the newest window, waiting for its next frame
    for topic, stamp, item in messages:
        if topic not in topic_map:
            labels['unknown_topic'] += 1
            continue
        for synced in sync.add(topic, stamp, item):
            frame = frame_from_synced(synced, cfg, topic_map, rssi_hold=hold)
            window = builder.push(frame)
            if not builder.last_accepted:
                continue
            if pending is not None:
                label = builder.label(pending, frame)
                labels['unlabelled' if label is None else 'labelled'] += 1
                if label is not None:
                    yield pending, label
            pending = window
    if pending is not None:
        labels['unlabelled'] += 1  # the last window has no next frame
    if stats is not None:
        stats.update({f'sync/{k}': v for k, v in sync.stats().items()})
        stats.update({f'window/{k}': v for k, v in builder.counters.items()})
        stats.update({f'label/{k}': v for k, v in labels.items()})
        stats['frame/rssi_substituted'] = hold.substituted


def build_windows_from_messages(
        messages: Iterable[tuple[str, int, Any]], cfg: ModelConfig, *,
        topic_map: Mapping[str, str] | None = None, slop_ns: int = 50_000_000,
        **options: Any) -> tuple[list[Window], np.ndarray, dict[str, int]]:
    """Offline dataset building: the live node's sync + window path over ``messages``.

    ``messages`` are (topic, stamp_ns, decoded item) in arrival (log-time) order, e.g. from
    ``read_bag_messages``. Returns the labelled windows, their (N,) float32 labels (1.0 =
    serving link blocked at the next frame) and the drop/label counters. Options are those
    of ``iter_windows_from_messages``. Windows hold copies; stream with the iterator for
    long bags.
    """
    stats: dict[str, int] = {}
    pairs = list(iter_windows_from_messages(messages, cfg, topic_map=topic_map,
                                            slop_ns=slop_ns, stats=stats, **options))
    windows = [w for w, _ in pairs]
    labels = np.array([label for _, label in pairs], dtype=np.float32)
    return windows, labels, stats


# --------------------------------------------------------------------------- bag reading
def _decode_stamped(kind: str, msg: Any) -> tuple[int, Any]:
    if kind == 'rssi':
        stamp, dbm = decode_rssi(msg)
        return stamp, (stamp, dbm)
    decoded = decode_image(msg) if kind == 'image' else decode_pointcloud2(msg)
    return stamp_ns(msg.header), decoded


def read_bag_messages(bag_dir: str | Path, topics: Sequence[str] | None = None, *,
                      counters: Counter[str] | None = None,
                      ) -> Iterator[tuple[str, int, Any]]:
    """(topic, header stamp_ns, decoded item) from a rosbag2 directory, in log-time order.

    Reading the bag directly (not ``ros2 bag play``) makes offline evaluation deterministic.
    Malformed messages are skipped, counted in ``counters['malformed']`` and logged once per
    topic; a missing or corrupt bag raises ``BagReadError``.
    """
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    path = Path(bag_dir)
    wanted = list(DEFAULT_TOPICS.values()) if topics is None else list(topics)
    counters = Counter() if counters is None else counters
    if not path.exists():
        raise BagReadError(f'bag {path} does not exist; expected a rosbag2 directory')
    try:
        reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_KILTED))
        reader.open()
    except Exception as err:  # rosbags raises several types for unreadable metadata/storage
        raise BagReadError(f'cannot open bag {path} (corrupt or not a rosbag2 directory): '
                           f'{err}') from err
    try:
        kinds = {v: k for k, v in MSG_TYPES.items()}
        connections = [c for c in reader.connections if c.topic in wanted]
        for c in connections:
            if c.msgtype not in kinds:
                raise BagReadError(f'bag {path}: topic {c.topic} has type {c.msgtype}; '
                                   f'expected one of {sorted(kinds)}')
        absent = sorted(set(wanted) - {c.topic for c in connections})
        if absent:
            _log.warning('bag %s has no messages on %s', path, ', '.join(absent))
        messages = reader.messages(connections=connections)
        while True:
            try:
                conn, _, raw = next(messages)
            except StopIteration:
                return
            except Exception as err:
                raise BagReadError(f'bag {path} is corrupt: {err}') from err
            try:
                msg = reader.deserialize(raw, conn.msgtype)
                stamp, item = _decode_stamped(kinds[conn.msgtype], msg)
            except Exception as err:  # DataError or a deserializer error: skip, never stop
                counters['malformed'] += 1
                counters[f'malformed{conn.topic}'] += 1
                if counters[f'malformed{conn.topic}'] == 1:
                    _log.warning('bag %s: skipping malformed message on %s: %s (further ones '
                                 'on this topic are only counted)', path, conn.topic, err)
                continue
            counters['read'] += 1
            yield conn.topic, stamp, item
    finally:
        reader.close()


__all__ = ['FrameArrays', 'RssiHold', 'S_TH_DBM', 'Window', 'WindowBuilder',
           'build_windows_from_messages', 'frame_from_synced', 'iter_windows_from_messages',
           'label_windows', 'link_blocked', 'read_bag_messages']
