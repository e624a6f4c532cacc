"""Peak memory of a piece of work: the CUDA allocator's peak, or the RSS peak on CPU."""
from __future__ import annotations

import os
import threading
import time

import torch

_PAGE = os.sysconf('SC_PAGE_SIZE') if hasattr(os, 'sysconf') else 4096


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return 0


class PeakMemory:
    """``with PeakMemory(device) as m: work()`` then ``m.peak_mb``: the peak above the start.

    On CPU a thread samples RSS every millisecond (RSS has no peak counter that can be reset);
    on CUDA the allocator's own peak counter is used.
    """

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.peak_mb = 0.0

    def __enter__(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            self._start = self._peak = rss_bytes()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, rss_bytes())
            time.sleep(0.001)

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, rss_bytes())
        self.peak_mb = max(0, peak - self._start) / 2**20
        return False
