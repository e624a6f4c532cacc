"""The end-to-end table: one row per run of a bag through the real node processes
(``ros.pipeline.run_pipeline``), printed by ``mmtok bench --e2e`` and ``mmtok demo``."""
from __future__ import annotations

# (row key, column title, format); a missing value prints as '-'
COLUMNS = (('label', 'run', '{}'), ('method', 'method', '{}'),
           ('windows_published', 'windows', '{}'), ('dropped_windows', 'dropped', '{}'),
           ('latency_p50_ms', 'p50 [ms]', '{:.1f}'), ('latency_p99_ms', 'p99 [ms]', '{:.1f}'),
           ('inference_p50_ms', 'infer p50 [ms]', '{:.1f}'),
           ('bench_frame_ms', 'bench 1 frame [ms]', '{:.1f}'),
           ('inference_vs_bench', 'node/bench', '{:.2f}x'),
           ('cpu_percent', 'CPU [%]', '{:.0f}'), ('rss_peak_mb', 'RSS peak [MiB]', '{:.0f}'),
           ('deadline_misses', 'deadline misses', '{}'))
OPTIONAL = ('bench_frame_ms', 'inference_vs_bench')   # only where the benchmark ran (--e2e)


def format_table(rows: list[dict]) -> str:
    """Plain-text columns, the first left-aligned; the benchmark's columns only where a row
    has them."""
    columns = [c for c in COLUMNS
               if c[0] not in OPTIONAL or any(r.get(c[0]) is not None for r in rows)]
    table = [[title for _, title, _ in columns]]
    for r in rows:
        table.append(['-' if r.get(k) is None else fmt.format(r[k]) for k, _, fmt in columns])
    widths = [max(len(row[c]) for row in table) for c in range(len(columns))]
    lines = ['  '.join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in
                       enumerate(zip(row, widths))) for row in table]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


__all__ = ['COLUMNS', 'OPTIONAL', 'format_table']
