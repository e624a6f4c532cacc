"""Device choice and synchronization, shared by the node, the benchmarks and the predictor."""
from __future__ import annotations

import torch


def choose_device(requested: str | None) -> tuple[str, str | None]:
    """(device to use, warning or None). ``auto``/None: CUDA when available, else CPU;
    an unusable CUDA request falls back to CPU and the warning says why."""
    requested = (requested or 'auto').strip().lower()
    if requested == 'auto':
        return ('cuda' if torch.cuda.is_available() else 'cpu'), None
    if requested == 'cpu':
        return 'cpu', None
    if not requested.startswith('cuda'):
        return 'cpu', f"device '{requested}' is not cpu, cuda or cuda:N; using cpu"
    if not torch.cuda.is_available():
        reason = ('this torch build has no CUDA support' if torch.version.cuda is None
                  else 'no CUDA device is visible (driver missing or CUDA_VISIBLE_DEVICES '
                       'empty)')
        return 'cpu', f"device '{requested}' requested but {reason}; falling back to cpu"
    index = requested.partition(':')[2]
    if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        return 'cpu', (f"device '{requested}' does not exist ({torch.cuda.device_count()} "
                       'CUDA device(s)); falling back to cpu')
    return requested, None


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work before reading a clock (no-op on CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
