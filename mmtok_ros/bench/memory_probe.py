"""Peak CPU memory of one inference, measured in a fresh process.

RSS cannot be compared across models inside one process: memory freed by one model stays in
the allocator's arenas and the next model reuses it without growing RSS. A fresh process with
glibc's mmap threshold pinned (large blocks go back to the OS when freed) and the kernel's
peak-RSS counter reset after warm-up (``/proc/self/clear_refs``) gives each model its own peak.

Run as ``python -m mmtok_ros.bench.memory_probe '<json spec>'``; prints ``{"peak_mb": ...}``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys


def _status_kb(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return 0


def probe(spec: dict) -> float:
    import torch

    from ..model.compress import autocast_for
    from .latency import build_candidates
    from ..model.flops import dummy_window
    torch.set_num_threads(int(spec.get('threads', torch.get_num_threads())))
    c = build_candidates(spec['preset'], [spec['method']],
                         [spec['gamma']] if spec['gamma'] is not None else [0.5],
                         spec.get('prune', 0.0))[0]
    window = dummy_window(c.model.cfg)
    with torch.no_grad(), autocast_for('cpu', spec.get('precision', 'fp32')):
        c.model(window)                               # warm-up: lazy allocations happen here
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')                              # reset VmHWM to the current RSS
        before_kb = _status_kb('VmRSS')
        c.model(window)
    return max(0, _status_kb('VmHWM') - before_kb) / 1024.0


def cpu_peak_mb(spec: dict) -> float | None:
    """Run :func:`probe` in a fresh interpreter; None where /proc is not available."""
    if not os.path.exists('/proc/self/clear_refs'):
        return None
    env = {**os.environ, 'MALLOC_MMAP_THRESHOLD_': '131072'}
    out = subprocess.run([sys.executable, '-m', __name__, json.dumps(spec)], env=env,
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f'memory probe failed: {out.stderr.strip().splitlines()[-1:]}')
    return float(json.loads(out.stdout.strip().splitlines()[-1])['peak_mb'])


if __name__ == '__main__':
    print(json.dumps({'peak_mb': probe(json.loads(sys.argv[1]))}))
