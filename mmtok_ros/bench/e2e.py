"""End-to-end benchmark: replay a bag through the real node processes (Isaac ROS style) and
set the node's in-node inference time beside the offline benchmark's for the same work.

For each model: first, in this process, the offline time of the node's steady-state work per
window (one new frame tokenized plus the transformer on a cached window,
``timing.time_streaming_frame``) at the node's torch thread count; then the bag through
``rsu_node`` (``ros.pipeline.run_pipeline``). The row holds both and their ratio
(``inference_vs_bench``: node inference p50 / offline median).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..reports.e2e import format_table
from ..ros.pipeline import run_pipeline


def offline_frame_ms(model_path: str | Path, *, device: str, threads: int,
                     reps: int = 30, onnx_path: Path | None = None,
                     backend: str = 'torch') -> dict:
    """:func:`~mmtok_ros.timing.time_streaming_frame` of the model in ``model_path`` as the
    node runs it with ``backend`` and ``threads`` (0: auto, see ``runtime.backends``; torch's
    thread count is restored afterwards); with ``onnx_path``, of its exported graphs under
    onnxruntime."""
    import torch

    from ..model.checkpoint import load_model
    from ..runtime.backends import load_predictor
    from ..timing import time_streaming_frame
    before = torch.get_num_threads()
    try:
        if onnx_path is not None:
            from ..runtime.onnx_predictor import OnnxStreamingPredictor
            torch.set_num_threads(threads or before)
            model, _ = load_model(model_path, device=device)
            predictor = OnnxStreamingPredictor(onnx_path, threads=threads or None)
        else:
            predictor = load_predictor(model_path, backend=backend, device=device,
                                       threads=threads).predictor
            model = predictor.model
        out = time_streaming_frame(model, device=device, reps=reps, predictor=predictor)
        getattr(predictor, 'close', lambda: None)()
        out['threads'] = threads
        return out
    finally:
        torch.set_num_threads(before)


def exported(model_path: str | Path, scratch: Path) -> Path:
    """The ``.onnx`` of ``model_path`` for the onnxruntime backend (exported once, checked
    against PyTorch within 1e-4 by ``export_model``)."""
    from ..model.checkpoint import load_model
    from ..model.export import export_model
    out = scratch / f'{Path(model_path).stem}.onnx'
    if not out.is_file():
        export_model(load_model(model_path)[0], out)
    return out


def run_label(label: str, backend: str, threads: int, *, several_threads: bool) -> str:
    """'proposed', 'proposed (onnxruntime)', 'proposed (torch, auto threads)' ..."""
    parts = [backend] if backend != 'torch' or several_threads else []
    if several_threads:
        parts.append('auto threads' if threads == 0 else f'{threads} thread' + 's' * (threads > 1))
    return f'{label} ({", ".join(parts)})' if parts else label


def run_e2e(bag: str | Path, models: dict[str, str | Path], *, rate: float = 1.0,
            out: str | Path = 'results/bench_e2e.json', device: str = 'cpu',
            threads: int | Sequence[int] | None = None, bench_reps: int = 30,
            log_dir: str | Path = 'results/logs',
            backends: tuple[str, ...] = ('torch',)) -> list[dict]:
    """Every model in ``models`` (label -> file) over ``bag``, one after the other, on each
    of ``backends`` (``onnxruntime``: the node runs the model's exported graphs) at each of
    ``threads`` (the node's ``torch_threads``; 0: auto; None: this process's count)."""
    import torch
    counts = [threads] if threads is None or isinstance(threads, int) else list(threads)
    counts = [torch.get_num_threads() if t is None else int(t) for t in counts]
    rows = []
    runs = [(label, path, backend, n) for label, path in models.items() for backend in backends
            for n in counts]
    for label, path, backend, n in runs:
        onnx = exported(path, Path(log_dir)) if backend == 'onnxruntime' else None
        node_model = onnx or path
        label = run_label(label, backend, n, several_threads=len(counts) > 1)
        print(f'[e2e] {label}: offline one-frame timing ({n or "auto"} threads, {bench_reps} '
              f'windows), then replaying {bag} at {rate:g}x through rsu_node ({node_model})',
              flush=True)
        bench = offline_frame_ms(path, device=device, threads=n, reps=bench_reps,
                                 onnx_path=onnx, backend=backend)
        row = run_pipeline(bag, node_model, label=label, log_dir=Path(log_dir), rate=rate,
                           device=device, torch_threads=n, backend=backend)
        row.update({'bench_frame_ms': bench['median_ms'], 'bench_frame_p90_ms': bench['p90_ms'],
                    'bench_threads': bench['threads'], 'bench_reps': bench['reps']})
        row['inference_vs_bench'] = (row['inference_p50_ms'] / bench['median_ms']
                                     if row['inference_p50_ms'] and bench['median_ms'] else None)
        rows.append(row)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([{k: v for k, v in r.items() if k != 'statuses'} for r in rows],
                              indent=1) + '\n')
    return rows


def resolve_models(model: str = '', mha_model: str = '', *,
                   scratch: str | Path = 'results/models') -> dict[str, Path]:
    """{'proposed': file, 'mha': file}: given files, shipped files, or untrained rsu-cpu
    models written to ``scratch`` (enough for latency: it does not depend on the weights)."""
    from ..model import MultiModalTransformer, preset
    from ..model.checkpoint import save_model
    from ..model.shipped import choose_model_file, shipped_model_path
    chosen = {}
    for label, explicit, method in (('proposed', model, 'routed'), ('mha', mha_model, 'mha')):
        path = choose_model_file(explicit, method)
        if path is None:
            path = Path(scratch) / f'untrained_rsu_cpu_{method}.pt'
            if not path.is_file():
                save_model(path, MultiModalTransformer(preset('rsu-cpu', method=method)),
                           meta={'note': 'untrained: for latency benchmarks only'})
            print(f'[e2e] no trained {label} model found ({shipped_model_path(method)}); using '
                  f'untrained rsu-cpu {method} weights {path} (latency does not depend on them)')
        chosen[label] = path
    return chosen


__all__ = ['format_table', 'offline_frame_ms', 'resolve_models', 'run_e2e', 'run_label']
