"""Part ``capture``: CUDA-graph capture of the routed model as it is (K read from the device
in every layer). It runs in a child process (``--probe-capture``): a failed capture can
poison the CUDA context, so it never runs in the process that measures everything else."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .cuda_graphs import time_graphed
from .inputs import ROOT
from .runner import Check, error_text


def part_capture(check: Check, res: dict) -> None:
    """CUDA-graph capture of the routed model as it is, in a child process."""
    if check.device.type != 'cuda':
        res['status'] = 'not run: CUDA only'
        return
    cmd = [sys.executable, '-m', 'mmtok_ros.bench.device_check', '--probe-capture',
           '--device', str(check.device)]
    if check.args.models_dir:
        cmd += ['--models-dir', check.args.models_dir]
    left = max(5.0, check.deadlines.left() - 2)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=left, cwd=ROOT)
    except subprocess.TimeoutExpired:
        res['status'] = f'child past {left:.0f} s'
        return
    res['returncode'] = out.returncode
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith('{')]
    res.update(json.loads(lines[-1]) if lines else {'stderr_tail': out.stderr[-1500:]})
    check.say(f"capture: routed as is -> {res.get('routed as is', res)}")


def probe_capture(device: str, models_dir: str = '') -> int:
    """Child of ``part_capture``: one JSON line."""
    import torch

    from ...model.checkpoint import load_model
    from ...model.shipped import SHIPPED_MODELS
    root = Path(models_dir or ROOT / 'models')
    model, _ = load_model(root / SHIPPED_MODELS['routed'], device=device)
    out = {}
    try:
        r = time_graphed(model, torch.device(device), 'fp32', 20, 3)
        out['routed as is'] = {'status': 'captured' if r['captured'] else 'ran, no capture '
                               '(not CUDA)', **r}
    except Exception as err:  # noqa: BLE001 - the expected outcome is a failure
        out['routed as is'] = {'status': 'capture failed', 'error': error_text(err)}
    print(json.dumps(out, default=str), flush=True)
    return 0
