"""Table VI (accuracy, latency, memory, FLOPs per method) as Markdown + JSON, with plots."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..model import preset
from ..model.config import ROUTED_METHODS
from ..resources import format_mb
from ..timing import benchmark_methods
from .crossval import cross_validate
from .dataset import WindowDataset
from .trainer import TrainConfig

DEFAULT_METHODS = ('mha', 'tome', 'mod', 'ablation1', 'ablation2', 'ablation3', 'routed')


def plot_keep_ratios(rows: list[dict], path: Path) -> None:
    """Fig. 3-style: learned keep ratio per layer, one line per gamma'."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for row in rows:
        if row['method'] != 'routed' or not row['keep_ratios_mean']:
            continue
        r = row['keep_ratios_mean']
        ax.plot(range(1, len(r) + 1), r, marker='o', label=f"γ'={row['gamma']:.1f}")
        ax.axhline(row['gamma'], color=ax.lines[-1].get_color(), lw=0.6, ls=':')
    ax.set_xlabel('transformer block')
    ax.set_ylabel('learned keep ratio $r_l$')
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_accuracy_latency(rows: list[dict], path: Path, *, ylabel: str = 'accuracy [%]') -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for row in rows:
        ax.errorbar(row['latency_ms_median'], 100 * row['accuracy_mean'],
                    yerr=100 * row['accuracy_std'], fmt='o', capsize=3)
        ax.annotate(row['label'], (row['latency_ms_median'], 100 * row['accuracy_mean']),
                    fontsize=7, xytext=(3, 3), textcoords='offset points')
    ax.set_xlabel('latency per window [ms] (median)')
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def markdown_table(rows: list[dict], title: str) -> str:
    lines = [f'### {title}', '',
             '| method | accuracy [%] | onsets announced | latency [ms] | peak memory [MB] | GFLOPs '
             '| tokens per layer |',
             '|---|---|---|---|---|---|---|']
    for r in rows:
        onsets = f"{r['onsets_predicted']}/{r['onsets']}" if r.get('onsets') is not None else '-'
        lines.append(f"| {r['label']} | {100 * r['accuracy_mean']:.2f} ± {100 * r['accuracy_std']:.2f} "
                     f"| {onsets} | {r['latency_ms_median']:.1f} | {format_mb(r['peak_mem_mb'])} | {r['gflops']:.2f} "
                     f"| {','.join(map(str, r['tokens_per_layer']))} |")
    return '\n'.join(lines) + '\n'


def run_report(data: WindowDataset, *, preset_name: str, methods: list[str], gammas: list[float],
               folds: int, seeds: list[int], tc: TrainConfig, out_dir: str | Path,
               max_folds: int | None = None, bench_reps: int = 7, progress: bool = True) -> list[dict]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for method in methods:
        for gamma in (gammas if method == 'routed' else [0.3 if method in ROUTED_METHODS else None]):
            cfg = preset(preset_name, method=method,
                         **({} if gamma is None else {'target_keep_ratio': gamma}))
            cv = cross_validate(cfg, data, folds=folds, seeds=seeds, tc=tc, max_folds=max_folds,
                                progress=progress)
            ratios = [r['keep_ratios'] for r in cv['runs'] if r['keep_ratios']]
            rows.append({'method': method, 'gamma': gamma,
                         'label': method if gamma is None else f"{method} (γ'={gamma:.1f})",
                         'accuracy_mean': cv['accuracy_mean'], 'accuracy_std': cv['accuracy_std'],
                         'accuracy_ci95': cv['accuracy_ci95'],
                         'keep_ratios_mean': np.mean(ratios, axis=0).tolist() if ratios else [],
                         # pooled over folds x seeds: blockage onsets predicted a frame ahead
                         **({'onsets': sum(r['onsets'] for r in cv['runs']),
                             'onsets_predicted': sum(r['onsets_predicted'] for r in cv['runs'])}
                            if all('onsets' in r for r in cv['runs']) else {}),
                         'crossval': cv})
    bench = benchmark_methods(preset_name, methods=sorted({r['method'] for r in rows}),
                              gammas=gammas, reps=bench_reps, device=tc.device, progress=progress)
    by_key = {(b['method'], b['gamma']): b for b in bench}
    for r in rows:
        b = by_key.get((r['method'], r['gamma'])) or by_key.get((r['method'], None))
        if b is None:  # ablations are benchmarked at the gamma the bench ran them
            b = next(x for x in bench if x['method'] == r['method'])
        r.update({k: b[k] for k in ('latency_ms_median', 'latency_ms_p90', 'peak_mem_mb', 'gflops',
                                    'tokens_per_layer', 'device_name')})
    title = (f"Table VI on {preset_name}: {folds}-fold CV by scenario"
             f"{f' (first {max_folds} folds)' if max_folds else ''}, seeds {seeds}, "
             f"{tc.epochs} epochs, lr {tc.lr:g}"
             f"{f', steady fraction {tc.steady_fraction:g}' if tc.steady_fraction < 1 else ''}"
             f"{f', modality dropout {tc.modality_dropout:g}' if tc.modality_dropout else ''}"
             f"; latency on {rows[0]['device_name']}")
    (out_dir / 'table6.md').write_text(markdown_table(rows, title))
    (out_dir / 'table6.json').write_text(json.dumps(rows, indent=2) + '\n')
    plot_keep_ratios(rows, out_dir / 'keep_ratios.png')
    plot_accuracy_latency(rows, out_dir / 'accuracy_vs_latency.png')
    return rows
