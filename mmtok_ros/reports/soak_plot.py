"""The soak report's PNG (``mmtok soak``): RSS per node, latency per minute and windows
over time, drawn from the summary ``reports/soak.py`` makes, warm-up and crashes marked."""
from __future__ import annotations

from typing import Any


def plot_report(summary: dict[str, Any], path: Any) -> None:
    """RSS per node, latency p50/p99 per minute and windows per node over time (one PNG)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    warm_min = summary['warmup_s'] / 60
    for ax in axes:
        ax.axvspan(0, warm_min, color='0.9', lw=0)
        for c in summary['crashes']:
            ax.axvline(c['t_s'] / 60, color='red', lw=1, ls=':')
    rss_ax, lat_ax, win_ax = axes
    for i, (rsu, s) in enumerate(summary['samples'].items()):
        t = [x / 60 for x in s['t_s']]
        colour = f'C{i}'
        rss_ax.plot(t, s['rss_mb'], color=colour, label=rsu)
        win_ax.plot(t, s['published'], color=colour, label=f'{rsu} published')
        win_ax.plot(t, s['dropped'], color=colour, ls='--', label=f'{rsu} dropped')
    rss_ax.set_ylabel('RSS [MiB]')
    rss_ax.legend(loc='best', fontsize='small')
    bins = summary['latency_per_minute']
    mid = [(b['start_s'] + b['end_s']) / 120 for b in bins]
    lat_ax.plot(mid, [b['p50_ms'] for b in bins], 'o-', label='p50')
    lat_ax.plot(mid, [b['p99_ms'] for b in bins], 's-', label='p99')
    drift = summary['latency_drift']
    w0 = summary['warmup_s']
    for lo, value, what in ((w0, drift['first_p99_ms'], 'first'),
                            (summary['duration_s'] - drift['window_s'], drift['last_p99_ms'],
                             'last')):
        if value is not None and drift['window_s'] > 0:
            lat_ax.hlines(value, lo / 60, (lo + drift['window_s']) / 60, colors='k', lw=2,
                          linestyles='--' if what == 'first' else '-',
                          label=f"p99 of the {what} {drift['window_s'] / 60:.1f} min")
    lat_ax.set_ylabel('latency per minute [ms]')
    lat_ax.legend(loc='best', fontsize='small')
    win_ax.set_ylabel('windows (cumulative)')
    win_ax.set_xlabel('minutes since the replay started (grey: warm-up, red: crash)')
    win_ax.legend(loc='best', fontsize='x-small', ncol=2)
    verdict = 'PASSED' if summary['passed'] else 'FAILED'
    fig.suptitle(f"soak: {summary['config']['rsus']} RSUs at {summary['config']['rate']:g}x, "
                 f"{summary['duration_s'] / 60:.1f} min: {verdict}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ['plot_report']
