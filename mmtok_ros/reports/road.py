"""Reports of the N-RSU road emulation (``runtime/emulation_road.py``): a Fig. 5-style plot
with every RSU's RSSI and each policy's serving RSU, a CSV per scenario, table rows and the
Markdown of ``mmtok emulate`` on road scenarios."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..runtime.emulation import PolicyResult
from ..runtime.emulation_road import RoadEvent, RoadTimeline

_POLICY_STYLE = {'oracle': ('tab:green', '--'), 'reactive': ('tab:red', '-'),
                 'proposed': ('tab:blue', '-')}


def write_road_csv(path: str | Path, timeline: RoadTimeline,
                   results: Mapping[str, PolicyResult]) -> Path:
    """Per frame: time, every RSU's true and measured RSSI, each policy's serving RSU and
    served RSSI."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(results)
    with path.open('w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['frame', 't_s']
                   + [c for r in timeline.rsus for c in (f'true_{r}_dbm', f'measured_{r}_dbm')]
                   + [c for n in names for c in (f'serving_{n}', f'served_{n}_dbm')])
        for k, t in enumerate(timeline.t_ns.tolist()):
            row = [k, f'{(t - timeline.t0_ns) / 1e9:.3f}']
            for r in timeline.rsus:
                row += [f'{timeline.rssi_dbm[r][k]:.2f}', f'{timeline.measured_dbm[r][k]:.2f}']
            for n in names:
                row += [results[n].serving[k], f'{results[n].served_rssi_dbm[k]:.2f}']
            w.writerow(row)
    return path


def plot_road(path: str | Path, timeline: RoadTimeline, results: Mapping[str, PolicyResult],
              *, events: Sequence[RoadEvent] = (), title: str | None = None) -> Path:
    """Top: every RSU's true RSSI, S_th, each link's blockages (shaded in its colour) and the
    served RSSI of each policy. Bottom: the serving RSU of each policy, proposed handovers
    marked with the rule that fired."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.arange(len(timeline.t_ns))
    palette = ('tab:orange', 'tab:cyan', 'tab:olive', 'tab:brown', 'tab:pink', 'tab:gray')
    rsu_color = {r: palette[i % len(palette)] for i, r in enumerate(timeline.rsus)}
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 6.2), sharex=True,
                                  gridspec_kw={'height_ratios': [3, 1.3]})
    for r in timeline.rsus:
        for a, b in timeline.link_intervals_ns.get(r, []):
            k0 = int(np.searchsorted(timeline.t_ns, a))
            k1 = int(np.searchsorted(timeline.t_ns, b))
            ax.axvspan(k0 - 0.5, k1 + 0.5, color=rsu_color[r], alpha=0.10, lw=0)
        ax.plot(frames, timeline.rssi_dbm[r], color=rsu_color[r], lw=1, ls=':',
                label=f'{r} RSSI (true; shaded: {r} blocked)')
    for name, res in results.items():
        color, ls = _POLICY_STYLE.get(name, (None, '-'))
        ax.plot(frames, res.served_rssi_dbm, color=color, ls=ls, lw=1.8, alpha=0.85,
                label=f'served: {name}')
    ax.axhline(timeline.s_th_dbm, color='k', lw=0.8, ls='--', label='$S_{th}$')
    ax.set_ylabel('RSSI [dBm]')
    ax.set_title(title or f'{timeline.name}: served RSSI with N-RSU handover')
    ax.legend(fontsize=6.5, loc='lower left', ncol=2)
    ax.grid(alpha=0.3)
    index = {r: i for i, r in enumerate(timeline.rsus)}
    offsets = {n: (i - (len(results) - 1) / 2) * 0.12 for i, n in enumerate(results)}
    for name, res in results.items():
        color, ls = _POLICY_STYLE.get(name, (None, '-'))
        ax2.step(frames, [index[s] + offsets[name] for s in res.serving], where='post',
                 color=color, ls=ls, lw=1.6, label=name)
    for e in events:
        ax2.annotate(e.reason.replace('_', ' '), (e.frame, index[e.target_rsu]),
                     fontsize=6, color='tab:blue', xytext=(3, 6), textcoords='offset points')
    ax2.set_yticks(range(len(timeline.rsus)), list(timeline.rsus))
    ax2.set_ylim(-0.5, len(timeline.rsus) - 0.5)
    ax2.set_ylabel('serving')
    ax2.set_xlabel(f'time frame ({timeline.period_ns / 1e6:.0f} ms)')
    ax2.legend(fontsize=6.5, loc='upper left', ncol=3)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def road_rows(scenario: str, metrics: Mapping[str, Mapping],
              checks: Mapping[str, Mapping] | None = None) -> list[dict]:
    """One table row per policy of one scenario; ``checks``: policy -> its
    ``never_worse_check``."""
    rows = []
    for policy, m in metrics.items():
        check = (checks or {}).get(policy)
        rows.append({'scenario': scenario, 'policy': policy,
                     'mean_served_rssi_dbm': m['mean_served_rssi_dbm'],
                     'time_below_threshold_s': m['time_below_threshold_s'],
                     'handovers': m['handovers'], 'serving_blockages': m['serving_blockages'],
                     'handed_over_before_blockage': m['handed_over_before_blockage'],
                     'lead_time_ms': m['lead_time_ms'],
                     'never_worse': None if check is None else check['passed']})
    return rows


def road_markdown(rows: Sequence[Mapping]) -> str:
    head = ('| scenario | policy | mean served RSSI [dBm] | time below S_th [s] | handovers | '
            'serving-link blockages (left before) | mean lead [ms] | never worse than '
            'reactive |')
    lines = [head, '|' + '---|' * 8]
    for r in rows:
        lead = '-' if r['lead_time_ms'] is None else f"{r['lead_time_ms'] + 0.0:.0f}"
        check = {None: '', True: 'PASS', False: 'FAIL'}[r['never_worse']]
        lines.append(f"| {r['scenario']} | {r['policy']} | {r['mean_served_rssi_dbm']:.2f} | "
                     f"{r['time_below_threshold_s']:.1f} | {r['handovers']} | "
                     f"{r['serving_blockages']} ({r['handed_over_before_blockage']}) | {lead} | "
                     f'{check} |')
    return '\n'.join(lines) + '\n'


__all__ = ['plot_road', 'road_markdown', 'road_rows', 'write_road_csv']
