"""Reports of the handover emulation (``runtime/emulation``), for any number of RSUs: a
Fig. 5-style plot, a CSV per scenario, ``summary.json`` of one scenario, table rows and the
Markdown table, and the proactive metrics' table with the targets' acceptance lines. Only writes
what the emulation returns."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..constants import NS_PER_MS
from ..runtime.emulation import DecisionRecord, PolicyResult, ScenarioResult, Timeline

_POLICY_STYLE = {'oracle': ('tab:green', '--'), 'reactive': ('tab:red', '-'),
                 'proactive': ('tab:blue', '-')}
_RSU_COLORS = ('tab:orange', 'tab:cyan', 'tab:olive', 'tab:brown', 'tab:pink', 'tab:gray')


def _style(name: str) -> tuple[str | None, str]:
    return _POLICY_STYLE.get(name.split(' ')[0], (None, '-'))


def write_csv(path: str | Path, timeline: Timeline,
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
            row = [k, f'{timeline.seconds(t):.3f}']
            for r in timeline.rsus:
                row += [f'{timeline.rssi_dbm[r][k]:.2f}', f'{timeline.measured_dbm[r][k]:.2f}']
            for n in names:
                row += [results[n].serving[k], f'{results[n].served_rssi_dbm[k]:.2f}']
            w.writerow(row)
    return path


def plot(path: str | Path, timeline: Timeline, results: Mapping[str, PolicyResult], *,
         records: Sequence[DecisionRecord] = (), title: str | None = None) -> Path:
    """Top: every RSU's true RSSI, each link's blockages shaded in its colour, S_th and each
    policy's served RSSI. Bottom: each policy's serving RSU, the proactive handovers marked
    with the rule that fired."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.arange(len(timeline.t_ns))
    color = {r: _RSU_COLORS[i % len(_RSU_COLORS)] for i, r in enumerate(timeline.rsus)}
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 6.2), sharex=True,
                                  gridspec_kw={'height_ratios': [3, 1.3]})
    for r in timeline.rsus:
        for a, b in timeline.link_intervals_ns.get(r, []):
            k0, k1 = (int(np.searchsorted(timeline.t_ns, v)) for v in (a, b))
            ax.axvspan(k0 - 0.5, k1 + 0.5, color=color[r], alpha=0.12, lw=0)
        ax.plot(frames, timeline.rssi_dbm[r], color=color[r], lw=1, ls=':',
                label=f'{r} RSSI (true; shaded: {r} blocked)')
    for name, res in results.items():
        c, ls = _style(name)
        ax.plot(frames, res.served_rssi_dbm, color=c, ls=ls, lw=1.8, alpha=0.85,
                label=f'served: {name}')
    ax.axhline(timeline.s_th_dbm, color='k', lw=0.8, ls='--', label='$S_{th}$')
    ax.set_ylabel('RSSI [dBm]')
    ax.set_title(title or f'{timeline.name}: served RSSI with handover')
    ax.legend(fontsize=6.5, loc='lower left', ncol=2)
    ax.grid(alpha=0.3)
    index = {r: i for i, r in enumerate(timeline.rsus)}
    offsets = {n: (i - (len(results) - 1) / 2) * 0.12 for i, n in enumerate(results)}
    for name, res in results.items():
        c, ls = _style(name)
        ax2.step(frames, [index[s] + offsets[name] for s in res.serving], where='post',
                 color=c, ls=ls, lw=1.6, label=name)
    for rec in records:
        ax2.annotate(rec.reason.replace('_', ' '), (rec.frame, index[rec.target_rsu]),
                     fontsize=6, color='tab:blue', xytext=(3, 6), textcoords='offset points')
    ax2.set_yticks(range(len(timeline.rsus)), list(timeline.rsus))
    ax2.set_ylim(-0.5, len(timeline.rsus) - 0.5)
    ax2.set_ylabel('serving')
    ax2.set_xlabel(f'time frame ({timeline.period_ns / NS_PER_MS:.0f} ms)')
    ax2.legend(fontsize=6.5, loc='upper left', ncol=3)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def records_doc(timeline: Timeline, records: Sequence[DecisionRecord]) -> list[dict]:
    """The proactive decisions as JSON: frame, execution time, source, target, rule."""
    return [{'frame': r.frame, 't_s': timeline.seconds(r.exec_ns),
             'source': r.event.source_rsu, 'target': r.target_rsu, 'reason': r.reason,
             'cause': r.cause, 'p_blocked': r.event.p_blocked} for r in records]


def switches_doc(timeline: Timeline, results: Mapping[str, PolicyResult]) -> dict:
    return {n: [{'t_s': timeline.seconds(s.time_ns), 'rsu': s.rsu} for s in r.switches]
            for n, r in results.items()}


def summary(result: ScenarioResult) -> dict:
    """One scenario: its frames and blockages, each policy's metrics, the check, the
    proactive decisions and every policy's switches."""
    tl = result.timeline
    return {'scenario': tl.name, 'kind': tl.extra.get('kind'), 's_th_dbm': tl.s_th_dbm,
            'frame_period_ms': tl.period_ns / NS_PER_MS, 'frames': int(len(tl.t_ns)),
            'rsus': list(tl.rsus), 'initial_rsu': tl.home_rsu,
            'blockage_intervals_s': {r: [[tl.seconds(a), tl.seconds(b)] for a, b in v]
                                     for r, v in tl.link_intervals_ns.items() if v},
            'policies': result.metrics, 'check': result.check,
            'proactive_events': records_doc(tl, result.records),
            'switches': switches_doc(tl, result.results)}


