"""Approximate-time synchronization of K named inputs, in pure Python on integer ns stamps.

Semantics follow message_filters' ApproximateTime policy: one message per topic, the set
with the smallest stamp spread wins, everything older than an emitted set is discarded. Two
differences, both for latency on a live robot: a set is emitted as soon as it exists with a
spread <= ``slop_ns`` (the C++ policy waits for one more message per topic to prove the set
optimal), and ``slop_ns`` bounds the spread (like the Python ``slop``). Messages may arrive
out of order per topic by up to ``slop_ns``: a set is given up only once every missing topic
is more than two slops past it, so a late message can still complete it.

Drops are counted by reason in ``counters`` (see ``COUNTER_NAMES``): 'too_old' (at or before
the last emitted set), 'no_partner' (skipped: no partner within slop on some topic),
'queue_full', 'duplicate' (same stamp twice on a topic), 'time_jump' (a topic's stamps went
back by more than ``jump_back_ns``: queues cleared); and sets by kind: 'emitted', 'partial'.

The synchronizer only moves references around under its lock; ``add`` returns the completed
sets and the caller does the slow work (resizing, BEV, inference) outside.
"""
from __future__ import annotations

import bisect
import logging
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import UserInputError

_log = logging.getLogger(__name__)

COUNTER_NAMES = ('emitted', 'partial', 'too_old', 'no_partner', 'queue_full', 'duplicate',
                 'time_jump')
_RECENT = 16  # stamps remembered per topic for duplicate detection and period estimates


@dataclass(frozen=True)
class SyncedFrame:
    """One synchronized set; in a partial frame the missing topics map to None."""

    stamp_ns: int                       # newest stamp in the set
    items: dict[str, Any]
    stamps_ns: dict[str, int | None]

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(t for t, s in self.stamps_ns.items() if s is None)


@dataclass(frozen=True)
class TimeJump:
    """A topic's own stamps went back by more than the jump threshold: start over."""

    topic: str
    from_ns: int
    to_ns: int


