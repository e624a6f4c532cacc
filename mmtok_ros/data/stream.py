"""``WindowStream``: how a message becomes a window, the same live and offline.

In one sentence: each message is decoded and checked (``decode_input``, per-topic stamp
checks), grouped with the other topics by the ApproximateTime synchronizer, and every
synchronized frame is preprocessed (resize, BEV, RSSI hold) and pushed into the causal
window builder, which yields a window once it holds ``n_frames`` frames.

The two halves run on different threads in the node, so the stream has two calls::

    items, events = stream.accept(topic, msg)     # fast: decode + sync (callback thread)
    for item in items:                            # SyncedFrame or TimeJump, in order
        assembled = stream.assemble(item)         # slow: preprocessing + window (worker)

Offline tools call both in a row (``windows``). Nothing here imports rclpy; drops,
rejections and time jumps come back as values (``StreamEvent``) and in monotonic counters.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from ..constants import FRAME_PERIOD_MS, NS_PER_MS, S_TH_DBM
from ..errors import UserInputError
from ..model.config import ModelConfig
from .decode import DecodedCloud, decode_input
from .errors import DataError
from .sync import ApproximateTimeSynchronizer, SyncedFrame, TimeJump
from .topics import default_topic_map, role_kind, rsu_index
from .window import FrameArrays, RssiHold, Window, WindowBuilder, frame_from_synced



@dataclass(frozen=True)
class StreamConfig:
    """Synchronization and window options: the node's parameter defaults and the dataset's.

    One definition, so a window built offline from a bag equals the window the node builds
    while that bag plays (train/serve parity).
    """

    slop_ms: float = 50.0            # largest stamp spread of one synchronized frame
    partial_wait_ms: float = 150.0   # wait for a late modality before a frame goes without it
    emit_partial: bool = True        # a silent modality is marked absent, not a lost frame
    queue_size: int = 10             # messages queued per topic in the synchronizer
    time_jump_ms: float = 1000.0     # a topic's stamps going back this far: start over
    period_ms: float = FRAME_PERIOD_MS
    n_frames: int | None = None      # None: the model's
    s_th_dbm: float = S_TH_DBM
    serving_index: int = 0
    slack_ms: float = 100.0          # tolerance on frame gaps inside a window
    expected_image_wh: tuple[int, int] | None = None   # (0 in a place: any); None: any size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StreamEvent:
    """Something a user should hear about once: a rejected input or a degraded one."""

    topic: str
    reason: str    # the counter key under ``rejected/`` or ``input/``
    text: str
    first: bool    # the first of its kind on this topic: worth a log line
    rejected: bool  # the message was dropped (else used, degraded)


@dataclass(frozen=True)
class Assembled:
    """What one synchronized frame became: the frame and, once enough are held, a window."""

    frame: FrameArrays
    window: Window | None
    accepted: bool        # False: the builder dropped it (out of order)


def check_roles(cfg: ModelConfig, topic_map: Mapping[str, str]) -> None:
    """Refuse a topic map the model cannot take, with one line (never on the first frame)."""
    for topic, role in topic_map.items():
        kind = role_kind(role)
        if kind not in cfg.modalities:
            raise UserInputError(f'input {topic} ({role}) is a modality the model does not '
                                 f'use; its modalities are {list(cfg.modalities)}')
        index = rsu_index(role)
        if index is not None and index >= cfg.rssi_dim:
            raise UserInputError(f'input {topic} is RSSI of RSU {index + 1}, but the model '
                                 f'reads {cfg.rssi_dim} RSSI values (rssi_dim={cfg.rssi_dim}); '
                                 f'give at most {cfg.rssi_dim} RSSI topics')


class WindowStream:
    """decode policy -> synchronizer -> RSSI hold -> window builder, with time-jump epochs."""

    def __init__(self, cfg: ModelConfig, topic_map: Mapping[str, str] | None = None,
                 config: StreamConfig = StreamConfig()) -> None:
        self.cfg = cfg
        self.topic_map = default_topic_map() if topic_map is None else dict(topic_map)
        check_roles(cfg, self.topic_map)
        self.config = config
        self._kinds = {t: role_kind(r) for t, r in self.topic_map.items()}
        self.sync = ApproximateTimeSynchronizer(
            list(self.topic_map), slop_ns=int(config.slop_ms * NS_PER_MS),
            queue_size=config.queue_size, emit_partial=config.emit_partial,
            partial_wait_ns=int(config.partial_wait_ms * NS_PER_MS),
            jump_back_ns=int(config.time_jump_ms * NS_PER_MS))
        self.builder = WindowBuilder(
            cfg, n_frames=config.n_frames, period_ns=int(config.period_ms * NS_PER_MS),
            s_th_dbm=config.s_th_dbm, serving_index=config.serving_index,
            slack_ns=int(config.slack_ms * NS_PER_MS),
            jump_back_ns=int(config.time_jump_ms * NS_PER_MS))
        self.hold = RssiHold(cfg.rssi_dim)
        self.epoch = 0                      # bumped by every time jump (assemble side)
        self.inputs: Counter[str] = Counter()     # accept side; every counter only grows
        self.rejected: Counter[str] = Counter()
        self._last_stamp: dict[str, int] = {}

    # ------------------------------------------------------------------ fast half
    def accept(self, topic: str, msg: Any,
               ) -> tuple[list[SyncedFrame | TimeJump], list[StreamEvent]]:
        """Decode and synchronize one raw message (rclpy or rosbags) of ``topic``."""
        kind = self._kinds.get(topic)
        if kind is None:
            return [], [self._count(self.inputs, topic, 'unknown_topic',
                                    f'{topic} is not an input of this stream')]
        try:
            stamp, item = decode_input(kind, msg, expected_image_wh=self.config.expected_image_wh)
        except DataError as err:
            return [], [self._count(self.rejected, topic, type(err).__name__, str(err))]
        return self.accept_decoded(topic, stamp, item)

    def accept_decoded(self, topic: str, stamp_ns: int, item: Any,
                       ) -> tuple[list[SyncedFrame | TimeJump], list[StreamEvent]]:
        """Synchronize one decoded message (what ``read_bag_messages`` yields)."""
        events: list[StreamEvent] = []
        if topic not in self._kinds:
            return [], [self._count(self.inputs, topic, 'unknown_topic',
                                    f'{topic} is not an input of this stream')]
        problem = self._stamp_problem(topic, int(stamp_ns))
        if problem is not None:
            return [], [self._count(self.rejected, topic, *problem)]
        if isinstance(item, DecodedCloud):
            if item.n_nonfinite_dropped:
                events.append(self._count(
                    self.inputs, topic, 'nonfinite_points_dropped',
                    f'PointCloud2 on {topic} had {item.n_nonfinite_dropped} NaN/inf points; '
                    'they are dropped (counted)', by=item.n_nonfinite_dropped))
            if item.missing_optional_fields:
                events.append(self._count(
                    self.inputs, topic, 'missing_optional_fields',
                    f'PointCloud2 on {topic} lacks {list(item.missing_optional_fields)}; '
                    'filled with 0'))
        self.inputs[f'{topic}:accepted'] += 1
        jump, frames = self.sync.add_reporting_jump(topic, int(stamp_ns), item)
        if jump is not None:
            self._last_stamp = {topic: int(stamp_ns)}
            return [jump, *frames], events
        return list(frames), events

    def _stamp_problem(self, topic: str, stamp_ns: int) -> tuple[str, str] | None:
        """(reason, text) when the stamp cannot be a measurement time, else None.

        A sensor with a broken clock costs that sensor, never the other modalities: its
        messages are rejected here, before they can hold up the synchronizer.
        """
        if stamp_ns == 0:
            return 'zero_stamp', (f'{topic}: header stamp is 0; the driver does not stamp '
                                  'its messages with the measurement time')
        if self._last_stamp.get(topic) == stamp_ns:
            return 'stuck_stamp', (f'{topic}: header stamp {stamp_ns / 1e9:.3f} s repeats the '
                                   'previous message (stuck clock or a duplicate)')
        self._last_stamp[topic] = stamp_ns
        return None

    def _count(self, counter: Counter[str], topic: str, reason: str, text: str, *,
               by: int = 1) -> StreamEvent:
        key = f'{topic}:{reason}'
        first = counter[key] == 0
        counter[key] += by
        return StreamEvent(topic, key, text, first, rejected=counter is self.rejected)

    # ------------------------------------------------------------------ slow half
    def assemble(self, item: SyncedFrame | TimeJump) -> Assembled | None:
        """Preprocess one synchronized frame into the window builder; start over on a jump."""
        if isinstance(item, TimeJump):
            self.builder.counters['time_jump'] += 1
            self.builder.reset()
            self.hold.reset()
            self.epoch += 1
            return None
        frame = frame_from_synced(item, self.cfg, self.topic_map, rssi_hold=self.hold)
        window = self.builder.push(frame)
        return Assembled(frame, window, self.builder.last_accepted)

    # ------------------------------------------------------------------ offline
    def assembled(self, messages: Iterable[tuple[str, int, Any]], *,
                  raw: bool = False) -> Iterator[Assembled]:
        """Both halves in a row over (topic, stamp_ns, item) messages in arrival order.

        ``raw``: the items are messages to decode (``read_bag_messages(decode=False)``), as
        the live node receives them; otherwise decoded items.
        """
        for topic, stamp, item in messages:
            items = (self.accept(topic, item) if raw
                     else self.accept_decoded(topic, stamp, item))[0]
            for synced in items:
                out = self.assemble(synced)
                if out is not None:
                    yield out

    def stats(self) -> dict[str, int]:
        """Every counter, prefixed: sync/, window/, input/, rejected/ (all monotonic)."""
        out = {f'sync/{k}': v for k, v in self.sync.stats().items()}
        out.update({f'window/{k}': v for k, v in self.builder.counters.items()})
        out['rssi_substituted'] = self.hold.substituted
        out.update({f'input/{k}': v for k, v in sorted(self.inputs.items())})
        out.update({f'rejected/{k}': v for k, v in sorted(self.rejected.items())})
        out['rejected_total'] = sum(self.rejected.values())
        return out


def iter_windows_from_messages(
        messages: Iterable[tuple[str, int, Any]], cfg: ModelConfig, *,
        topic_map: Mapping[str, str] | None = None, config: StreamConfig = StreamConfig(),
        raw: bool = False, stats: dict[str, int] | None = None,
) -> Iterator[tuple[Window, float]]:
    """Labelled (window, label) pairs of a message stream: offline dataset building.

    The label of a window is the serving link's blockage at the next synchronized frame
    (``WindowBuilder.label``); the last window and windows before a gap or a jump have none
    and are skipped. ``stats`` (if given) gets every counter when the stream ends.
    """
    stream = WindowStream(cfg, topic_map, config)
    labels: Counter[str] = Counter({'labelled': 0, 'unlabelled': 0})
    pending: Window | None = None  # the newest window, waiting for its next frame
    for out in stream.assembled(messages, raw=raw):
        if not out.accepted:
            continue
        if pending is not None:
            label = stream.builder.label(pending, out.frame)
            labels['unlabelled' if label is None else 'labelled'] += 1
            if label is not None:
                yield pending, label
        pending = out.window
    if pending is not None:
        labels['unlabelled'] += 1  # the last window has no next frame
    if stats is not None:
        stats.update(stream.stats())
        stats.update({f'label/{k}': v for k, v in labels.items()})


def build_windows_from_messages(
        messages: Iterable[tuple[str, int, Any]], cfg: ModelConfig, **options: Any,
) -> tuple[list[Window], np.ndarray, dict[str, int]]:
    """``iter_windows_from_messages`` into lists: windows, (N,) float32 labels, counters."""
    stats: dict[str, int] = {}
    pairs = list(iter_windows_from_messages(messages, cfg, stats=stats, **options))
    labels = np.array([label for _, label in pairs], dtype=np.float32)
    return [w for w, _ in pairs], labels, stats


__all__ = ['Assembled', 'StreamConfig', 'StreamEvent', 'TimeJump', 'WindowStream',
           'build_windows_from_messages', 'check_roles', 'iter_windows_from_messages']
