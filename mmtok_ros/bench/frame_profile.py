"""Where one streaming frame's time goes: ``python -m mmtok_ros.bench.frame_profile``.

The node's steady-state work per window (one new frame tokenized, the transformer on the
cached window, the head; ``timing.time_streaming_frame``) of a model file, at each thread
count asked for, split by module with forward hooks (perf_counter around each module, so
nested modules are not counted twice: tokenizer CNNs, routers, LN, attention = QKV + SDPA +
projection, MLP, head; the rest is routing glue: Top-K, gather, scatter, concatenation,
Python) and by operator with ``torch.profiler`` (self CPU time). Also the preprocessing the
node does on its inference thread per frame: a 640x480 image's area resize and a LiDAR
scan's BEV grid.
"""
from __future__ import annotations

import json
import os
import statistics
import time
from collections import defaultdict

import numpy as np

SECTIONS = {'GridTokenizer': 'tokenizer CNN', 'PointTokenizer': 'tokenizer RSSI',
            'Router': 'router', 'LayerNorm': 'layer norm', 'Attention': 'attention (QKV+SDPA+proj)',
            'MLP': 'MLP', 'head': 'head'}


def _hooks(model, acc: dict[str, float]):
    stack: list[float] = []
    handles = []
    for name, mod in model.named_modules():
        key = 'head' if name == 'head' else type(mod).__name__
        if key not in SECTIONS:
            continue

        def pre(_m, _i, stack=stack):
            stack.append(time.perf_counter())

        def post(_m, _i, _o, key=key, stack=stack):
            acc[SECTIONS[key]] += time.perf_counter() - stack.pop()
        handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    return handles


def profile_frame(model_path, threads: int, *, reps: int = 20, top_ops: int = 8) -> dict:
    """Per-section and per-operator milliseconds of one streaming frame (mean of ``reps``)."""
    import torch

    from ..model.checkpoint import load_model
    from ..runtime.predictor import StreamingPredictor
    from ..timing import streaming_windows, time_streaming_frame
    torch.set_num_threads(threads)
    model, _ = load_model(model_path)
    clean = time_streaming_frame(model, reps=reps)['median_ms']
    window = streaming_windows(model.cfg)
    pred = StreamingPredictor(model)
    pred.warm_up(window(0))
    pred.predict(window(0))
    acc: dict[str, float] = defaultdict(float)
    handles = _hooks(model, acc)
    totals = []
    try:
        for k in range(1, reps + 1):
            totals.append(pred.predict(window(k)).inference_ms)
    finally:
        for h in handles:
            h.remove()
    sections = {k: 1e3 * v / reps for k, v in acc.items()}
    sections['glue (top-k, gather, scatter, cat, python)'] = (
        statistics.mean(totals) - sum(sections.values()))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for k in range(reps + 1, 2 * reps + 1):
            pred.predict(window(k))
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    return {'threads': threads, 'median_ms_without_hooks': clean,
            'mean_ms_with_hooks': statistics.mean(totals), 'sections_ms': sections,
            'top_ops_self_ms': {e.key: e.self_cpu_time_total / 1e3 / reps
                                for e in ops[:top_ops]},
            'load_average': os.getloadavg()}


def profile_preprocessing(cfg, *, reps: int = 20, points: int = 20000) -> dict:
    """ms per frame of the image resize (640x480 RGB) and the BEV of ``points`` points."""
    from ..model.preprocess import image_to_input, points_to_bev
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    x0, x1, y0, y1 = cfg.bev_range_m
    cloud = np.stack([rng.uniform(x0, x1, points), rng.uniform(y0, y1, points),
                      rng.uniform(-2.0, 3.0, points), rng.uniform(0, 255, points)],
                     1).astype(np.float32)
    out = {}
    for name, fn in (('image resize 640x480 -> 128x128', lambda: image_to_input(rgb, cfg)),
                     (f'LiDAR BEV ({points} points)', lambda: points_to_bev(cloud, cfg))):
        fn()
        ms = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ms.append((time.perf_counter() - t0) * 1e3)
        out[name] = statistics.median(ms)
    return out


def main(argv=None) -> int:
    import argparse

    from ..model.checkpoint import load_model
    from ..model.shipped import shipped_model_path
    p = argparse.ArgumentParser(prog='python -m mmtok_ros.bench.frame_profile',
                                description=__doc__.split('\n\n')[0])
    p.add_argument('--model', default='')
    p.add_argument('--threads', default='1,2')
    p.add_argument('--reps', type=int, default=20)
    p.add_argument('--out', default='')
    args = p.parse_args(argv)
    path = args.model or shipped_model_path('routed')
    rows = [profile_frame(path, int(t), reps=args.reps) for t in args.threads.split(',')]
    pre = profile_preprocessing(load_model(path)[0].cfg, reps=args.reps)
    for r in rows:
        print(f"\n{r['threads']} thread(s): {r['median_ms_without_hooks']:.1f} ms median "
              f"(with hooks {r['mean_ms_with_hooks']:.1f}), load {r['load_average']}")
        for k, v in sorted(r['sections_ms'].items(), key=lambda kv: -kv[1]):
            print(f'  {k:45s} {v:6.2f} ms')
        print('  top operators (self CPU):')
        for k, v in r['top_ops_self_ms'].items():
            print(f'    {k:55s} {v:6.2f} ms')
    print('\npreprocessing on the inference thread, per frame:')
    for k, v in pre.items():
        print(f'  {k:45s} {v:6.2f} ms')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump({'frame': rows, 'preprocessing_ms': pre}, f, indent=1)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
