"""The prepared device check: everything this project wants to know from a GPU machine lent
for a few minutes, in one run (``tools/device_check.sh``; docs/gpu.md says how to run it).

The command line and ``main``: the options, strict fp32 (TF32 off, so the fp32 rows and the
CPU parity are true fp32), then the parts in order. ``--forbid-ros`` (the script's default)
makes any ROS import an ImportError and the JSON lists the attempts. ``--device cuda`` on a
machine without CUDA exits 2 with one line. ``--dry``: tiny sizes for a CPU (``make test``
runs it with ``--device cpu``).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
import time

from .capture import part_capture, probe_capture
from .env import part_env
from .mmtok_bench import part_bench
from .onnx_runtime import part_onnx
from .parity import part_parity
from .ros_guard import RosImportBlocker
from .runner import DEFAULT_BUDGET_S, PARTS, Check
from .streaming import part_streaming
from .table7 import part_table7

RUNNERS = {'env': part_env, 'parity': part_parity, 'table7': part_table7, 'bench': part_bench,
           'streaming': part_streaming, 'onnx': part_onnx, 'capture': part_capture}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog='python -m mmtok_ros.bench.device_check',
                                description=__doc__.split('\n\n')[0])
    p.add_argument('--device', default='cuda', help='cuda (default), cuda:N, or cpu (dry runs)')
    p.add_argument('--out', default=os.environ.get('OUT') or 'results/device_check',
                   help='folder for device_check.json, .md and .log (default $OUT)')
    p.add_argument('--parts', default=','.join(PARTS), help=f'comma-separated from {PARTS}')
    p.add_argument('--dry', action='store_true', help='tiny sizes (a CPU, make test)')
    p.add_argument('--budget-s', type=float, default=DEFAULT_BUDGET_S,
                   help='the whole run; each part also has its own budget')
    p.add_argument('--part-budget', default='',
                   help='override part budgets, e.g. streaming=200,bench=60')
    p.add_argument('--reps', type=int, default=0, help='timed repetitions (0: the defaults)')
    p.add_argument('--max-windows', type=int, default=0,
                   help='held-out windows used (0: all; --dry: 4)')
    p.add_argument('--presets', default='', help='mmtok bench presets (default '
                   'paper-handover,rsu-cpu; --dry: rsu-mini)')
    p.add_argument('--windows', default='', help='held-out windows file (default: '
                   'mmtok_ros/bench/data/heldout_windows_rsu_cpu.npz)')
    p.add_argument('--models-dir', default='', help='shipped model files (default models/)')
    p.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: default)')
    p.add_argument('--compile', choices=('auto', 'on', 'off'), default='auto',
                   help='torch.compile options (auto: on CUDA only)')
    p.add_argument('--cuda-graphs', choices=('auto', 'on', 'off'), default='auto')
    p.add_argument('--forbid-ros', action='store_true',
                   help='make importing a ROS module an ImportError (recorded in the JSON)')
    p.add_argument('--probe-capture', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.parts = [s.strip() for s in args.parts.split(',') if s.strip()]
    unknown = [s for s in args.parts if s not in PARTS]
    if unknown:
        p.error(f'unknown parts {unknown}; choose from {PARTS}')
    args.presets = tuple(s.strip() for s in args.presets.split(',') if s.strip())
    try:
        args.part_budget = {k.strip(): float(v) for k, v in
                            (item.split('=') for item in args.part_budget.split(',') if item)}
    except ValueError:
        p.error('--part-budget takes name=seconds,...')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    blocker = None
    if args.forbid_ros:
        blocker = RosImportBlocker()
        sys.meta_path.insert(0, blocker)
    import torch

    from ...devices import resolve_device
    from ...errors import UserInputError
    try:
        device, _ = resolve_device(args.device)
    except UserInputError as err:
        print(f'device_check: error: {err}; nothing was measured', file=sys.stderr)
        return 2
    if args.probe_capture:
        return probe_capture(str(device), args.models_dir)
    if args.threads:
        torch.set_num_threads(args.threads)
    # strict fp32: the fp32 rows and the CPU parity are true fp32 (bf16/fp16 are autocast)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    check = Check(args)
    check.device = device
    check.blocker = blocker
    check.say(f"device {device}, parts {','.join(args.parts)}, budget {args.budget_s:.0f} s"
              f"{', dry' if args.dry else ''}; writing {check.out}")
    check.save()
    for name in args.parts:
        check.run_part(name, RUNNERS[name])
    check.results['finished_utc'] = _dt.datetime.now(_dt.timezone.utc).isoformat(
        timespec='seconds')
    check.save()
    bad = [n for n, e in check.results['parts'].items() if e['status'] != 'ok']
    check.say(f"done in {time.monotonic() - check.t0:.0f} s; "
              f"{'all parts ok' if not bad else 'not ok: ' + ', '.join(bad)}; "
              f"{check.out / 'device_check.md'}")
    return 0
