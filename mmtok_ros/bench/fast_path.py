"""``mmtok bench --heldout``: the node's CPU paths side by side.

A path is the node's (``backend``, ``torch_threads``, ``keep_ratio_scale``) as the node
takes them (``runtime.backends``): ``torch``, or ``torch-int8`` (measured, not a node backend:
the blocks' linear layers int8, ``model.quantize``; fixed thread counts only); N >= 1
intra-op threads, or 0 (auto: one intra-op thread plus work-sharing helpers on the other
cores); a keep-ratio scale (0: the learned r_l). For each path, on the same model file:

* **accuracy** on the held-out windows (``bench/heldout``, the committed file), every
  window through the node's streaming predictor in file order (the token cache cleared
  between scenarios), at the model file's decision threshold, against the next-frame label
  (the model card's) and the 3-frame one; the first path is the reference: the difference
  in points, the largest |p - p_ref| and the decisions that differ;
* **time** of the node's steady-state work per window (one new frame + the transformer,
  ``timing.time_streaming_round_robin``), all paths interleaved window by window in this
  one process, so that they compare as ratios whatever else the machine is doing; the load
  average is recorded with them. Caveat: N >= 2 intra-op threads timed between other paths
  can look far better than alone on a busy machine (docs/results.md, "Fast CPU path"); the
  e2e benchmark's offline time (``bench.e2e.offline_frame_ms``) is each path alone.
"""
from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CpuPath:
    backend: str = 'torch'
    threads: int = 1
    keep_scale: float = 0.0

    @property
    def label(self) -> str:
        return (f'{self.backend}, ' + ('auto threads' if self.threads == 0 else
                                       f'{self.threads} thread' + 's' * (self.threads > 1))
                + (f', keep scale {self.keep_scale:g}' if self.keep_scale else ''))


def paths(backends, threads, keep_scales=(0.0,)) -> list[CpuPath]:
    """Every backend at every thread count and keep scale, in the order given (the first:
    the reference)."""
    return [CpuPath(b, int(t), float(k)) for b in backends for t in threads for k in keep_scales]


BACKENDS = ('torch', 'torch-int8')


def _load(model_path, path: CpuPath):
    from ..errors import UserInputError
    from ..runtime.backends import load_predictor
    if path.backend not in BACKENDS:
        raise UserInputError(f'the CPU paths are {", ".join(BACKENDS)}, not {path.backend!r}')
    if path.backend == 'torch-int8' and path.threads == 0:
        raise UserInputError('torch-int8 is measured at fixed thread counts only (--threads N)')
    loaded = load_predictor(model_path, backend='torch', device='cpu', threads=path.threads)
    if path.backend == 'torch-int8':
        from ..model.quantize import quantize_int8
        quantize_int8(loaded.predictor.model)
        loaded.threading += ', int8 linears'
    if path.keep_scale:          # the node's keep_ratio_scale (RsuRuntime does the same)
        loaded.predictor.model.set_keep_override(path.keep_scale)
    return loaded


def heldout_probabilities(predictor, data) -> np.ndarray:
    """p_blocked of every held-out window, in file order, through ``predictor`` as the node
    runs it (one new frame per window within a scenario; cache cleared between them)."""
    ps, group = [], None
    for row in range(len(data)):
        if data.groups[row] != group:
            predictor.clear()
            group = data.groups[row]
        ps.append(predictor.predict(data.window(row)).p_blocked)
    predictor.clear()
    return np.asarray(ps, np.float64)


def heldout_accuracy(model_path, cpu_paths: list[CpuPath], data=None) -> list[dict]:
    """One row per path: accuracy (next-frame and 3-frame label) and, against the first
    path, the accuracy difference in points, max |delta p| and the decisions changed."""
    import torch

    from .heldout import load
    data = data if data is not None else load()
    before = torch.get_num_threads()
    rows, ref = [], None
    try:
        for path in cpu_paths:
            loaded = _load(model_path, path)
            p = heldout_probabilities(loaded.predictor, data)
            getattr(loaded.predictor, 'close', lambda: None)()
            thr = loaded.model_threshold
            blocked = p >= thr
            row = {'path': path.label, 'backend': path.backend, 'threads': path.threads,
                   'keep_scale': path.keep_scale, 'threshold': thr, 'windows': len(data),
                   'accuracy': float((blocked == (data.labels == 1)).mean()),
                   'accuracy_h3': float((blocked == (data.labels_h3 == 1)).mean())}
            if ref is None:
                ref = (p, blocked, row)
            row['accuracy_diff_points'] = 100.0 * (row['accuracy'] - ref[2]['accuracy'])
            row['max_abs_p_diff'] = float(np.abs(p - ref[0]).max())
            row['decisions_changed'] = int((blocked != ref[1]).sum())
            rows.append(row)
    finally:
        torch.set_num_threads(before)
    return rows