class ApproximateTimeSynchronizer:
    """Groups messages of ``topics`` whose stamps lie within ``slop_ns`` of each other.

    ``emit_partial``: when a set has to be given up because a topic has nothing within slop
    while the present topics have moved past it, emit it with that topic set to None instead
    of dropping it, so a silent or dropped modality still yields frames. A topic that is
    merely slower (it has a message within half its period of the set) never makes partials:
    the faster topic's extra messages are dropped as 'no_partner'. ``partial_wait_ns`` delays
    that decision for topics that arrive late (processing latency) rather than not at all.
    """

    def __init__(self, topics: Sequence[str], *, slop_ns: int, queue_size: int = 10,
                 emit_partial: bool = False, jump_back_ns: int = 1_000_000_000,
                 partial_wait_ns: int = 0) -> None:
        if len(topics) == 0 or len(set(topics)) != len(topics):
            raise UserInputError(f'topics must be non-empty and unique, got {list(topics)}')
        if slop_ns < 0 or queue_size < 1 or jump_back_ns <= 0 or partial_wait_ns < 0:
            raise UserInputError(f'need slop_ns >= 0, queue_size >= 1, jump_back_ns > 0, '
                                 f'partial_wait_ns >= 0; got {slop_ns}, {queue_size}, '
                                 f'{jump_back_ns}, {partial_wait_ns}')
        self.topics = tuple(topics)
        self.slop_ns = int(slop_ns)
        self.queue_size = int(queue_size)
        self.emit_partial = bool(emit_partial)
        self.jump_back_ns = int(jump_back_ns)
        self.partial_wait_ns = int(partial_wait_ns)
        self.counters: Counter[str] = Counter({name: 0 for name in COUNTER_NAMES})
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        """Forget every queued message and stamp: the start of a new time epoch."""
        # per topic: stamps sorted ascending, and the items in the same order
        self._stamps: dict[str, list[int]] = {t: [] for t in self.topics}
        self._items: dict[str, list[Any]] = {t: [] for t in self.topics}
        self._recent: dict[str, deque[int]] = {t: deque(maxlen=_RECENT) for t in self.topics}
        self._newest: dict[str, int | None] = {t: None for t in self.topics}
        self._emitted_ns: dict[str, int | None] = {t: None for t in self.topics}
        self._last_set_oldest_ns: int | None = None
        self._newest_any_ns: int | None = None
        self._first_any_ns: int | None = None

    # ------------------------------------------------------------------ public API
    def add(self, topic: str, stamp_ns: int, item: Any) -> list[SyncedFrame]:
        """Queue one message; return the sets it completed (oldest first)."""
        return self.add_reporting_jump(topic, stamp_ns, item)[1]

    def add_reporting_jump(self, topic: str, stamp_ns: int, item: Any,
                           ) -> tuple[TimeJump | None, list[SyncedFrame]]:
        """``add``, also returning the time jump back this message caused (queues cleared)."""
        if topic not in self._stamps:
            raise ValueError(f'unknown topic {topic!r}; this synchronizer has {self.topics}')
        stamp_ns = int(stamp_ns)
        jump = None
        with self._lock:
            # A jump is this topic's OWN stamps going back (a looped bag, a restarted clock).
            # One stalled topic whose backlog arrives late is older than the other topics'
            # newest but newer than its own: that is lateness ('too_old'), not a jump, and
            # must not throw away every other topic's windows.
            newest = self._newest[topic]
            if newest is not None and stamp_ns < newest - self.jump_back_ns:
                jump = TimeJump(topic, newest, stamp_ns)
                self.counters['time_jump'] += 1
                self._reset()
            out: list[SyncedFrame] = []
            if self._accept(topic, stamp_ns, item):
                self._process(out)
        if jump is not None:  # log outside the lock
            _log.warning('time jumped back %.3f s on %s (looped bag or restarted clock); '
                         'synchronizer queues cleared', (jump.from_ns - jump.to_ns) / 1e9, topic)
        return jump, out

    def stats(self) -> dict[str, int]:
        """A snapshot of the drop/emit counters, for /diagnostics."""
        with self._lock:
            return dict(self.counters)

    def silent_topics(self, now_ns: int, after_ns: int) -> list[str]:
        """Topics with no message stamped within ``after_ns`` before ``now_ns``.

        A topic never heard from counts as silent once ``after_ns`` has passed since the
        first message of any topic.
        """
        with self._lock:
            silent = []
            for t in self.topics:
                last = self._newest[t] if self._newest[t] is not None else self._first_any_ns
                if last is not None and now_ns - last > after_ns:
                    silent.append(t)
            return silent

    @property
    def newest_stamp_ns(self) -> int | None:
        """The newest stamp accepted on any topic in this epoch (data time)."""
        with self._lock:
            return self._newest_any_ns

    def pending(self) -> dict[str, int]:
        """Messages queued per topic (for diagnostics and tests)."""
        with self._lock:
            return {t: len(s) for t, s in self._stamps.items()}

    # ------------------------------------------------------------------ internals
    def _accept(self, topic: str, stamp_ns: int, item: Any) -> bool:
        if stamp_ns in self._recent[topic]:
            self.counters['duplicate'] += 1
            return False
        watermark = self._emitted_ns[topic]
        if ((watermark is not None and stamp_ns <= watermark)
                or (self._last_set_oldest_ns is not None
                    and stamp_ns < self._last_set_oldest_ns)):
            self.counters['too_old'] += 1
            return False
        stamps = self._stamps[topic]
        i = bisect.bisect(stamps, stamp_ns)  # out-of-order within the epoch: insert sorted
        stamps.insert(i, stamp_ns)
        self._items[topic].insert(i, item)
        self._recent[topic].append(stamp_ns)
        if self._newest[topic] is None or stamp_ns > self._newest[topic]:
            self._newest[topic] = stamp_ns
        if self._newest_any_ns is None or stamp_ns > self._newest_any_ns:
            self._newest_any_ns = stamp_ns
        if self._first_any_ns is None:
            self._first_any_ns = stamp_ns
        if len(stamps) > self.queue_size:
            self._pop(topic, 0)
            self.counters['queue_full'] += 1
        return True

    def _pop(self, topic: str, i: int) -> tuple[int, Any]:
        return self._stamps[topic].pop(i), self._items[topic].pop(i)

    def _best_full_set(self) -> dict[str, int] | None:
        """Index per topic of the full set with the smallest spread <= slop, if any."""
        if any(not s for s in self._stamps.values()):
            return None
        best, best_key = None, None
        for lo in sorted({s for stamps in self._stamps.values() for s in stamps}):
            # the set starting at lo: earliest message >= lo on every topic
            chosen, hi = {}, lo
            for t, stamps in self._stamps.items():
                i = bisect.bisect_left(stamps, lo)
                if i == len(stamps) or stamps[i] - lo > self.slop_ns:
                    break
                chosen[t] = i
                hi = max(hi, stamps[i])
            else:
                key = (hi - lo, lo)  # smallest spread; on a tie the older set
                if best_key is None or key < best_key:
                    best, best_key = chosen, key
        return best

    def _emit(self, chosen: dict[str, int], out: list[SyncedFrame], *, partial: bool) -> None:
        items: dict[str, Any] = {t: None for t in self.topics}
        stamps: dict[str, int | None] = {t: None for t in self.topics}
        for t, i in chosen.items():
            for _ in range(i):  # older messages on this topic can no longer be used
                self._pop(t, 0)
                self.counters['no_partner'] += 1
            stamps[t], items[t] = self._pop(t, 0)
            self._emitted_ns[t] = stamps[t]
        present = [s for s in stamps.values() if s is not None]
        self._last_set_oldest_ns = min(present)
        self.counters['partial' if partial else 'emitted'] += 1
        out.append(SyncedFrame(max(present), items, stamps))

    def _process(self, out: list[SyncedFrame]) -> None:
        while True:
            chosen = self._best_full_set()
            if chosen is None:
                if not self._give_up_oldest(out, before_ns=None):
                    return
                continue
            set_oldest_ns = min(self._stamps[t][i] for t, i in chosen.items())
            # messages older than the set are discarded by its emission: with emit_partial,
            # first give them their chance to form a partial frame
            if self.emit_partial and self._give_up_oldest(out, before_ns=set_oldest_ns):
                continue
            self._emit(chosen, out, partial=False)

    def _give_up_oldest(self, out: list[SyncedFrame], *, before_ns: int | None) -> bool:
        """Drop (or emit as partial) the oldest message if its set can no longer complete.

        ``before_ns``: a full set starting there is about to be emitted, so a set around an
        older message is decided now, from messages older than ``before_ns`` only.
        """
        heads = [(s[0], t) for t, s in self._stamps.items() if s]
        if not heads:
            return False
        lo, anchor = min(heads)
        if before_ns is not None and lo >= before_ns:
            return False
        hi = lo + self.slop_ns
        limit = hi if before_ns is None else min(hi, before_ns - 1)
        chosen, missing = {}, []
        for t, stamps in self._stamps.items():
            i = bisect.bisect_left(stamps, lo)
            if i < len(stamps) and stamps[i] <= limit:
                chosen[t] = i
            else:
                missing.append(t)
        if before_ns is None:
            # a topic has moved on once its newest message is past the set by more than the
            # slop: out-of-order messages up to slop late can still complete the set
            def moved_on(t: str) -> bool:
                return self._newest[t] is not None and self._newest[t] > hi + self.slop_ns

            if not self.emit_partial:
                if not any(moved_on(t) for t in missing):
                    return False
            else:
                waited = (self._newest_any_ns is not None
                          and self._newest_any_ns > hi + self.slop_ns + self.partial_wait_ns)
                # a present topic whose clock is stuck never moves on: once the others are
                # past the wait, the set is decided anyway (a broken clock costs its sensor)
                if not all(moved_on(t) or waited for t in chosen):
                    return False
                if not all(moved_on(t) or waited for t in missing):
                    return False
        if self.emit_partial and all(self._absent(t, lo, hi) for t in missing):
            self._emit(chosen, out, partial=True)
        else:
            self._pop(anchor, 0)
            self.counters['no_partner'] += 1
        return True

    def _absent(self, topic: str, lo: int, hi: int) -> bool:
        """True if ``topic`` skipped [lo, hi] (dropped/silent), not merely a slower rate.

        Skipped means no message of the topic within half its median period of the set.
        """
        recent = sorted(self._recent[topic])
        if len(recent) < 2:
            return not recent  # never heard: silent; one message: period unknown, be strict
        gaps = sorted(b - a for a, b in zip(recent, recent[1:]))
        half_period = gaps[len(gaps) // 2] // 2
        return all(s < lo - half_period or s > hi + half_period for s in recent)


__all__ = ['ApproximateTimeSynchronizer', 'COUNTER_NAMES', 'SyncedFrame', 'TimeJump']
