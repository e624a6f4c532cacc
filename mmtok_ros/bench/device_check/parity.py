"""Part ``parity``: the shipped models on the device against the CPU, strict fp32 (TF32 off),
on the same held-out windows: every decision must be equal and the logits close, else the
node's CUDA path differs from what was evaluated on the CPU."""
from __future__ import annotations

from pathlib import Path

from .inputs import cpu_device, load_models, load_windows, window_rows
from .measures import accuracy, probabilities
from .runner import Check

LOGIT_TOL = 2e-3               # |logit(device) - logit(CPU)|, strict fp32 (TF32 off)


def part_parity(check: Check, res: dict) -> None:
    """Shipped models on the device against CPU, strict fp32, same held-out windows."""
    import numpy as np
    load_windows(check)
    load_models(check)
    rows = window_rows(check)
    res['tolerance'] = {'abs_logit': LOGIT_TOL, 'decisions': 'all equal',
                        'note': 'strict fp32 on both (TF32 off), batch 16'}
    for method, (cpu, dev, path) in check.models.items():
        p_cpu, l_cpu = probabilities(cpu, check.windows, rows, cpu_device())
        check.cpu_p[method] = (rows, p_cpu)
        p_dev, l_dev = probabilities(dev, check.windows, rows, check.device)
        thr = dev.decision_threshold
        flips = int(((p_cpu >= thr) != (p_dev >= thr)).sum())
        diff = float(np.abs(l_cpu - l_dev).max())
        res[method] = {
            'model_file': Path(path).name, 'threshold': thr, 'windows': int(len(rows)),
            'max_abs_logit_diff': diff, 'max_abs_p_diff': float(np.abs(p_cpu - p_dev).max()),
            'decisions_differing': flips,
            'pass': bool(flips == 0 and diff <= LOGIT_TOL),
            'accuracy_cpu': accuracy(check.windows, p_cpu, rows, thr)['accuracy'],
            'accuracy_device': accuracy(check.windows, p_dev, rows, thr)['accuracy'],
            'tokens_per_layer': dev.tokens_per_layer()}
        check.say(f"parity {method}: max |dlogit| {diff:.2e}, {flips} decisions differ "
                  f"-> {'pass' if res[method]['pass'] else 'FAIL'}")
        check.save()
