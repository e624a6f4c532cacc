"""Device choice and synchronization: the one resolver the node, training, the benchmarks and
the commands share."""
from __future__ import annotations

import platform

import torch

from .errors import UserInputError


def resolve_device(requested: str | None = 'auto', *,
                   strict: bool = True) -> tuple[torch.device, str | None]:
    """(device to use, warning or None). ``auto``/None: CUDA when available, else CPU.

    An unusable request (no CUDA, a missing ``cuda:N``, a name that is not a device) raises
    :class:`~mmtok_ros.errors.UserInputError` when ``strict`` (benchmarks, training and commands never run silently on
    another device); otherwise it falls back to CPU and the warning says why (the node logs it
    and keeps running).
    """
    name = (requested or 'auto').strip().lower()
    problem = None
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    elif name != 'cpu' and not name.startswith('cuda'):
        problem = f"device '{name}' is not cpu, cuda or cuda:N"
    elif name != 'cpu' and not torch.cuda.is_available():
        reason = ('this torch build has no CUDA support' if torch.version.cuda is None
                  else 'no CUDA device is visible (driver missing or CUDA_VISIBLE_DEVICES '
                       'empty)')
        problem = f"device '{name}' requested but {reason}"
    elif name != 'cpu':
        index = name.partition(':')[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            problem = (f"device '{name}' does not exist ({torch.cuda.device_count()} CUDA "
                       'device(s))')
    if problem is None:
        return torch.device(name), None
    if strict:
        raise UserInputError(problem)
    return torch.device('cpu'), f'{problem}; falling back to cpu'


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work before reading a clock (no-op on CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU and the torch thread count (timings depend on both)."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads'
