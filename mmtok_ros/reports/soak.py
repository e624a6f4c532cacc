"""The soak report (``mmtok soak``): what a long run of N RSU nodes measured, its targets
(PASS/FAIL) and the tables printed; the PNG over time is ``soak_plot.py``'s.

Plain Python over the record :func:`mmtok_ros.ros.soak.run_soak` returns (no ROS here), so
the arithmetic is unit-testable. Times are seconds since the replay started playing; the
first ``warmup_s`` of them are warm-up (the model's first inferences, allocator arenas
filling, DDS discovery): RSS growth and the latency comparison start after it.
"""
from __future__ import annotations

import math
from statistics import median
from typing import Any

from ..timing import percentile

# Why a window the node built was not published: RsuRuntime's counters (runtime/rsu_runtime.py).
DROP_REASONS = {
    'windows_skipped': 'a newer window came before it was inferred (backlog)',
    'stale_after_time_jump': 'time jumped back (the bag looped) before it was inferred',
    'inference_errors': 'inference or publish raised',
}
# Frames lost before they could become part of a window (not windows: reported beside them).
FRAME_LOSSES = ('frames_dropped_backlog', 'sync_misses', 'window/out_of_order', 'window/gap')

RSS_GROWTH_MAX_PCT = 5.0
P99_DRIFT_MAX_PCT = 20.0
COMPARE_WINDOW_S = 300.0      # "first 5 minutes" / "last 5 minutes" after warm-up
RSS_BASELINE_S = 60.0         # RSS at warm-up end / at the end: median over this long


def _count(values: dict[str, Any], key: str) -> int:
    try:
        return int(float(values.get(key, 0) or 0))
    except (TypeError, ValueError):
        return 0


def window_accounting(incarnations: list[dict], *, crashed: list[bool]) -> dict[str, Any]:
    """Windows of one RSU over all its processes (a restart starts the counters over).

    ``incarnations``: the last /diagnostics values of each process, in order; ``crashed``:
    whether that process died during the soak (its windows still in flight are lost with
    it). For the last process, drained before it was stopped, built = published + dropped
    (every reason) must hold exactly; what does not is ``unaccounted``.
    """
    built = published = lost = unaccounted = 0
    dropped = dict.fromkeys(DROP_REASONS, 0)
    frames_lost = dict.fromkeys(FRAME_LOSSES, 0)
    for values, died in zip(incarnations, crashed):
        b, p = _count(values, 'windows_built'), _count(values, 'windows_published')
        d = {k: _count(values, k) for k in DROP_REASONS}
        built, published = built + b, published + p
        for k in DROP_REASONS:
            dropped[k] += d[k]
        for k in FRAME_LOSSES:
            frames_lost[k] += _count(values, k)
        gap = b - p - sum(d.values())
        if died:
            lost += max(gap, 0)
        else:
            unaccounted += gap
    return {'built': built, 'published': published, 'dropped': dropped,
            'dropped_total': sum(dropped.values()), 'lost_in_crash': lost,
            'unaccounted': unaccounted, 'frames_lost_before_a_window': frames_lost,
            'balanced': unaccounted == 0}


def _window(ts: list[float], values: list[float], lo: float, hi: float) -> list[float]:
    return [v for t, v in zip(ts, values) if lo <= t <= hi and v is not None]


