"""Part ``table7``: Table VII on the device for both shipped models: fp32, fp16 (CUDA only),
bf16, 50 % structured pruning, and for the routed model fp32 with K fixed once; accuracy on
the held-out windows, decisions changed against fp32, batch-1 window latency, peak memory."""
from __future__ import annotations

import copy

from .inputs import k_fixed_once, load_models, load_windows, window_rows
from .measures import accuracy, peak_memory, probabilities, time_window
from .runner import Check

PRUNE = 0.5                    # the paper's 50 % structured sparsity (Tables IX/X)


def _variants(check: Check, method: str, cpu, dev):
    """(name, model, precision) rows of Table VII for one shipped model."""
    from ...model.compress import prune_model
    yield 'fp32', dev, 'fp32'
    if method == 'routed':
        yield 'fp32, K fixed once', k_fixed_once(dev), 'fp32'
    if check.device.type == 'cuda':
        yield 'fp16', dev, 'fp16'
    yield 'bf16', dev, 'bf16'
    pruned = prune_model(copy.deepcopy(cpu), heads_fraction=PRUNE, mlp_fraction=PRUNE)
    pruned.decision_threshold = cpu.decision_threshold
    yield f'pruned {PRUNE:.0%}', pruned.to(check.device).eval(), 'fp32'


def _mb(value) -> str:
    return '-' if value is None else f'{value:.1f} MB'


def part_table7(check: Check, res: dict) -> None:
    """Table VII on the device: precision and pruning of both shipped models."""
    import numpy as np
    load_windows(check)
    load_models(check)
    rows = window_rows(check)
    one = check.windows.batch(rows[:1], check.device)
    res['rows'] = []
    res['note'] = ('accuracy: next-frame label on the held-out windows at the threshold in '
                   'the file; latency: batch 1, a whole window (every frame tokenized), median; '
                   'peak memory: torch.cuda.max_memory_allocated over one batch-1 inference')
    for method, (cpu, dev, path) in check.models.items():
        base_p = None
        if check.device.type != 'cuda':
            res['rows'].append({'method': method, 'variant': 'fp16', 'precision': 'fp16',
                                'status': 'skipped',
                                'error': 'fp16 autocast is CUDA only (model.compress)'})
        for name, model, precision in _variants(check, method, cpu, dev):
            key = f'{method} {name}'

            def measure():
                p, _ = probabilities(model, check.windows, rows, check.device, precision)
                row = {'method': method, 'variant': name, 'precision': precision,
                       **accuracy(check.windows, p, rows, dev.decision_threshold),
                       'params': sum(t.numel() for t in model.parameters()),
                       'tokens_per_layer': model.tokens_per_layer(),
                       **time_window(model, one, check.device, precision, check.reps,
                                     check.warmup),
                       **peak_memory(model, one, check.device, precision)}
                return p, row
            out = check.guarded(res, key, check.rest_of_part(), measure)
            if out is None:
                res['rows'].append({'method': method, 'variant': name, 'precision': precision,
                                    **res.pop(key)})
                continue
            p, row = out
            if base_p is None:
                base_p = p
            row['decisions_differing_vs_fp32'] = int(
                ((p >= dev.decision_threshold) != (base_p >= dev.decision_threshold)).sum())
            row['max_abs_p_diff_vs_fp32'] = float(np.abs(p - base_p).max())
            res['rows'].append(row)
            check.say(f"table7 {key}: acc {row['accuracy']:.2%}, "
                      f"{row['median_ms']:.2f} ms, peak {_mb(row.get('peak_mem_mb'))}")
            check.save()