def offline_times(model_path, cpu_paths: list[CpuPath], *, reps: int = 30,
                  warmup: int = 3) -> list[dict]:
    """Per path the median / p90 ms of one streaming frame, timed round-robin with the
    others, and the ratio of the first path's median to its own (speed-up)."""
    from ..timing import percentile, time_streaming_round_robin
    loaded = {p.label: (_load(model_path, p), p) for p in cpu_paths}
    predictors = {label: (lp.predictor, p.threads or 1) for label, (lp, p) in loaded.items()}
    load_before = os.getloadavg()
    cfg = next(iter(loaded.values()))[0].predictor.model.cfg
    ms = time_streaming_round_robin(cfg, predictors, reps=reps, warmup=warmup)
    load_after = os.getloadavg()
    ref = statistics.median(ms[cpu_paths[0].label])
    rows = []
    for label, (lp, p) in loaded.items():
        med = statistics.median(ms[label])
        stats = dict(getattr(getattr(lp.predictor, 'pool', None), 'stats', {}) or {})
        getattr(lp.predictor, 'close', lambda: None)()
        rows.append({'path': label, 'backend': p.backend, 'threads': p.threads,
                     'runs_as': lp.threading, 'median_ms': med,
                     'p90_ms': percentile(ms[label], 90), 'speedup_vs_first': ref / med,
                     'reps': reps, 'work_sharing': stats,
                     'load_average_before': load_before, 'load_average_after': load_after})
    return rows


def format_rows(acc: list[dict], times: list[dict]) -> str:
    lines = ['| path | runs as | accuracy [%] | Δ [points] | H=3 [%] | max abs Δp | decisions '
             'changed | one frame median / p90 [ms] | speed-up |', '|---' * 9 + '|']
    by = {t['path']: t for t in times}
    for a in acc:
        t = by.get(a['path'], {})
        timing = (f"{t['median_ms']:.1f} / {t['p90_ms']:.1f}" if t else '-')
        lines.append(f"| {a['path']} | {t.get('runs_as', '-')} | {100 * a['accuracy']:.2f} | "
                     f"{a['accuracy_diff_points']:+.2f} | {100 * a['accuracy_h3']:.2f} | "
                     f"{a['max_abs_p_diff']:.4f} | {a['decisions_changed']} | {timing} | "
                     + (f"{t['speedup_vs_first']:.2f}x |" if t else '- |'))
    return '\n'.join(lines)


def run_heldout(model_path, cpu_paths: list[CpuPath], *, out: str | Path, reps: int = 30,
                data_path: str | Path | None = None) -> dict:
    """Accuracy and interleaved timing of every path; prints the table, writes ``out``."""
    from .heldout import DEFAULT_PATH, load
    data = load(data_path or DEFAULT_PATH)
    acc = heldout_accuracy(model_path, cpu_paths, data)
    times = offline_times(model_path, cpu_paths, reps=reps) if reps > 0 else []
    result = {'model': str(model_path), 'heldout_windows': str(data_path or DEFAULT_PATH),
              'accuracy': acc, 'offline_one_frame': times}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + '\n')
    print(f'\n{model_path}: {len(data)} held-out windows; one streaming frame timed '
          f'round-robin over the paths ({reps} windows each), load average '
          f"{times[0]['load_average_before'] if times else os.getloadavg()}")
    print(format_rows(acc, times))
    print(f'wrote {out}')
    return result


__all__ = ['BACKENDS', 'CpuPath', 'format_rows', 'heldout_accuracy', 'heldout_probabilities',
           'offline_times', 'paths', 'run_heldout']
