"""``mmtok bench``: the table and JSON of single-window latency, memory and FLOPs of every
method, measured in one run by :func:`mmtok_ros.timing.benchmark_methods`.

Methods are timed round-robin (one window of each method per round) so that machine noise
hits all of them alike; compare them by the ratios of their medians.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..resources import format_mb


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
