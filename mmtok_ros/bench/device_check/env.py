"""Part ``env``: what the numbers were measured with: Python, torch, CUDA, cuDNN, the GPU
and nvidia-smi, onnx/onnxruntime and its execution providers, TF32, the held-out windows."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

from .inputs import load_windows
from .runner import Check, error_text


def part_env(check: Check, res: dict) -> None:
    import numpy as np
    import torch
    res.update(python=sys.version.split()[0], platform=platform.platform(),
               cpu_count=os.cpu_count(), torch=torch.__version__, torch_cuda=torch.version.cuda,
               cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
               else None, numpy=np.__version__, torch_threads=torch.get_num_threads(),
               device=str(check.device),
               tf32={'matmul': torch.backends.cuda.matmul.allow_tf32,
                     'cudnn': torch.backends.cudnn.allow_tf32})
    if check.device.type == 'cuda':
        p = torch.cuda.get_device_properties(check.device)
        res.update(gpu=p.name, capability=f'{p.major}.{p.minor}',
                   gpu_memory_gib=round(p.total_memory / 2**30, 1),
                   multiprocessors=p.multi_processor_count)
        try:
            smi = subprocess.run(['nvidia-smi', '--query-gpu=name,driver_version,clocks.sm,'
                                  'clocks.max.sm,power.limit', '--format=csv,noheader'],
                                 capture_output=True, text=True, timeout=15)
            res['nvidia_smi'] = smi.stdout.strip() or smi.stderr.strip()[:300]
        except (OSError, subprocess.SubprocessError) as err:
            res['nvidia_smi'] = error_text(err)
    for name in ('onnx', 'onnxruntime'):
        try:
            mod = __import__(name)
            res[name] = mod.__version__
        except Exception as err:  # noqa: BLE001
            res[name] = f'not importable: {error_text(err)}'
    try:
        import onnxruntime as ort
        res['onnxruntime_providers'] = ort.get_available_providers()
    except Exception:  # noqa: BLE001
        res['onnxruntime_providers'] = []
    data = load_windows(check)
    res['heldout_windows'] = {'windows': len(data), 'frames': int(len(data.stamps_ns)),
                              'blocked_next_frame': int(data.labels.sum()),
                              'made_with_commit': data.meta.get('git_commit'),
                              'cpu_reference_fp32': data.meta.get('cpu_reference_fp32')}
    check.say(f"env: {res.get('gpu', res['device'])}, torch {res['torch']} (CUDA "
              f"{res['torch_cuda']}), onnxruntime {res['onnxruntime']} "
              f"{res['onnxruntime_providers']}")
