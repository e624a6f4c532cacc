"""Emulation reports: the Fig. 5 plot, CSV and ``summary.json`` of one scenario, table rows
and Markdown, and the issue's acceptance check. The emulation itself (timeline, policies,
metrics) is run-time logic in ``runtime/emulation.py``; this module only writes and checks
what it returns.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..runtime.emulation import PolicyResult, Timeline


def summary(results: dict[str, PolicyResult], timeline: Timeline) -> dict:
    return {'scenario': timeline.name, 's_th_dbm': timeline.s_th_dbm,
            'frame_period_ms': timeline.period_ns / 1e6, 'frames': int(len(timeline.t_ns)),
            'blockage_intervals_s': [[(a - timeline.t0_ns) / 1e9, (b - timeline.t0_ns) / 1e9]
                                     for a, b in timeline.blockage_intervals_ns],
            'policies': {name: r.metrics for name, r in results.items()}}


def write_csv(path: str | Path, timeline: Timeline, results: dict[str, PolicyResult]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(results)
    with path.open('w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['frame', 't_s', f'rssi_{timeline.home_rsu}_dbm',
                    f'rssi_{timeline.target_rsu}_dbm']
                   + [c for n in names for c in (f'serving_{n}', f'served_{n}_dbm')])
        for k, t in enumerate(timeline.t_ns.tolist()):
            row = [k, f'{(t - timeline.t0_ns) / 1e9:.3f}',
                   f'{timeline.rssi_dbm[timeline.home_rsu][k]:.2f}',
                   f'{timeline.rssi_dbm[timeline.target_rsu][k]:.2f}']
            for n in names:
                row += [results[n].serving[k], f'{results[n].served_rssi_dbm[k]:.2f}']
            w.writerow(row)
    return path


def plot(path: str | Path, timeline: Timeline, results: dict[str, PolicyResult], *,
         title: str | None = None) -> Path:
    """A Fig. 5-style plot: RSSI of both links, served RSSI per policy, S_th, blockages."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.arange(len(timeline.t_ns))
    fig, ax = plt.subplots(figsize=(8, 4))
    for a, b in timeline.blockage_intervals_ns:
        k0 = int(np.searchsorted(timeline.t_ns, a))
        k1 = int(np.searchsorted(timeline.t_ns, b))
        ax.axvspan(k0 - 0.5, k1 + 0.5, color='0.85', label='blockage (truth)' if a ==
                   timeline.blockage_intervals_ns[0][0] else None)
    ax.plot(frames, timeline.rssi_dbm[timeline.home_rsu], color='0.5', lw=1, ls=':',
            label=f'{timeline.home_rsu} RSSI')
    ax.plot(frames, timeline.rssi_dbm[timeline.target_rsu], color='0.3', lw=1, ls='-.',
            label=f'{timeline.target_rsu} RSSI')
    styles = {'oracle': ('tab:green', '--'), 'reactive': ('tab:red', '-'),
              'proactive': ('tab:blue', '-')}
    for name, r in results.items():
        color, ls = styles.get(name, (None, '-'))
        ax.plot(frames, r.served_rssi_dbm, color=color, ls=ls, lw=1.8,
                label=f'served: {name}')
    ax.axhline(timeline.s_th_dbm, color='k', lw=0.8, ls='--', label='$S_{th}$')
    ax.set_xlabel(f'time frame ({timeline.period_ns / 1e6:.0f} ms)')
    ax.set_ylabel('RSSI [dBm]')
    ax.set_title(title or f'{timeline.name}: served RSSI with handover')
    ax.legend(fontsize=7, loc='lower left', ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(out_dir: str | Path, timeline: Timeline, results: dict[str, PolicyResult],
                  *, stem: str | None = None, title: str | None = None) -> dict:
    """``<stem>.png``, ``<stem>.csv`` and ``summary.json`` in ``out_dir``; returns the summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or (timeline.name or 'emulation')
    doc = summary(results, timeline)
    doc['switches'] = {n: [{'t_s': (s.time_ns - timeline.t0_ns) / 1e9, 'rsu': s.rsu}
                           for s in r.switches] for n, r in results.items()}
    doc['csv'] = write_csv(out_dir / f'{stem}.csv', timeline, results).name
    doc['png'] = plot(out_dir / f'{stem}.png', timeline, results, title=title).name
    (out_dir / 'summary.json').write_text(json.dumps(doc, indent=1) + '\n')
    return doc


def policy_rows(scenario: str, metrics: dict[str, dict]) -> list[dict]:
    """One table row per policy of a scenario's emulation metrics."""
    return [{'scenario': scenario, 'policy': policy,
             'before': bool(m['handed_over_before_blockage']
                            and m['handed_over_before_blockage'][0]),
             **{k: m[k] for k in ('lead_time_ms', 'mean_served_rssi_dbm',
                                  'time_below_threshold_s', 'handovers')}}
            for policy, m in metrics.items()]


def markdown_table(rows: list[dict]) -> str:
    """Rows of :func:`policy_rows` as a Markdown table."""
    head = ('| scenario | policy | handed over before blockage | lead time [ms] | '
            'mean served RSSI [dBm] | time below S_th [s] | handovers |')
    lines = [head, '|' + '---|' * 7]
    for r in rows:
        lead = '-' if r['lead_time_ms'] is None else f"{r['lead_time_ms'] + 0.0:.0f}"
        lead = '0' if lead == '-0' else lead   # a reaction 1 ns after the frame
        lines.append(f"| {r['scenario']} | {r['policy']} | {'yes' if r['before'] else 'no'} | "
                     f"{lead} | {r['mean_served_rssi_dbm']:.2f} | "
                     f"{r['time_below_threshold_s']:.1f} | {r['handovers']} |")
    return '\n'.join(lines) + '\n'


def proactive_check(scenario: str, metrics: dict[str, dict], proactive: str = 'proactive') -> dict:
    """Issue acceptance for one scenario: the proactive policy handed over before the (first)
    blockage wherever the oracle did, and its mean served RSSI is above the reactive one's."""
    oracle_before = any(metrics['oracle']['handed_over_before_blockage'])
    prop = metrics[proactive]
    return {'scenario': scenario,
            'proactive_before_blockage': (not oracle_before) or
            bool(prop['handed_over_before_blockage'] and prop['handed_over_before_blockage'][0]),
            'proactive_above_reactive': prop['mean_served_rssi_dbm'] >
            metrics['reactive']['mean_served_rssi_dbm']}


__all__ = ['markdown_table', 'plot', 'policy_rows', 'proactive_check', 'summary', 'write_csv',
           'write_outputs']
