"""mmtok bench_train: training throughput (windows per second) of several methods.

Times real optimiser steps of ``train_model`` on synthetic windows of the preset's input shapes
(training cost does not depend on the pixel values), with the thread count and the machine's
load average beside every number, and projects the time of a training recipe from it.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..errors import UserInputError
from ..model.config import METHODS, PRESETS

HELP = ('Benchmark training throughput (windows/s) of mha, routed, ablation3 ... and project a '
        "recipe's training time (table + JSON).")

# the recipe of the shipped rsu-cpu model (models/handover_rsu_cpu_g40.md): 8 epochs of 570
# training windows, plus the windows the decision threshold is chosen on
DEFAULT_RECIPE_WINDOWS = 8 * 570
DEFAULT_THRESHOLD_WINDOWS = 1024


def add_arguments(p) -> None:
    p.add_argument('--preset', default='rsu-cpu', choices=sorted(PRESETS))
    p.add_argument('--methods', default='mha,routed,ablation3',
                   help=f'comma-separated, from {",".join(METHODS)}')
    p.add_argument('--gamma', type=float, default=0.4, help="target keep ratio gamma'")
    p.add_argument('--threads', default='', help='comma-separated torch thread counts to time '
                                                 '(default: torch\'s current count)')
    p.add_argument('--steps', type=int, default=3, help='timed optimiser steps per method')
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--recipe-windows', type=int, default=DEFAULT_RECIPE_WINDOWS,
                   help='training windows (summed over epochs) of the recipe to project')
    p.add_argument('--threshold-windows', type=int, default=DEFAULT_THRESHOLD_WINDOWS,
                   help='windows of the inference pass that chooses the decision threshold')
    p.add_argument('--out', default='results/bench_train.json', help='JSON file to write')


def synthetic_windows(cfg, n_windows: int, seed: int = 0):
    """Sliding windows over one synthetic scenario (frames shared as in real data)."""
    import numpy as np

    from ..model.preprocess import frame_shapes
    from ..train.dataset import WindowDataset
    rng = np.random.default_rng(seed)
    n_frames = n_windows + cfg.n_frames - 1
    shapes = frame_shapes(cfg)
    frames = {m: rng.random((n_frames, *shapes[m]), dtype=np.float32) for m in cfg.modalities}
    window_frames = np.arange(n_windows)[:, None] + np.arange(cfg.n_frames)[None, :]
    labels = (rng.random(n_windows) < 0.3).astype(np.float32)
    return WindowDataset(tuple(cfg.modalities), frames,
                         np.ones((n_frames, len(cfg.modalities)), bool), window_frames, labels,
                         np.zeros(n_windows, np.int64), np.arange(n_windows, dtype=np.int64))


def time_variant(cfg, *, down_pass_grad: bool, steps: int, batch_size: int) -> dict:
    """Training and inference windows per second of one model variant (after one warm-up)."""
    from ..train.trainer import TrainConfig, train_model
    from ..train.evaluation import predict
    tc = TrainConfig(epochs=1, batch_size=batch_size, device='cpu', down_pass_grad=down_pass_grad,
                     threshold_windows=0, warmup_fraction=0.0)
    train_model(cfg, synthetic_windows(cfg, batch_size), tc, progress=False)       # warm-up
    data = synthetic_windows(cfg, steps * batch_size)
    model, history = train_model(cfg, data, tc, progress=False)
    predict(model, data.subset(list(range(batch_size))), batch_size=batch_size)   # warm-up
    tic = time.perf_counter()
    predict(model, data, batch_size=batch_size)
    infer_s = time.perf_counter() - tic
    return {'train_windows_per_s': history['windows_per_s'],
            'infer_windows_per_s': len(data) / infer_s}


def run(args) -> int:
    import torch

    from ..model import preset
    methods = [m for m in args.methods.split(',') if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise UserInputError(f'unknown methods {unknown}; choose from {METHODS}')
    threads = [int(t) for t in args.threads.split(',') if t] or [torch.get_num_threads()]
    if min(threads) < 1 or args.steps < 1:
        raise UserInputError('--threads and --steps must be >= 1')
    rows = []
    before = torch.get_num_threads()
    try:
        for n_threads in threads:
            torch.set_num_threads(n_threads)
            for method in methods:
                cfg = preset(args.preset, method=method, target_keep_ratio=args.gamma)
                learned = method in ('routed', 'ablation1', 'ablation2')   # Eq. 18 passes
                variants = [True, False] if learned else [True]
                for down_pass_grad in variants:
                    load_before = os.getloadavg()[0]
                    timing = time_variant(cfg, down_pass_grad=down_pass_grad, steps=args.steps,
                                          batch_size=args.batch_size)
                    recipe_s = (args.recipe_windows / timing['train_windows_per_s']
                                + args.threshold_windows / timing['infer_windows_per_s'])
                    rows.append({'preset': args.preset, 'method': method,
                                 'eq18_down_pass': 'grad' if down_pass_grad else 'no-grad',
                                 'threads': n_threads, 'batch_size': args.batch_size,
                                 'steps': args.steps, **timing,
                                 'recipe_windows': args.recipe_windows,
                                 'threshold_windows': args.threshold_windows,
                                 'recipe_minutes': recipe_s / 60,
                                 'load_avg_1min': [load_before, os.getloadavg()[0]]})
                    r = rows[-1]
                    print(f"{method:10s} {r['eq18_down_pass']:8s} threads {n_threads}: "
                          f"train {r['train_windows_per_s']:6.2f} win/s, infer "
                          f"{r['infer_windows_per_s']:6.2f} win/s, recipe "
                          f"{r['recipe_minutes']:5.1f} min (load {load_before:.1f})", flush=True)
    finally:
        torch.set_num_threads(before)
    header = ('| method | Eq. 18 down pass | threads | train windows/s | inference windows/s | '
              f'recipe ({args.recipe_windows} + {args.threshold_windows} windows) [min] | '
              'load avg (1 min) |')
    lines = [f'Training throughput on {args.preset}, batch {args.batch_size}, '
             f'{args.steps} timed steps', '', header, '|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['method']} | {r['eq18_down_pass']} | {r['threads']} | "
                     f"{r['train_windows_per_s']:.2f} | {r['infer_windows_per_s']:.2f} | "
                     f"{r['recipe_minutes']:.1f} | {r['load_avg_1min'][0]:.1f} |")
    print('\n'.join(lines))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({'rows': rows, 'cpu_count': os.cpu_count()}, indent=2) + '\n')
    print(f'wrote {out}')
    return 0
