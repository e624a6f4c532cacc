"""``mmtok bench --backend torch,onnxruntime``: the same models on both backends in one run.

Each method's model (untrained: latency does not depend on the weights; routed K from
gamma') is exported with ``model.export`` to a temporary folder and run through both
streaming predictors at batch 1 with the same thread count, round-robin (one window of each
backend per round) so that machine noise hits both alike. Two numbers per backend:
``window``: a whole window, every frame tokenized (no cache); ``frame``: the node's steady
state, one new frame tokenized and the transformer on the cached rest.
"""
from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import numpy as np

from ..errors import UserInputError

BACKENDS = ('torch', 'onnxruntime')


def _windows(cfg, count: int):
    """``count`` windows of random frames, each one frame newer than the last."""
    from ..constants import FRAME_PERIOD_NS
    from ..data.window import Window
    from ..model.flops import dummy_window
    n = cfg.n_frames + count
    frames = {m: v[0].numpy() for m, v in dummy_window(cfg.with_(n_frames=n)).items()}
    present = np.ones((n, len(cfg.modalities)), bool)
    out = []
    for k in range(count):
        sl = slice(k, k + cfg.n_frames)
        arrays = {m: frames[m][sl] for m in cfg.modalities}
        arrays['present'] = present[sl]
        stamps = (np.arange(k, k + cfg.n_frames, dtype=np.int64) + 1) * FRAME_PERIOD_NS
        out.append(Window(arrays, stamps, int(stamps[-1])))
    return out


def compare_backends(preset_name: str, *, methods, gamma: float, backends=BACKENDS,
                     reps: int = 7, warmup: int = 2, threads: int | None = None,
                     progress: bool = True) -> list[dict]:
    """One row per (method, backend): window and streaming-frame latency (ms) at batch 1."""
    import torch
    from tqdm import tqdm

    from ..model.config import ROUTED_METHODS
    from ..model.export import export_model
    from ..runtime.onnx_predictor import OnnxStreamingPredictor
    from ..runtime.predictor import StreamingPredictor
    from ..timing import build_candidates, percentile
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise UserInputError(f'unknown backends {unknown}; choose from {list(BACKENDS)}')
    if threads:
        torch.set_num_threads(int(threads))
    threads = torch.get_num_threads()
    rows = []
    with tempfile.TemporaryDirectory(prefix='mmtok-bench-onnx-') as tmp:
        for method in methods:
            cand = build_candidates(preset_name, [method],
                                    [gamma] if method in ROUTED_METHODS else [None])[0]
            model = cand.model.eval()
            predictors = {}
            if 'torch' in backends:
                predictors['torch'] = StreamingPredictor(model)
            if 'onnxruntime' in backends:
                result = export_model(model, Path(tmp) / f'{method}.onnx')
                predictors['onnxruntime'] = OnnxStreamingPredictor(result.encoder,
                                                                   threads=threads)
            wins = _windows(model.cfg, warmup + reps + 1)
            times = {b: {'window': [], 'frame': []} for b in predictors}
            for pred in predictors.values():
                pred.warm_up(wins[0], repeats=max(1, warmup))
                pred.predict(wins[0])                       # every frame of wins[0] cached
            for k in tqdm(range(1, warmup + reps + 1), desc=f'{method}: rounds',
                          disable=not progress):
                for b, pred in predictors.items():
                    frame = pred.predict(wins[k])            # one new frame
                    if frame.frames_tokenized != 1:
                        raise RuntimeError(f'{b}: tokenized {frame.frames_tokenized} frames of '
                                           'a window one frame newer than the last')
                    whole = pred.predict(wins[k], use_cache=False)
                    if k > warmup:
                        times[b]['frame'].append(frame.inference_ms)
                        times[b]['window'].append(whole.inference_ms)
            for b, pred in predictors.items():
                t = times[b]
                rows.append({
                    'preset': preset_name, 'method': method, 'gamma': cand.gamma,
                    'backend': b, 'threads': threads, 'batch': 1, 'reps': reps,
                    'provider': getattr(pred, 'device', 'cpu') if b == 'onnxruntime'
                    else f'torch {torch.__version__} cpu',
                    'frame_ms_median': statistics.median(t['frame']),
                    'frame_ms_p90': percentile(t['frame'], 90),
                    'window_ms_median': statistics.median(t['window']),
                    'window_ms_p90': percentile(t['window'], 90),
                    'tokens_per_layer': list(pred.model.tokens_per_layer())})
    for r in rows:
        base = next((x for x in rows if x['method'] == r['method'] and x['backend'] == 'torch'),
                    None)
        r['frame_speedup_vs_torch'] = (base['frame_ms_median'] / r['frame_ms_median']
                                       if base else None)
        r['window_speedup_vs_torch'] = (base['window_ms_median'] / r['window_ms_median']
                                        if base else None)
    return rows


def format_table(rows: list[dict]) -> str:
    head = (f"{'method':<10}{'gamma':>6} {'backend':<12}{'threads':>7}{'frame ms':>10}"
            f"{'p90':>8}{'window ms':>11}{'p90':>8}{'x torch':>9}  tokens per layer")
    lines = [head, '-' * len(head)]
    for r in rows:
        gamma = '' if r['gamma'] is None else f"{r['gamma']:g}"
        speed = '' if r['frame_speedup_vs_torch'] is None else f"{r['frame_speedup_vs_torch']:.2f}"
        lines.append(f"{r['method']:<10}{gamma:>6} {r['backend']:<12}{r['threads']:>7}"
                     f"{r['frame_ms_median']:>10.1f}{r['frame_ms_p90']:>8.1f}"
                     f"{r['window_ms_median']:>11.1f}{r['window_ms_p90']:>8.1f}{speed:>9}  "
                     f"{','.join(map(str, r['tokens_per_layer']))}")
    return '\n'.join(lines)


def run_backends(args) -> int:
    """``mmtok bench --backend a,b``: see the module docstring."""
    import os

    from ..devices import resolve_device
    backends = [b.strip() for b in args.backend.split(',') if b.strip()]
    dev, _ = resolve_device(args.device)
    if dev.type != 'cpu':
        raise UserInputError('--backend compares CPU backends here (onnxruntime CPU '
                             'execution provider); use --device cpu')
    methods = [m.strip() for m in args.methods.split(',') if m.strip()]
    if 'tome' in methods:   # merging has no exact ONNX form (model.export)
        print('--backend: tome is not exportable to ONNX; timing the other methods')
        methods.remove('tome')
    gamma = float(args.gammas.split(',')[0])
    rows = compare_backends(args.preset, methods=methods, gamma=gamma, backends=backends,
                            reps=args.reps, warmup=args.warmup,
                            threads=getattr(args, 'threads', None),
                            progress=not args.no_progress)
    load = os.getloadavg() if hasattr(os, 'getloadavg') else None
    for r in rows:
        r['load_avg_1m'] = None if load is None else load[0]
    out = args.out if args.out != 'results/bench.json' else 'results/bench_backends.json'
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(rows, indent=2))
    print(f"\n{args.preset}, batch 1, {rows[0]['threads']} threads, median of {args.reps} "
          f"(frame: one new frame + transformer on cached tokens; window: all "
          f"frames tokenized){'' if load is None else f'; load average {load[0]:.2f}'}")
    print(format_table(rows))
    print(f'wrote {out}')
    return 0
