"""What the parts measure on: the held-out windows and the shipped model files, each loaded
once per run and kept on the :class:`runner.Check`, and the rows of the windows a run uses."""
from __future__ import annotations

import copy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]      # the checkout: models/ and the module path


def cpu_device():
    import torch
    return torch.device('cpu')


def load_windows(check):
    """The held-out windows (``--windows`` or the committed file), read once."""
    if check.windows is None:
        from ..heldout import DEFAULT_PATH, load
        check.windows = load(check.args.windows or DEFAULT_PATH)
    return check.windows


def load_models(check) -> None:
    """The shipped files, once: a CPU copy and a device copy of each (project loader,
    ``torch.load(weights_only=True)``)."""
    if check.models:
        return
    from ...model.checkpoint import load_model
    from ...model.shipped import SHIPPED_MODELS
    for method, name in SHIPPED_MODELS.items():
        path = Path(check.args.models_dir or ROOT / 'models') / name
        cpu, meta = load_model(path, device='cpu')
        dev, _ = load_model(path, device=check.device)
        check.models[method] = (cpu, dev, str(path))


def window_rows(check):
    """Indices of the held-out windows used: all, ``--max-windows`` spread evenly, or 4 in a
    dry run."""
    import numpy as np
    n = len(check.windows)
    limit = check.args.max_windows or (4 if check.args.dry else n)
    if limit >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def k_fixed_once(model):
    """A copy of ``model`` whose routed layers use K_l computed once on the host
    (``set_keep_override(1.0)``) instead of reading r_l from the device in every layer."""
    fixed = copy.deepcopy(model)
    fixed.set_keep_override(1.0)
    return fixed