def rss_growth(ts: list[float], rss: list[float], *, start_s: float, end_s: float,
               baseline_s: float = RSS_BASELINE_S) -> dict[str, Any]:
    """RSS at warm-up end and at the end (medians over ``baseline_s``, or a quarter of the
    measured time when that is shorter), their growth in % and a least-squares slope."""
    span = end_s - start_s
    b = min(baseline_s, span / 4) if span > 0 else 0.0
    first = _window(ts, rss, start_s, start_s + b)
    last = _window(ts, rss, end_s - b, end_s)
    out: dict[str, Any] = {'rss_warm_mb': None, 'rss_end_mb': None, 'rss_growth_pct': None,
                           'rss_slope_mb_per_h': None, 'rss_baseline_s': b}
    measured = [(t, v) for t, v in zip(ts, rss) if start_s <= t <= end_s and v is not None]
    out['rss_max_mb'] = max((v for _, v in measured), default=None)
    if not first or not last:
        return out
    warm, end = median(first), median(last)
    out.update(rss_warm_mb=warm, rss_end_mb=end,
               rss_growth_pct=100.0 * (end - warm) / warm if warm else None)
    if len(measured) >= 2:
        mt = sum(t for t, _ in measured) / len(measured)
        mv = sum(v for _, v in measured) / len(measured)
        var = sum((t - mt) ** 2 for t, _ in measured)
        if var > 0:
            out['rss_slope_mb_per_h'] = 3600.0 * sum(
                (t - mt) * (v - mv) for t, v in measured) / var
    return out


def latency_bins(latency: dict[str, list[tuple[float, float]]], *, end_s: float,
                 warmup_s: float, bin_s: float = 60.0) -> list[dict[str, Any]]:
    """p50/p99 of ``latency_ms`` per ``bin_s`` (a minute), all RSUs together and each; the
    last bin ends at ``end_s`` (statuses of the windows drained after it are left out) and
    takes in an overshoot of the soak's clock up to a second."""
    n_bins = max(1, math.ceil((end_s - 1.0) / bin_s))
    out = []
    for i in range(n_bins):
        lo, hi = i * bin_s, (end_s if i == n_bins - 1 else (i + 1) * bin_s)
        per_rsu = {}
        every = []
        for rsu, samples in latency.items():
            vals = [v for t, v in samples if lo <= t < hi or (t == hi == end_s)]
            every += vals
            per_rsu[rsu] = {'n': len(vals), 'p50_ms': percentile(vals, 50),
                            'p99_ms': percentile(vals, 99)}
        out.append({'minute': i, 'start_s': lo, 'end_s': hi, 'warmup': lo < warmup_s,
                    'n': len(every), 'p50_ms': percentile(every, 50),
                    'p99_ms': percentile(every, 99), 'per_rsu': per_rsu})
    return out


def latency_drift(latency: dict[str, list[tuple[float, float]]], *, warmup_s: float,
                  end_s: float, window_s: float = COMPARE_WINDOW_S) -> dict[str, Any]:
    """p99 of the first and of the last ``window_s`` after warm-up (all RSUs together); a
    run shorter than two windows compares its two halves."""
    w = min(window_s, max(end_s - warmup_s, 0.0) / 2)
    every = [s for samples in latency.values() for s in samples]
    first = [v for t, v in every if warmup_s <= t < warmup_s + w]
    last = [v for t, v in every if end_s - w <= t <= end_s]
    p_first, p_last = percentile(first, 99), percentile(last, 99)
    change = (100.0 * (p_last - p_first) / p_first
              if p_first and p_last is not None else None)
    return {'window_s': w, 'first_n': len(first), 'last_n': len(last),
            'first_p99_ms': p_first, 'last_p99_ms': p_last, 'change_pct': change}


def _target(name: str, text: str, value: Any, passed: bool, detail: str) -> dict[str, Any]:
    return {'name': name, 'text': text, 'value': value, 'pass': bool(passed), 'detail': detail}


def targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's four targets, each PASS or FAIL (a value that could not be measured
    fails: nothing was shown)."""
    nodes = summary['nodes']
    growth = {r: n['rss_growth_pct'] for r, n in nodes.items()}
    worst = max((g for g in growth.values() if g is not None), default=None)
    rss_ok = bool(growth) and all(g is not None and g < RSS_GROWTH_MAX_PCT
                                  for g in growth.values())
    drift = summary['latency_drift']
    change = drift['change_pct']
    drift_ok = change is not None and abs(change) <= P99_DRIFT_MAX_PCT
    crashes = len(summary['crashes'])
    unaccounted = {r: n['windows']['unaccounted'] for r, n in nodes.items()}
    fmt = (lambda v: '-' if v is None else f'{v:+.1f} %')
    return [
        _target('rss_growth', f'RSS growth after warm-up < {RSS_GROWTH_MAX_PCT:g} % (every node)',
                worst, rss_ok, ', '.join(f'{r} {fmt(g)}' for r, g in growth.items())),
        _target('p99_drift', f'p99 latency of the last {drift["window_s"] / 60:.1f} min within '
                f'{P99_DRIFT_MAX_PCT:g} % of the first {drift["window_s"] / 60:.1f} min after '
                'warm-up', change, drift_ok,
                f'{_ms(drift["first_p99_ms"])} -> {_ms(drift["last_p99_ms"])} ms ({fmt(change)})'),
        _target('crashes', '0 crashes', crashes, crashes == 0,
                ', '.join(f'{c["process"]} at {c["t_s"]:.0f} s (exit {c["exit_status"]})'
                          for c in summary['crashes']) or 'none'),
        _target('windows_accounted', 'every window published or counted as dropped with its '
                'reason', sum(unaccounted.values()), all(v == 0 for v in unaccounted.values()),
                ', '.join(f'{r} {v} unaccounted' for r, v in unaccounted.items())),
    ]


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinities as None: JSON has no NaN (``time_to_blockage_s`` may be one)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in values.items()}


def _ms(v: float | None) -> str:
    return '-' if v is None else f'{v:.1f}'


def summarize(record: dict[str, Any]) -> dict[str, Any]:
    """The report (JSON-ready) from ``run_soak``'s record (see its docstring)."""
    warmup_s, end_s = record['warmup_s'], record['end_s']
    nodes = {}
    for rsu, node in record['nodes'].items():
        samples = node['samples']
        start = max(warmup_s, node.get('last_start_s', 0.0) + (
            warmup_s if node.get('restarts') else 0.0))
        row = {'pids': node['pids'], 'restarts': node.get('restarts', 0),
               'exit_status': node.get('exit_status'),
               **rss_growth(samples['t_s'], samples['rss_mb'], start_s=start, end_s=end_s)}
        row['windows'] = window_accounting(node['diagnostics'], crashed=node['crashed'])
        row['deadline_misses'] = sum(_count(d, 'deadline_misses') for d in node['diagnostics'])
        row['handovers_reported'] = sum(_count(d, 'handovers') for d in node['diagnostics'])
        row['handovers_received'] = node['handovers_received']
        received = record['latency'].get(rsu, [])
        lat = [v for t, v in received if t <= end_s]     # not the windows drained after it
        row.update(statuses_received=len(received), latency_p50_ms=percentile(lat, 50),
                   latency_p99_ms=percentile(lat, 99))
        row['last_diagnostics'] = node['diagnostics'][-1] if node['diagnostics'] else {}
        nodes[rsu] = row
    summary = {
        'config': record['config'], 'started_utc': record['started_utc'],
        'bag': record['bag'], 'duration_s': end_s, 'warmup_s': warmup_s,
        'measured_s': max(end_s - warmup_s, 0.0), 'ended_early': record.get('ended_early'),
        'wall_s': record.get('wall_s'), 'drained': record.get('drained'),
        'nodes': nodes, 'replay': record.get('replay', {}),
        'latency_per_minute': latency_bins(record['latency'], end_s=end_s, warmup_s=warmup_s),
        'latency_drift': latency_drift(record['latency'], warmup_s=warmup_s, end_s=end_s),
        'crashes': record['crashes'],
        'restarts': sum(n['restarts'] for n in nodes.values()),
        'handovers': {'received': sum(n['handovers_received'] for n in nodes.values()),
                      'events': [_finite(e) for e in record.get('handovers', [])[:200]]},
        'drop_reasons': DROP_REASONS,
        'samples': {rsu: node['samples'] for rsu, node in record['nodes'].items()},
    }
    summary['targets'] = targets(summary)
    summary['passed'] = all(t['pass'] for t in summary['targets'])
    return summary


