"""Peak CUDA memory of a piece of work (CPU peaks are measured apart: ``memory_probe.py``)."""
from __future__ import annotations

import torch


class CudaPeakMemory:
    """``with CudaPeakMemory(device) as m: work()`` then ``m.peak_mb``: the allocator's peak
    above what was allocated at the start."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.peak_mb = 0.0

    def __enter__(self):
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self._start = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc):
        torch.cuda.synchronize(self.device)
        peak = torch.cuda.max_memory_allocated(self.device)
        self.peak_mb = max(0, peak - self._start) / 2**20
        return False
