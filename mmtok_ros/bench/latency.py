"""``mmtok bench``: single-window inference latency, memory and FLOPs of every method, one run.

Methods are timed round-robin (one window of each method per round) so that machine noise
hits all of them alike; compare them by the ratios of their medians. CUDA is synchronized
before every clock read and every model is warmed up first.
"""
from __future__ import annotations

import json
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from ..devices import choose_device, synchronize
from ..model import MultiModalTransformer, preset
from ..model.compress import autocast_for, prune_model
from ..model.flops import count_flops, dummy_window
from .memory import CudaPeakMemory
from .memory_probe import cpu_peak_mb

ROUTED_METHODS = ('routed', 'ablation1', 'ablation2', 'ablation3')


@dataclass
class Candidate:
    method: str
    gamma: float | None
    model: MultiModalTransformer
    total_ms: list[float] = field(default_factory=list)
    stage_ms: dict[str, list[float]] = field(
        default_factory=lambda: {'tokenize': [], 'transformer': [], 'head': []})


def device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads'


def resolve_device(requested: str | None) -> torch.device:
    """A benchmark never falls back silently: an unusable device is an error."""
    device, problem = choose_device(requested)
    if problem:
        raise ValueError(problem.replace('; falling back to cpu', '').replace('; using cpu', ''))
    return torch.device(device)


def build_candidates(preset_name: str, methods: list[str], gammas: list[float],
                     prune: float = 0.0) -> list[Candidate]:
    """One model per (method, gamma); gamma only varies routed methods."""
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


@torch.no_grad()
def time_once(c: Candidate, window: dict, device: torch.device, precision: str) -> None:
    """Run one window through ``c.model`` and record the stage times (milliseconds)."""
    with autocast_for(device, precision):
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


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def run_benchmark(preset_name: str, *, device: str | None = None, methods: list[str],
                  gammas: list[float], reps: int = 7, warmup: int = 2, precision: str = 'fp32',
                  prune: float = 0.0, progress: bool = True) -> list[dict]:
    dev = resolve_device(device)
    candidates = build_candidates(preset_name, methods, gammas, prune)
    cfg = candidates[0].model.cfg
    window = dummy_window(cfg, batch=1, device=dev)
    rows_mem = {}
    for c in tqdm(candidates, desc='warm-up + memory', disable=not progress):
        c.model.to(dev)
        if dev.type == 'cuda':
            with CudaPeakMemory(dev) as mem:
                for _ in range(max(1, warmup)):
                    time_once(c, window, dev, precision)
            rows_mem[id(c)] = mem.peak_mb
        else:  # RSS inside this process is shared by all models: measure in a fresh one
            for _ in range(max(1, warmup)):
                time_once(c, window, dev, precision)
            rows_mem[id(c)] = cpu_peak_mb({
                'preset': preset_name, 'method': c.method, 'gamma': c.gamma, 'prune': prune,
                'precision': precision, 'threads': torch.get_num_threads()})
        c.total_ms.clear()
        for v in c.stage_ms.values():
            v.clear()
    for _ in tqdm(range(reps), desc='timing rounds', disable=not progress):
        for c in candidates:  # round-robin: noise hits every method alike
            time_once(c, window, dev, precision)
    rows = []
    for c in candidates:
        flops = count_flops(c.model)
        rows.append({
            'preset': preset_name, 'method': c.method, 'gamma': c.gamma,
            'device': dev.type, 'device_name': device_name(dev), 'precision': precision,
            'prune': prune, 'reps': reps,
            'latency_ms_median': statistics.median(c.total_ms),
            'latency_ms_p90': p90(c.total_ms),
            'peak_mem_mb': rows_mem[id(c)],
            'gflops': flops['gflops'], 'tokenizer_gflops': flops['tokenizer_gflops'],
            'tokens_per_layer': flops['tokens_per_layer'],
            'stages_ms_median': {k: statistics.median(v) for k, v in c.stage_ms.items()},
        })
    baseline = next((r for r in rows if r['method'] == 'mha'), None)
    for r in rows:
        r['speedup_vs_mha'] = (baseline['latency_ms_median'] / r['latency_ms_median']
                               if baseline else None)
    return rows


def format_mb(value: float | None) -> str:
    """Peak memory for a table; '-' where it could not be measured (no /proc)."""
    return '-' if value is None else f'{value:.0f}'


def format_table(rows: list[dict]) -> str:
    """A Table II/VI-style Markdown table."""
    head = ('| method | γ\' | latency median [ms] | p90 [ms] | speed-up vs mha | peak mem [MB] '
            '| GFLOPs | tokens per layer | tokenize / transformer / head [ms] |')
    lines = [head, '|' + '---|' * 9]
    for r in rows:
        s = r['stages_ms_median']
        speed = f"{r['speedup_vs_mha']:.2f}x" if r['speedup_vs_mha'] else '-'
        gamma = '-' if r['gamma'] is None else f"{r['gamma']:.2f}"
        tokens = ','.join(str(t) for t in r['tokens_per_layer'])
        lines.append(
            f"| {r['method']} | {gamma} | {r['latency_ms_median']:.1f} | {r['latency_ms_p90']:.1f} "
            f"| {speed} | {format_mb(r['peak_mem_mb'])} | {r['gflops']:.2f} | {tokens} "
            f"| {s['tokenize']:.1f} / {s['transformer']:.1f} / {s['head']:.2f} |")
    return '\n'.join(lines)


def write_json(rows: list[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2) + '\n')
    return path