def _columns(rows: list[list[str]]) -> str:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ['  '.join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in
                       enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def _num(v: Any, fmt: str = '{}') -> str:
    return '-' if v is None else fmt.format(v)


def format_report(summary: dict[str, Any]) -> str:
    """The tables ``mmtok soak`` prints: per node, per minute, the targets."""
    cfg = summary['config']
    out = [f"soak: {cfg['rsus']} RSUs, {summary['bag']} looped at {cfg['rate']:g}x, "
           f"{summary['duration_s'] / 60:.1f} min ({summary['warmup_s'] / 60:.1f} min warm-up), "
           f"model {cfg['model'] or '(shipped)'} on {cfg['device']}"
           + (f" -- ENDED EARLY: {summary['ended_early']}" if summary.get('ended_early') else '')]
    rows = [['node', 'restarts', 'RSS warm [MiB]', 'RSS end [MiB]', 'growth [%]',
             'slope [MiB/h]', 'built', 'published', 'skipped', 'stale (jump)', 'errors',
             'lost (crash)', 'unaccounted', 'deadline misses', 'handovers', 'p50 [ms]',
             'p99 [ms]']]
    for rsu, n in summary['nodes'].items():
        w = n['windows']
        rows.append([rsu, str(n['restarts']), _num(n['rss_warm_mb'], '{:.1f}'),
                     _num(n['rss_end_mb'], '{:.1f}'), _num(n['rss_growth_pct'], '{:+.2f}'),
                     _num(n['rss_slope_mb_per_h'], '{:+.1f}'), str(w['built']),
                     str(w['published']), str(w['dropped']['windows_skipped']),
                     str(w['dropped']['stale_after_time_jump']),
                     str(w['dropped']['inference_errors']), str(w['lost_in_crash']),
                     str(w['unaccounted']), str(n['deadline_misses']),
                     str(n['handovers_received']), _num(n['latency_p50_ms'], '{:.1f}'),
                     _num(n['latency_p99_ms'], '{:.1f}')])
    out += ['', _columns(rows)]
    lost = {r: n['windows']['frames_lost_before_a_window'] for r, n in summary['nodes'].items()}
    out.append('frames lost before a window (not windows): ' + '; '.join(
        f'{r}: ' + ', '.join(f'{k} {v}' for k, v in d.items()) for r, d in lost.items()))
    replay = summary.get('replay') or {}
    rss = [v for v in (replay.get('rss_samples') or {}).get('rss_mb', []) if v is not None]
    if rss:
        out.append(f"bag_replay: {replay.get('loops_completed', 0)} loops of the bag, RSS "
                   f'{rss[0]:.0f} -> {rss[-1]:.0f} MiB (max {max(rss):.0f})')
    rows = [['minute', 'windows', 'p50 [ms]', 'p99 [ms]', '']]
    for b in summary['latency_per_minute']:
        rows.append([f"{b['minute']}", str(b['n']), _num(b['p50_ms'], '{:.1f}'),
                     _num(b['p99_ms'], '{:.1f}'), 'warm-up' if b['warmup'] else ''])
    out += ['', 'latency (newest frame arrival in rsu_node -> LinkStatus publish), all RSUs',
            _columns(rows), '']
    for t in summary['targets']:
        out.append(f"{'PASS' if t['pass'] else 'FAIL'}  {t['text']}: {t['detail']}")
    out.append(f"soak {'PASSED' if summary['passed'] else 'FAILED'}")
    return '\n'.join(out)


__all__ = ['DROP_REASONS', 'FRAME_LOSSES', 'format_report', 'latency_bins', 'latency_drift',
           'rss_growth', 'summarize', 'targets', 'window_accounting']
