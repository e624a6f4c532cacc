"""Timing shared by the node, the benchmarks, training reports, beam tables and the commands:
one percentile rule, a rolling window of latencies, batch-1 stage timing, the peak memory of
one inference, :func:`benchmark_methods` (latency, memory and FLOPs of several methods) and
:func:`time_streaming_frame` (one new frame plus the transformer: the node's work per window).

A timing reads the clock only after CUDA has finished (``devices.synchronize``); models are
timed round-robin (one window of each per round) so that machine noise hits all alike, after
a warm-up. ``python -m mmtok_ros.timing '<json spec>'`` is the fresh process of
:func:`cpu_peak_mb`.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from .resources import CudaPeakMemory, peak_rss_growth_mb, run_fresh

STAGES = ('tokenize', 'transformer', 'head')


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100), interpolated linearly between the two nearest ranks
    (numpy's default, so q = 50 is the median); None if there are no values."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        return None
    pos = min(max(q, 0.0), 100.0) / 100.0 * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class RollingPercentiles:
    """Percentiles over the last ``size`` samples (latency p50/p99 for /diagnostics)."""

    def __init__(self, size: int = 500) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        self._values.append(float(value))

    def percentile(self, q: float) -> float | None:
        return percentile(self._values, q)


@dataclass
class Candidate:
    """A model being timed and its stage times in milliseconds, one entry per timed window."""
    method: str
    gamma: float | None
    model: Any                                   # MultiModalTransformer
    total_ms: list[float] = field(default_factory=list)
    stage_ms: dict[str, list[float]] = field(
        default_factory=lambda: {s: [] for s in STAGES})

    def clear(self) -> None:
        self.total_ms.clear()
        for v in self.stage_ms.values():
            v.clear()

    def summary(self) -> dict:
        """Median and p90 of the whole window, median of each stage (ms)."""
        return {'latency_ms_median': statistics.median(self.total_ms),
                'latency_ms_p90': percentile(self.total_ms, 90),
                'stages_ms_median': {s: statistics.median(v) for s, v in self.stage_ms.items()}}


def build_candidates(preset_name: str, methods: Sequence[str], gammas: Sequence[float],
                     prune: float = 0.0) -> list[Candidate]:
    """One fresh model per (method, gamma); gamma only varies the routed methods."""
    from .model import MultiModalTransformer, preset
    from .model.compress import prune_model
    from .model.config import ROUTED_METHODS
    out = []
    for method in methods:
        for gamma in (gammas if method in ROUTED_METHODS else [None]):
            cfg = preset(preset_name, method=method,
                         **({} if gamma is None else {'target_keep_ratio': gamma}))
            model = MultiModalTransformer(cfg).eval()
            if prune:
                prune_model(model, heads_fraction=prune, mlp_fraction=prune)
            out.append(Candidate(method, gamma, model))
    return out


def time_once(c: Candidate, window: dict, device, precision: str = 'fp32') -> None:
    """Run one window through ``c.model`` and record the stage times (milliseconds)."""
    import torch

    from .devices import synchronize
    from .model.compress import autocast_for
    with torch.no_grad(), autocast_for(device, precision):
        synchronize(device)
        t0 = time.perf_counter()
        tokens = c.model.tokenize(window)
        synchronize(device)
        t1 = time.perf_counter()
        x = c.model.transform(tokens)
        synchronize(device)
        t2 = time.perf_counter()
        c.model.readout(x)
        synchronize(device)
        t3 = time.perf_counter()
    c.stage_ms['tokenize'].append((t1 - t0) * 1e3)
    c.stage_ms['transformer'].append((t2 - t1) * 1e3)
    c.stage_ms['head'].append((t3 - t2) * 1e3)
    c.total_ms.append((t3 - t0) * 1e3)


def time_round_robin(candidates: Sequence[Candidate], window: dict, device, *, reps: int,
                     precision: str = 'fp32', progress: bool = False) -> None:
    """``reps`` rounds, each timing one window of every candidate (noise hits all alike)."""
    from tqdm import tqdm
    for _ in tqdm(range(reps), desc='timing rounds', disable=not progress):
        for c in candidates:
            time_once(c, window, device, precision)


def cpu_peak_mb(spec: dict) -> float | None:
    """Peak CPU memory (MiB) of one inference of the model ``spec`` describes (preset,
    method, gamma, prune, precision, threads), measured in a fresh process
    (``resources.run_fresh``); None where /proc is not available."""
    out = run_fresh(__name__, spec)
    return None if out is None else float(out['peak_mb'])


def _probe(spec: dict) -> float:
    """Inside the fresh process of :func:`cpu_peak_mb`."""
    import torch

    from .model.compress import autocast_for
    from .model.flops import dummy_window
    torch.set_num_threads(int(spec.get('threads', torch.get_num_threads())))
    c = build_candidates(spec['preset'], [spec['method']],
                         [spec['gamma']] if spec['gamma'] is not None else [0.5],
                         spec.get('prune', 0.0))[0]
    window = dummy_window(c.model.cfg)
    with torch.no_grad(), autocast_for('cpu', spec.get('precision', 'fp32')):
        return peak_rss_growth_mb(lambda: c.model(window))


def benchmark_methods(preset_name: str, *, device: str | None = None, methods: Sequence[str],
                      gammas: Sequence[float], reps: int = 7, warmup: int = 2,
                      precision: str = 'fp32', prune: float = 0.0,
                      progress: bool = True) -> list[dict]:
    """Batch-1 latency (median, p90, per stage), peak memory and FLOPs of every (method,
    gamma) on a dummy window of ``preset_name``: one row each (``mmtok bench``, Table VI)."""
    import torch
    from tqdm import tqdm

    from .devices import device_name, resolve_device
    from .model.flops import count_flops, dummy_window
    dev, _ = resolve_device(device)
    candidates = build_candidates(preset_name, methods, gammas, prune)
    window = dummy_window(candidates[0].model.cfg, batch=1, device=dev)
    peak_mb = {}
    for c in tqdm(candidates, desc='warm-up + memory', disable=not progress):
        c.model.to(dev)
        if dev.type == 'cuda':
            with CudaPeakMemory(dev) as mem:
                for _ in range(max(1, warmup)):
                    time_once(c, window, dev, precision)
            peak_mb[id(c)] = mem.peak_mb
        else:  # RSS inside this process is shared by all models: measure in a fresh one
            for _ in range(max(1, warmup)):
                time_once(c, window, dev, precision)
            peak_mb[id(c)] = cpu_peak_mb({
                'preset': preset_name, 'method': c.method, 'gamma': c.gamma, 'prune': prune,
                'precision': precision, 'threads': torch.get_num_threads()})
        c.clear()
    time_round_robin(candidates, window, dev, reps=reps, precision=precision,
                     progress=progress)
    rows = []
    for c in candidates:
        flops = count_flops(c.model)
        rows.append({
            'preset': preset_name, 'method': c.method, 'gamma': c.gamma,
            'device': dev.type, 'device_name': device_name(dev), 'precision': precision,
            'prune': prune, 'reps': reps, **c.summary(), 'peak_mem_mb': peak_mb[id(c)],
            'gflops': flops['gflops'], 'tokenizer_gflops': flops['tokenizer_gflops'],
            'tokens_per_layer': flops['tokens_per_layer']})
    baseline = next((r for r in rows if r['method'] == 'mha'), None)
    for r in rows:
        r['speedup_vs_mha'] = (baseline['latency_ms_median'] / r['latency_ms_median']
                               if baseline else None)
    return rows


def streaming_windows(cfg):
    """``window(k)``: random inputs of ``cfg``'s shapes, frames k .. k+T-1, so that each
    window is one frame newer than the last (the node's steady state)."""
    import numpy as np

    from .constants import FRAME_PERIOD_NS
    from .data.window import Window
    from .model.flops import dummy_window
    frames = {m: v[0].numpy() for m, v in dummy_window(cfg).items()}          # (T, ...)
    frames['present'] = np.ones((cfg.n_frames, len(cfg.modalities)), bool)

    def window(k: int) -> Window:
        stamps = (np.arange(k, k + cfg.n_frames, dtype=np.int64) + 1) * FRAME_PERIOD_NS
        return Window(frames, stamps, int(stamps[-1]))
    return window


def time_streaming_frame(model, *, device='cpu', reps: int = 30, warmup: int = 3,
                         predictor=None) -> dict:
    """The node's steady-state work per window, offline: tokenize ONE new frame and run the
    transformer and head with the other frames' tokens cached
    (``runtime.predictor.StreamingPredictor``), on random inputs of the model's shapes.

    Returns the median and p90 (ms) of ``reps`` windows after ``warmup`` and the torch thread
    count they ran with (compare it with the node's in-node inference time at that count).
    ``predictor``: time this streaming predictor instead (e.g. an ``OnnxStreamingPredictor``
    of the exported ``model``), on the same windows.
    """
    import torch

    from .runtime.predictor import StreamingPredictor
    if predictor is None:
        predictor = StreamingPredictor(model, device=device)
    ms = time_streaming_round_robin(model.cfg, {'one': (predictor, None)}, reps=reps,
                                    warmup=warmup)['one']
    return {'median_ms': statistics.median(ms), 'p90_ms': percentile(ms, 90), 'reps': reps,
            'threads': torch.get_num_threads(), 'device': str(predictor.device)}


def time_streaming_round_robin(cfg, predictors: dict, *, reps: int = 30,
                               warmup: int = 3) -> dict[str, list[float]]:
    """:func:`time_streaming_frame` of several streaming predictors at once, one window of
    each per round (machine noise hits all alike: compare them as ratios). ``predictors``:
    label -> (predictor, torch intra-op threads to set before its window, or None).
    Returns label -> the ``reps`` inference times (ms) after ``warmup`` rounds."""
    import torch
    window = streaming_windows(cfg)
    before = torch.get_num_threads()
    out: dict[str, list[float]] = {label: [] for label in predictors}
    try:
        for predictor, threads in predictors.values():
            if threads:
                torch.set_num_threads(threads)
            predictor.warm_up(window(0))
            predictor.predict(window(0))              # every frame of the first window cached
        for k in range(1, warmup + reps + 1):
            for label, (predictor, threads) in predictors.items():
                if threads:
                    torch.set_num_threads(threads)
                pred = predictor.predict(window(k))
                if pred.frames_tokenized != 1:
                    raise RuntimeError(f'streaming timing tokenized {pred.frames_tokenized} '
                                       'frames of a window one frame newer than the last; '
                                       'expected 1')
                if k > warmup:
                    out[label].append(pred.inference_ms)
    finally:
        torch.set_num_threads(before)
    return out


__all__ = ['Candidate', 'RollingPercentiles', 'STAGES', 'benchmark_methods', 'build_candidates',
           'cpu_peak_mb', 'percentile', 'streaming_windows', 'time_once', 'time_round_robin',
           'time_streaming_frame', 'time_streaming_round_robin']


if __name__ == '__main__':
    print(json.dumps({'peak_mb': _probe(json.loads(sys.argv[1]))}))
