"""Memory and CPU use: the peak memory of one inference, and a process's CPU time and RSS.

Peak CUDA memory is read from the allocator (:class:`CudaPeakMemory`). Peak CPU memory cannot
be compared across models inside one process: memory freed by one model stays in the
allocator's arenas and the next model reuses it without growing RSS. So one inference runs
in a fresh process with glibc's mmap threshold pinned (large blocks go back to
the OS when freed) and the kernel's peak-RSS counter reset after warm-up
(``/proc/self/clear_refs``), so each model gets its own peak: :func:`run_fresh` starts such a
process and :func:`peak_rss_growth_mb` measures inside it (``timing.cpu_peak_mb`` uses both).

:func:`process_cpu_seconds` and :func:`process_rss_mb` read another process (a node started
by the end-to-end benchmark) from ``/proc``; they return None where it is not readable.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

CLK_TCK = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100


class CudaPeakMemory:
    """``with CudaPeakMemory(device) as m: work()`` then ``m.peak_mb``: the allocator's peak
    above what was allocated at the start."""

    def __init__(self, device) -> None:
        import torch
        self.device = torch.device(device)
        self.peak_mb = 0.0

    def __enter__(self):
        import torch
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self._start = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc):
        import torch
        torch.cuda.synchronize(self.device)
        peak = torch.cuda.max_memory_allocated(self.device)
        self.peak_mb = max(0, peak - self._start) / 2**20
        return False


def _status_kb(field: str, pid: int | str = 'self') -> int | None:
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_growth_mb(run: Callable[[], object]) -> float:
    """Peak RSS growth (MiB) of one ``run()``, measured after a warm-up ``run()`` (lazy
    allocations happen there). Call it in a fresh process (:func:`run_fresh`)."""
    run()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')                                  # reset VmHWM to the current RSS
    before_kb = _status_kb('VmRSS') or 0
    run()
    return max(0, (_status_kb('VmHWM') or 0) - before_kb) / 1024.0


def run_fresh(module: str, spec: dict) -> dict | None:
    """``python -m module '<json spec>'`` in a fresh interpreter with the mmap threshold
    pinned; its last output line parsed as JSON. None where /proc is not available."""
    if not os.path.exists('/proc/self/clear_refs'):
        return None
    env = {**os.environ, 'MALLOC_MMAP_THRESHOLD_': '131072'}
    out = subprocess.run([sys.executable, '-m', module, json.dumps(spec)], env=env,
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f'memory probe failed: {out.stderr.strip().splitlines()[-1:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def format_mb(value: float | None) -> str:
    """Peak memory for a table; '-' where it could not be measured (no /proc)."""
    return '-' if value is None else f'{value:.0f}'


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` so far (s)."""
    try:
        fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK   # utime + stime
    except (OSError, IndexError, ValueError):
        return None


def process_rss_mb(pid: int) -> tuple[float | None, float | None]:
    """(current RSS, peak RSS) of ``pid`` in MiB."""
    rss, hwm = _status_kb('VmRSS', pid), _status_kb('VmHWM', pid)
    return (None if rss is None else rss / 1024, None if hwm is None else hwm / 1024)
