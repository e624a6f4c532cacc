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
from .run_store import RunStore
from .dataset import WindowDataset
from .trainer import TrainConfig, lr_factor, warmup_steps

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


def plot_model_keep_ratios(series: dict[str, list[float]], path: Path, *,
                           gamma: float | None = None) -> None:
    """Fig. 3-style: the learned keep ratio r_l per block of several model files."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for label, ratios in series.items():
        ax.plot(range(1, len(ratios) + 1), ratios, marker='o', label=label)
    if gamma is not None:
        ax.axhline(gamma, color='grey', lw=0.8, ls=':', label=f"γ'={gamma:g}")
    ax.set_xlabel('transformer block')
    ax.set_ylabel('learned keep ratio $r_l$')
    ax.set_xticks(range(1, max(len(r) for r in series.values()) + 1))
    ax.legend(fontsize=7)
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


def _prediction_cells(r: dict) -> str:
    """AUROC, onset recall 1/2/3/5 frames ahead, median lead, false alarms, late all-clears,
    recall at the fixed false-alarm rate (pooled over folds x seeds); dashes for beam rows."""
    if 'auroc_mean' not in r:
        return '- | - | - | - | - | -'
    ahead = ' / '.join(f"{v:.2f}" for v in r['onset_recall_ahead'].values())
    return (f"{r['auroc_mean']:.3f} | {ahead} | {r['median_lead_ms']:.0f} | "
            f"{r['false_alarms_per_min']:.2f} | {r.get('late_all_clears_per_min', float('nan')):.2f}"
            f" | {r['recall_at_fixed_false_alarm_rate']:.2f}")


def markdown_table(rows: list[dict], title: str, baselines: dict | None = None) -> str:
    fixed = next((r['max_false_alarms_per_min'] for r in rows if 'max_false_alarms_per_min' in r),
                 None)
    fixed_head = (f'onset recall at ≤ {fixed:g} FA/min' if fixed is not None
                  else 'onset recall at fixed FA')
    lines = [f'### {title}', '',
             '| method | accuracy [%] | onsets announced | AUROC | onset recall 1 / 2 / 3 / 5 frames '
             f'ahead | median lead [ms] | false alarms / min | late all-clears / min | '
             f'{fixed_head} | latency [ms] | peak memory [MB] | GFLOPs | tokens per layer | '
             'learned r_l |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        onsets = f"{r['onsets_predicted']}/{r['onsets']}" if r.get('onsets') is not None else '-'
        ratios = ','.join(f'{v:.3f}' for v in r.get('keep_ratios_mean') or []) or '-'
        cost = (f"{r['latency_ms_median']:.1f} | {format_mb(r['peak_mem_mb'])} | {r['gflops']:.2f} "
                f"| {','.join(map(str, r['tokens_per_layer']))}" if 'latency_ms_median' in r
                else '- | - | - | -')
        lines.append(f"| {r['label']} | {100 * r['accuracy_mean']:.2f} ± {100 * r['accuracy_std']:.2f} "
                     f"| {onsets} | {_prediction_cells(r)} | {cost} | {ratios} |")
    for name, b in (baselines or {}).items():
        lines.append(f"| {name.replace('_', ' ')} (baseline) | {100 * b['accuracy_mean']:.2f} ± "
                     f"{100 * b['accuracy_std']:.2f} | - | {_prediction_cells(b)} | - | - | - | - "
                     '| - |')
    return '\n'.join(lines) + '\n'


def node_decision_table(rows: list[dict]) -> str:
    """Per method, the decision the node acts on (the model OR the own link measured below
    S_th now, its reactive floor), pooled over folds x seeds."""
    node_rows = [r for r in rows if r['crossval'].get('node_decision')]
    if not node_rows:
        return ''
    lines = ['', '#### The decision the node acts on (model OR own link below S_th)', '',
             '| method | accuracy [%] | AUROC | onset recall 1 / 2 / 3 / 5 frames ahead | '
             'median lead [ms] | false alarms / min | late all-clears / min | onset recall at '
             'fixed FA |', '|---|---|---|---|---|---|---|---|']
    for r in node_rows:
        n = r['crossval']['node_decision']
        lines.append(f"| {r['label']} | {100 * n['accuracy_mean']:.2f} ± "
                     f"{100 * n['accuracy_std']:.2f} | {_prediction_cells(n)} |")
    return '\n'.join(lines) + '\n'


def keep_ratio_gradient_table(rows: list[dict], tc: TrainConfig) -> str:
    """Why the learned r_l end where they do: per routed row and block, dL/dr_l's mean and
    rms over the training steps (pooled over folds x seeds), its sign consistency
    |mean| / rms, and the drift Adam could give it (it moves a parameter by about
    lr_t * mean / rms per step, whatever the gradient's size; summed over the schedule's
    lr_t) beside the drift it got."""
    lines = []
    for row in rows:
        runs = [r for r in row['crossval']['runs'] if r.get('keep_ratio_grad_rms')]
        if not runs:
            continue
        mean = np.mean([np.mean(r['keep_ratio_grad'], axis=0) for r in runs], axis=0)
        rms = np.sqrt(np.mean([np.mean(np.square(r['keep_ratio_grad_rms']), axis=0)
                               for r in runs], axis=0))
        drift = np.mean([np.asarray(r['keep_ratios']) - row['gamma'] for r in runs], axis=0)
        steps = [r['steps_per_epoch'] * len(r['keep_ratio_grad']) for r in runs
                 if r.get('steps_per_epoch')]
        n_steps = int(np.mean(steps)) if steps else 0
        held = int(tc.keep_ratio_hold_fraction * n_steps)   # r_l frozen for these steps
        lr_sum = tc.keep_ratio_lr * sum(
            lr_factor(i, warmup=warmup_steps(tc, n_steps), total=n_steps)
            for i in range(held, n_steps))
        if not lines:
            lines = ['', f'#### Keep-ratio gradients (r_l learning rate {tc.keep_ratio_lr:g}, '
                         'Adam; dL/dr_l through Eq. 18 and 19, per step)', '',
                     '| row | block | dL/dr_l mean | dL/dr_l rms | consistency mean/rms | '
                     'steps | drift Adam could give (Σ lr_t · consistency) | learned drift '
                     "r_l − γ' |", '|---|---|---|---|---|---|---|---|']
        for layer, (m, q, d) in enumerate(zip(mean, rms, drift), start=1):
            c = abs(m) / q if q > 0 else float('nan')
            could = f'{lr_sum * c:.3f}' if n_steps else '-'
            lines.append(f"| {row['label']} | {layer} | {m:+.4f} | {q:.4f} | {c:.3f} | "
                         f"{n_steps or '-'} | {could} | {d:+.3f} |")
    return '\n'.join(lines) + ('\n' if lines else '')


def _model_option_note(options: dict | None) -> str:
    options = options or {}
    notes = []
    if options.get('rssi_tokens', 'routed') != 'routed':
        notes.append(f"RSSI tokens {options['rssi_tokens']}")
    if options.get('keep_ratio_bracket', 1) != 1:
        notes.append(f"Eq. 18 bracket Δ={options['keep_ratio_bracket']}")
    return ''.join(f', {n}' for n in notes)


def run_report(data: WindowDataset, *, preset_name: str, methods: list[str], gammas: list[float],
               folds: int, seeds: list[int], tc: TrainConfig, out_dir: str | Path,
               max_folds: int | None = None, bench_reps: int = 7, progress: bool = True,
               group_kinds: list[str] | None = None, horizon: int = 1,
               ablation_gamma: float = 0.3, metrics: str = 'proactive',
               model_options: dict | None = None) -> list[dict]:
    """``group_kinds``: leave-kinds-out folds (kind of each group) instead of folds by
    scenario; ``horizon``: the label horizon in frames (1: the paper's next frame);
    ``ablation_gamma``: gamma' of the three ablations (the paper's Tables IV-V: 0.3);
    ``metrics``: the false-alarm definition (``metrics.FALSE_ALARM_DEFINITIONS``);
    ``model_options``: ``ModelConfig`` fields set for every method (``rssi_tokens``...).

    Every run is stored in ``out_dir/runs`` and reused by a later call with the same settings;
    several processes may share one ``out_dir`` (each trains the runs nobody else has). The
    table is written only when every run is done; ``bench_reps`` 0 leaves the latency, memory
    and FLOPs columns out (for a process that must not time while others train)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = RunStore(out_dir / 'runs')
    rows, pending = [], []
    for method in methods:     # every config valid before the first run trains
        preset(preset_name, method=method, **(model_options or {}))
    for method in methods:
        for gamma in (gammas if method == 'routed'
                      else [ablation_gamma if method in ROUTED_METHODS else None]):
            cfg = preset(preset_name, method=method, **(model_options or {}),
                         **({} if gamma is None else {'target_keep_ratio': gamma}))
            cv = cross_validate(cfg, data, folds=folds, seeds=seeds, tc=tc, max_folds=max_folds,
                                progress=progress, group_kinds=group_kinds, horizon=horizon,
                                store=store, metrics=metrics)
            pending += cv['runs_pending']
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
                         **{k: cv[k] for k in ('auroc_mean', 'onset_recall_ahead',
                                               'median_lead_ms', 'false_alarms_per_min',
                                               'late_all_clears_per_min',
                                               'recall_at_fixed_false_alarm_rate',
                                               'max_false_alarms_per_min') if k in cv},
                         'crossval': cv})
    if pending:
        print(f'{len(pending)} runs are being trained by another process ({", ".join(pending)}); '
              f'run the same command again when they are done to write the table')
        return []
    if bench_reps > 0:
        bench = benchmark_methods(preset_name, methods=sorted({r['method'] for r in rows}),
                                  gammas=sorted({r['gamma'] for r in rows
                                                 if r['gamma'] is not None}),
                                  reps=bench_reps, device=tc.device, progress=progress)
        by_key = {(b['method'], b['gamma']): b for b in bench}
        for r in rows:   # every row timed at its own gamma'
            r.update({k: by_key[(r['method'], r['gamma'])][k] for k in (
                'latency_ms_median', 'latency_ms_p90', 'peak_mem_mb', 'gflops',
                'tokens_per_layer', 'device_name')})
    split = 'kind (whole kinds held out)' if group_kinds is not None else 'scenario'
    latency_note = (f"latency on {rows[0]['device_name']}" if 'device_name' in rows[0]
                    else 'latency not measured (--bench-reps 0)')
    title = (f"Table VI on {preset_name}: {folds}-fold CV by {split}"
             f"{f' (first {max_folds} folds)' if max_folds else ''}, seeds {seeds}, "
             f"{tc.epochs} epochs, lr {tc.lr:g}"
             f"{f', steady fraction {tc.steady_fraction:g}' if tc.steady_fraction < 1 else ''}"
             f"{f', modality dropout {tc.modality_dropout:g}' if tc.modality_dropout else ''}"
             f"{f', label horizon {horizon} frames' if horizon > 1 else ''}"
             f"{'' if tc.down_pass_grad else ', Eq. 18 K_down pass without autograd'}"
             f"{f', threshold from {tc.threshold_windows} training windows' if tc.threshold_windows else ''}"
             f"{_model_option_note(model_options)}"
             f"{f', r_l held for {tc.keep_ratio_hold_fraction:g} of the steps' if tc.keep_ratio_hold_fraction else ''}"
             f", false alarms: {metrics} definition; {latency_note}")
    (out_dir / 'table6.md').write_text(
        markdown_table(rows, title, rows[0]['crossval'].get('baselines'))
        + node_decision_table(rows) + keep_ratio_gradient_table(rows, tc))
    (out_dir / 'table6.json').write_text(json.dumps(rows, indent=2) + '\n')
    plot_keep_ratios(rows, out_dir / 'keep_ratios.png')
    if 'latency_ms_median' in rows[0]:
        plot_accuracy_latency(rows, out_dir / 'accuracy_vs_latency.png')
    return rows
