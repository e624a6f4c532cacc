"""The bounded, ordered hand-over of synchronized frames from callbacks to the worker."""
from __future__ import annotations

import threading
from collections import deque


class FrameQueue:
    """Synchronized frames from the callbacks to the worker, in order, bounded.

    Every frame is kept (a window needs its older frames); only the newest window is run.
    Past ``max_frames`` the oldest frames are dropped and counted: the worker fell behind.
    """

    def __init__(self, max_frames: int) -> None:
        self._items: deque = deque()
        self._cond = threading.Condition()
        self.max_frames = max_frames
        self.dropped = 0
        self.busy = False      # the worker holds frames it has not finished with
        self._closed = False

    def put(self, items: list, arrival_ns: int) -> None:
        with self._cond:
            self._items.extend((item, arrival_ns) for item in items)
            while len(self._items) > self.max_frames:
                self._items.popleft()
                self.dropped += 1
            self._cond.notify()

    def take_all(self, timeout_s: float) -> list:
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout_s)
            items = list(self._items)
            self._items.clear()
            self.busy = bool(items)
            return items

    def pending(self) -> int:
        with self._cond:
            return len(self._items) + int(self.busy)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


__all__ = ['FrameQueue']
