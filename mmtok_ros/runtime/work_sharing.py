"""Work sharing for one window on a CPU with a second core that may or may not be free.

Two intra-op threads split every operator in fixed halves and wait for each other at its
end: when another process holds the second core, every operator waits for a descheduled
thread (docs/results.md measured 1.13 s instead of 51 ms per window). Here the inference
thread and ``helpers`` helper threads (one intra-op thread each) take the chunks of a step
(attention rows of a layer, the modalities of a frame) one at a time from a shared counter,
so a busy helper simply takes fewer chunks. When the inference thread has taken the last
chunk and a helper is still on one, it waits for it about as long as a chunk takes it
(``patience`` x its own longest chunk of the step, counted from when the helper took it) and
then computes the chunk itself; the helper's late result is dropped. So a window is never much
slower than on one thread, and about twice as fast when the second core is free.

Chunks must be pure: read shared tensors, return a new one, change nothing in place (a
dropped chunk may still be running while the next step begins). Helpers run their chunks
under ``torch.no_grad`` (grad mode is per thread) and never under autocast (also per
thread: callers use the pool for FP32 only).
"""
from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections import Counter
from typing import Any, Callable, Sequence

MAX_HELPERS = 3


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count`` without one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def auto_helpers() -> int:
    """Helpers for ``torch_threads: 0`` (auto): one per further usable core, at most
    ``MAX_HELPERS``; 0 on a one-core machine."""
    return max(0, min(MAX_HELPERS, usable_cores() - 1))


class _Step:
    """One ``map`` call: its chunks, who took which when, and the results so far."""

    def __init__(self, fn: Callable, items: Sequence) -> None:
        self.fn, self.items = fn, items
        self.cv = threading.Condition()
        self.next = 0
        self.taken_at: dict[int, float] = {}
        self.results: dict[int, Any] = {}
        self.own_s: list[float] = []          # the inference thread's chunk times
        self.t0 = time.perf_counter()

    def take(self) -> int | None:
        with self.cv:
            if self.next >= len(self.items):
                return None
            i, self.next = self.next, self.next + 1
            self.taken_at[i] = time.perf_counter()
            return i

    def put(self, i: int, value: Any) -> bool:
        with self.cv:
            if i in self.results:
                return False
            self.results[i] = value
            self.cv.notify_all()
            return True


class _Shared:
    """What the helper threads hold (not the pool, so that a dropped pool ends them)."""

    def __init__(self) -> None:
        self.cv = threading.Condition()
        self.step: _Step | None = None
        self.closed = False
        self.stats: Counter[str] = Counter()
        self.threads: list[threading.Thread] = []


def _serve(shared: _Shared) -> None:
    """A helper thread: take chunks of each new step until the pool closes."""
    import torch
    seen = None
    while True:
        with shared.cv:
            while not shared.closed and (shared.step is None or shared.step is seen):
                shared.cv.wait()
            if shared.closed:
                return
            step = seen = shared.step
        while (i := step.take()) is not None:
            try:
                with torch.no_grad():
                    value = step.fn(step.items[i])
            except Exception:  # noqa: BLE001 - the caller recomputes the chunk and raises
                continue
            if step.put(i, value):
                shared.stats['chunks_by_helpers'] += 1


class WorkSharingPool:
    """The calling thread plus ``helpers`` daemon threads; :meth:`map` is ``[fn(x) for x in
    items]`` with the chunks shared among them. ``helpers=0``: a plain loop. ``stats``
    counts the steps, the chunks helpers did and the chunks the caller recomputed."""

    def __init__(self, helpers: int, *, patience: float = 1.5, name: str = 'mmtok-helper'):
        self.helpers = max(0, int(helpers))
        self.patience = float(patience)
        self._shared = _Shared()
        self.stats = self._shared.stats
        for i in range(self.helpers):
            thread = threading.Thread(target=_serve, args=(self._shared,), name=f'{name}-{i}',
                                      daemon=True)
            self._shared.threads.append(thread)
            thread.start()
        _POOLS.add(self)

    def map(self, fn: Callable[[Any], Any], items: Sequence) -> list:
        if not self.helpers or len(items) <= 1:
            return [fn(x) for x in items]
        shared, step = self._shared, _Step(fn, items)
        with shared.cv:
            shared.step = step
            shared.cv.notify_all()
        try:
            while (i := step.take()) is not None:
                t0 = time.perf_counter()
                value = fn(items[i])
                step.own_s.append(time.perf_counter() - t0)
                step.put(i, value)
            self._finish(step)
        finally:
            with shared.cv:
                if shared.step is step:
                    shared.step = None
        self.stats['steps'] += 1
        return [step.results[i] for i in range(len(items))]

    def _finish(self, step: _Step) -> None:
        """Wait for the helpers' chunks a little, then compute the late ones here."""
        longest = max(step.own_s) if step.own_s else time.perf_counter() - step.t0
        for i in range(len(step.items)):
            with step.cv:
                deadline = step.taken_at[i] + self.patience * longest
                while i not in step.results and (left := deadline - time.perf_counter()) > 0:
                    step.cv.wait(left)
                if i in step.results:
                    continue
            value = step.fn(step.items[i])
            if step.put(i, value):
                self.stats['chunks_recomputed'] += 1

    def close(self, join_s: float = 0.0) -> None:
        """End the helper threads; ``join_s``: wait that long for each to finish its chunk.
        Called for every pool at interpreter exit, so that no helper is inside a PyTorch
        operator while the process tears PyTorch down (that aborts it)."""
        with self._shared.cv:
            self._shared.closed = True
            self._shared.cv.notify_all()
        for thread in self._shared.threads if join_s > 0 else ():
            if thread is not threading.current_thread():
                thread.join(join_s)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


_POOLS: weakref.WeakSet[WorkSharingPool] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for pool in list(_POOLS):
        pool.close(join_s=2.0)


__all__ = ['MAX_HELPERS', 'WorkSharingPool', 'auto_helpers', 'usable_cores']