def write_outputs(out_dir: str | Path, result: ScenarioResult, *, stem: str | None = None,
                  title: str | None = None) -> dict:
    """``<stem>.png``, ``<stem>.csv`` and ``summary.json`` in ``out_dir``; returns the
    summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or (result.timeline.name or 'emulation')
    doc = summary(result)
    doc['csv'] = write_csv(out_dir / f'{stem}.csv', result.timeline, result.results).name
    doc['png'] = plot(out_dir / f'{stem}.png', result.timeline, result.results,
                      records=result.records, title=title).name
    (out_dir / 'summary.json').write_text(json.dumps(doc, indent=1) + '\n')
    return doc


def rows(scenario: str, metrics: Mapping[str, Mapping],
         checks: Mapping[str, Mapping] | None = None) -> list[dict]:
    """One table row per policy of one scenario; ``checks``: policy -> its
    ``never_worse_check``."""
    out = []
    for policy, m in metrics.items():
        check = (checks or {}).get(policy)
        out.append({'scenario': scenario, 'policy': policy,
                    **{k: m[k] for k in ('serving_blockages', 'handed_over_before_blockage',
                                         'lead_time_ms', 'mean_served_rssi_dbm',
                                         'time_below_threshold_s', 'handovers')},
                    'never_worse': None if check is None else check['passed']})
    return out


def markdown(table_rows: Sequence[Mapping]) -> str:
    """Rows of :func:`rows` as a Markdown table."""
    head = ('| scenario | policy | handed over before blockage | lead time [ms] | '
            'mean served RSSI [dBm] | time below S_th [s] | handovers | never worse than '
            'reactive |')
    lines = [head, '|' + '---|' * 8]
    for r in table_rows:
        lead = '-' if r['lead_time_ms'] is None else f"{r['lead_time_ms'] + 0.0:.0f}"
        lead = '0' if lead == '-0' else lead   # a reaction 1 ns after the frame
        before = (f"{r['handed_over_before_blockage']}/{r['serving_blockages']}"
                  if r['serving_blockages'] else '-')
        check = {None: '', True: 'PASS', False: 'FAIL'}[r['never_worse']]
        lines.append(f"| {r['scenario']} | {r['policy']} | {before} | {lead} | "
                     f"{r['mean_served_rssi_dbm']:.2f} | {r['time_below_threshold_s']:.1f} | "
                     f"{r['handovers']} | {check} |")
    return '\n'.join(lines) + '\n'


def proactive_row(scenario: str, metrics: Mapping[str, Mapping], check: Mapping) -> dict:
    """One scenario's proactive metrics (``runtime/emulation/metrics.py``) for the table."""
    m = metrics['proactive']
    return {'scenario': scenario, 'blockages': m['serving_blockages'],
            'in_time': m['handed_over_in_time'], 'before_onset': m['handed_over_before_blockage'],
            'proactive_handovers': m.get('proactive_handovers'),
            'spurious': m.get('spurious_proactive_handovers'), 'clear_link_s': m['clear_link_s'],
            'spurious_per_hour': m.get('spurious_per_hour'),
            'outage_s': [metrics[p]['time_below_threshold_s']
                         for p in ('proactive', 'reactive', 'oracle')],
            'outage_not_longer': bool(check['time_below_ok'])}


def _text(value, fmt: str = '{}') -> str:
    return '-' if value is None else fmt.format(value)


def proactive_markdown(table_rows: Sequence[Mapping], totals: Mapping, *,
                       link: str | None = None) -> str:
    """Rows of :func:`proactive_row`, a total row and the acceptance lines of
    ``runtime.emulation.proactive_totals`` as Markdown; ``link`` (e.g. ``'fig5_{}.png'``):
    each scenario's name links to that file."""
    lat = totals['latency_ms']
    lines = [f'| scenario | in time (lead >= {lat:.1f} ms) | before onset (lead > 0) | '
             'proactive handovers | spurious | clear link [s] | spurious per hour | '
             'below S_th proactive / reactive / oracle [s] | outage <= reactive |',
             '|' + '---|' * 9]

    def line(name, in_time, before, blockages, made, spurious, clear, rate, outage, ok):
        frac = (lambda n: f'{n}/{blockages}' if blockages else '-')
        lines.append(f'| {name} | {frac(in_time)} | {frac(before)} | {_text(made)} | '
                     f'{_text(spurious)} | {clear:.1f} | {_text(rate, "{:.1f}")} | '
                     + ' / '.join(f'{v:.1f}' for v in outage) + f' | {ok} |')

    for r in table_rows:
        name = r['scenario'] if link is None else f"[{r['scenario']}]({link.format(r['scenario'])})"
        line(name, r['in_time'], r['before_onset'], r['blockages'],
             r['proactive_handovers'], r['spurious'], r['clear_link_s'],
             r['spurious_per_hour'], r['outage_s'], 'yes' if r['outage_not_longer'] else 'NO')
    t = totals
    n, longer = t['scenarios'], len(t['outage_longer_than_reactive_in'])
    line('**total**', t['in_time'], t['before_onset'], t['blockages'], t['proactive_handovers'],
         t['spurious_proactive_handovers'], t['clear_link_s'], t['spurious_per_hour'],
         [t['outage_s'][p] for p in ('proactive', 'reactive', 'oracle')], f'{n - longer}/{n}')
    verdict = {True: 'ACCEPTED', False: 'NOT ACCEPTED', None: 'INCOMPLETE (a target is N/A)'}
    lines += ['', f"Acceptance (proactive-handover targets): {verdict[t['accepted']]}",
              '']
    lines += [f"- {a['line']}" for a in t['acceptance']]
    return '\n'.join(lines) + '\n'


__all__ = ['markdown', 'plot', 'proactive_markdown', 'proactive_row', 'records_doc', 'rows',
           'summary', 'switches_doc', 'write_csv', 'write_outputs']
