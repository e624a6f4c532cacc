"""Part ``streaming``: the node's per-frame work at batch 1 (one new frame tokenized, the
transformer on cached tokens): ``StreamingPredictor`` as is and with K fixed once, fp32 and
bf16; CUDA graphs (``cuda_graphs.py``); ``torch.compile`` (default and ``reduce-overhead``,
graph breaks counted); and the device-to-host syncs of one window, which show what reading
r_l from the device in every routed layer costs."""
from __future__ import annotations

import copy
import time

from .cuda_graphs import random_frames, time_graphed
from .inputs import k_fixed_once, load_models
from .runner import Check

# torch.compile runs in order of interest, each guarded: a later one may meet the part's end
COMPILE_PLAN = [('routed', None, False), ('mha', None, False), ('routed', 'reduce-overhead', False),
                ('mha', 'reduce-overhead', False), ('routed', None, True)]


def count_syncs(model, device) -> dict | None:
    """Device-to-host syncs (CUDA's sync debug mode) of one window's transformer + head
    (``encode``), and of one ``StreamingPredictor.predict`` with one new frame (which also
    reads p and ``tokens_per_layer()``)."""
    import warnings

    import torch

    from ...runtime.predictor import StreamingPredictor
    if device.type != 'cuda':
        return None
    cfg = model.cfg
    tokens = torch.zeros((1, cfg.n_frames, cfg.tokens_per_frame, cfg.d_model), device=device)
    frames = random_frames(cfg, cfg.n_frames + 1)
    pred = StreamingPredictor(model, device=device)
    wins = [_window_of(frames[k:k + cfg.n_frames], k) for k in (0, 1)]
    out = {}
    with torch.no_grad():
        model.encode(tokens)
        pred.predict(wins[0])
        torch.cuda.synchronize(device)
        for name, fn in (('encode', lambda: model.encode(tokens)),
                         ('predict', lambda: pred.predict(wins[1]))):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                torch.cuda.set_sync_debug_mode('warn')
                try:
                    fn()
                finally:
                    torch.cuda.set_sync_debug_mode('default')
            out[name] = sum('synchroniz' in str(w.message).lower() for w in caught)
    return out


def _window_of(frames: list[dict], k: int):
    """The node's ``Window`` of consecutive ``frames``, the first one stamped k + 1 periods."""
    import numpy as np

    from ...constants import FRAME_PERIOD_NS
    from ...data.window import Window
    arrays = {m: np.stack([f[m] for f in frames]) for m in frames[0]}
    stamps = (np.arange(k, k + len(frames), dtype=np.int64) + 1) * FRAME_PERIOD_NS
    return Window(arrays, stamps, int(stamps[-1]))


def _compiled_copy(model, mode: str | None):
    import logging

    import torch
    torch._logging.set_logs(dynamo=logging.ERROR)      # graph breaks are counted, not printed
    c = copy.deepcopy(model)
    kw = {} if mode is None else {'mode': mode}
    c.tokenize = torch.compile(c.tokenize, dynamic=False, **kw)
    c.encode = torch.compile(c.encode, dynamic=False, **kw)
    return c


def _run_compiled(check: Check, res: dict, add, reps: int, warmup: int) -> None:
    """The ``torch.compile`` rows of :data:`COMPILE_PLAN`, while the part has time left."""
    from ...runtime.predictor import StreamingPredictor
    from ...timing import time_streaming_frame
    dev = check.device
    for method, mode, fixed_k in COMPILE_PLAN:
        model = check.models[method][1]
        label = 'torch.compile' + (f' {mode}' if mode else '') + (
            ', K fixed once' if fixed_k else '')
        key = f'{method} {label} fp32'
        budget = min(60.0, check.deadlines.left() - 2)
        if budget < 10:
            res[key] = {'status': 'skipped', 'error': 'out of time'}
            continue

        def run_compiled():
            import torch._dynamo
            breaks = sum(torch._dynamo.utils.counters['graph_break'].values())
            c = _compiled_copy(model, mode)
            if fixed_k:
                c.set_keep_override(1.0)
            tic = time.perf_counter()
            pred = StreamingPredictor(c, device=dev)
            time_streaming_frame(c, device=dev, reps=1, warmup=1, predictor=pred)
            first = time.perf_counter() - tic
            out = time_streaming_frame(c, device=dev, reps=reps, warmup=warmup,
                                       predictor=StreamingPredictor(c, device=dev))
            return {**out, 'compile_and_first_windows_s': round(first, 1),
                    'graph_breaks': sum(torch._dynamo.utils.counters['graph_break']
                                        .values()) - breaks}
        out = check.guarded(res, key, budget, run_compiled)
        if out is not None:
            add(method, label, 'fp32', out)


def part_streaming(check: Check, res: dict) -> None:
    """Per-frame p50 at batch 1: eager as is, K fixed once, CUDA graphs, torch.compile."""
    from ...runtime.predictor import StreamingPredictor
    from ...timing import time_streaming_frame
    load_models(check)
    dev = check.device
    cuda = dev.type == 'cuda'
    reps = check.reps_for(100)
    warmup = check.warmup
    precisions = ('fp32',) if not cuda else ('fp32', 'bf16')
    graphs = check.args.cuda_graphs == 'on' or (check.args.cuda_graphs == 'auto' and cuda)
    compile_ = check.args.compile == 'on' or (check.args.compile == 'auto' and cuda)
    res['rows'] = []
    res['note'] = ('per frame: tokenize the one new frame + transformer + head on the cached '
                   'tokens, batch 1, random inputs of the shipped models\' shapes; "K fixed '
                   'once": set_keep_override(1.0), the same K_l without reading r_l from the '
                   'device in every layer')

    def add(method, option, precision, out):
        row = {'method': method, 'option': option, 'precision': precision, **out}
        res['rows'].append(row)
        check.say(f"streaming {method} {option} {precision}: p50 {row['median_ms']:.2f} ms")
        check.save()

    for method, (cpu, model, path) in check.models.items():
        key = f'{method} syncs per window'
        if cuda:
            n = check.guarded(res, key, 20, lambda: count_syncs(model, dev))
            fixed = k_fixed_once(model)
            m = check.guarded(res, key + ' (K fixed once)', 20, lambda: count_syncs(fixed, dev))
            res.setdefault('syncs_per_window', {})[method] = {'as is': n, 'K fixed once': m}
        for precision in precisions:
            variants = [('eager', model)]
            if method == 'routed':
                variants.append(('eager, K fixed once', k_fixed_once(model)))
            for option, mdl in variants:
                out = check.guarded(res, f'{method} {option} {precision}', 30, lambda: (
                    time_streaming_frame(mdl, device=dev, reps=reps, warmup=warmup,
                                         predictor=StreamingPredictor(mdl, device=dev,
                                                                      precision=precision))))
                if out is not None:
                    add(method, option, precision, out)
            fixed = variants[-1][1]
            # on a CPU (dry run) the same static buffers run without capture
            label = ('CUDA graphs' if graphs else 'static buffers, no capture') + (
                ', K fixed once' if method == 'routed' else '')
            if graphs or (not cuda and method == 'routed'):   # dry: one model is enough
                out = check.guarded(res, f'{method} {label} {precision}', 30, lambda: (
                    time_graphed(fixed, dev, precision, reps, warmup, capture=graphs)))
                if out is not None:
                    add(method, label, precision, out)
    if compile_:
        _run_compiled(check, res, add, reps, warmup)
    else:
        res['torch.compile'] = 'not run (--compile off, or auto on a CPU)'
    if not graphs:
        res['CUDA graphs'] = 'not run (CUDA only, or --cuda-graphs off)'
