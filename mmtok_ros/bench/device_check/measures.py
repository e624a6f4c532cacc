"""Measurements shared by the parts: probabilities on the held-out windows, their accuracy,
batch-1 window latency and peak device memory."""
from __future__ import annotations

import statistics
import time


def sync(device) -> None:
    """Wait for the device, so a timer around device work measures the work."""
    import torch
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def probabilities(model, data, rows, device, precision='fp32', batch=16):
    """p_blocked of ``rows`` (numpy), and the logits, batched."""
    import numpy as np
    import torch

    from ...model.compress import autocast_for
    ps, logits = [], []
    with torch.no_grad(), autocast_for(device, precision):
        for lo in range(0, len(rows), batch):
            out = model(data.batch(rows[lo:lo + batch], device))[:, 0].float()
            logits.append(out.cpu().numpy())
            ps.append(torch.sigmoid(out).cpu().numpy())
    return np.concatenate(ps), np.concatenate(logits)


def accuracy(data, p, rows, threshold) -> dict:
    """Next-frame and 3-frame label accuracy of ``p`` on windows ``rows`` of ``data``."""
    blocked = p >= threshold
    return {'accuracy': float((blocked == (data.labels[rows] == 1)).mean()),
            'accuracy_h3': float((blocked == (data.labels_h3[rows] == 1)).mean()),
            'windows': int(len(rows))}


def time_window(model, batch, device, precision, reps, warmup):
    """Batch-1 whole-window latency (tokenize every frame + transformer + head), ms."""
    import torch

    from ...model.compress import autocast_for
    from ...timing import percentile
    ms = []
    with torch.no_grad(), autocast_for(device, precision):
        for i in range(warmup + reps):
            sync(device)
            t = time.perf_counter()
            model(batch)
            sync(device)
            if i >= warmup:
                ms.append((time.perf_counter() - t) * 1e3)
    return {'median_ms': statistics.median(ms), 'p90_ms': percentile(ms, 90), 'reps': reps}


def peak_memory(model, batch, device, precision) -> dict:
    """``torch.cuda.max_memory_allocated`` over one batch-1 inference: absolute (weights and
    everything else on the device included) and above what was allocated before it."""
    import torch

    from ...model.compress import autocast_for
    if device.type != 'cuda':
        return {'peak_mem_mb': None, 'peak_mem_above_start_mb': None,
                'note': 'CUDA only (CPU peak memory: mmtok bench)'}
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    with torch.no_grad(), autocast_for(device, precision):
        model(batch)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    return {'peak_mem_mb': peak / 2**20, 'peak_mem_above_start_mb': (peak - start) / 2**20}
