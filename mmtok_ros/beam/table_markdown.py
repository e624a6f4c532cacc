"""The Markdown of the beam task's Tables II-V (``tables.py`` runs them): one function a
table kind, each row a trained (or, at scale, untrained) model's scores and timing."""
from __future__ import annotations

from ..model import ModelConfig
from ..resources import format_mb


def _pct(x: float) -> str:
    return f'{100 * x:.1f}'


def _ratios(r: list[float]) -> str:
    return ', '.join(f'{v:.2f}' for v in r) if r else '-'


def _table(title: str, columns: list[str], lines: list[str]) -> str:
    """A titled Markdown table: ``columns`` for the header, ``lines`` the rows already
    written."""
    return '\n'.join([f'### {title}', '', '| ' + ' | '.join(columns) + ' |',
                      '|' + '---|' * len(columns), *lines]) + '\n'


def table_scale(cfg: ModelConfig, timing: dict[str, dict], title: str) -> str:
    """Table II at a paper-like token count: latency, stages and FLOPs of untrained models."""
    mha = timing.get('mha')
    lines = []
    for label, t in timing.items():
        s = t['stages_ms_median']
        speed = f"{mha['latency_ms_median'] / t['latency_ms_median']:.2f}x" if mha else '-'
        lines.append(f"| {label} | {t['latency_ms_median']:.1f} | {t['latency_ms_p90']:.1f} "
                     f"| {speed} | {s['tokenize']:.1f} / {s['transformer']:.1f} "
                     f"| {t['gflops']:.2f} | {','.join(map(str, t['tokens_per_layer']))} |")
    return _table(title, ['method', 'latency median [ms]', 'p90 [ms]', 'speed-up vs mha',
                          'tokenize / transformer [ms]', 'GFLOPs', 'tokens per layer'], lines)


def table_cost(rows: list[dict], title: str) -> str:
    """Tables II and III: accuracy, latency, memory and FLOPs per method."""
    mha = next((r for r in rows if r['method'] == 'mha'), None)
    lines = []
    for r in rows:
        speed = f"{mha['latency_ms_median'] / r['latency_ms_median']:.2f}x" if mha else '-'
        lines.append(
            f"| {r['label']} | {_pct(r['top1'])} | {_pct(r['top3'])} | {_pct(r['top5'])} "
            f"| {r['dba']:.3f} | {r['latency_ms_median']:.2f} | {r['latency_ms_p90']:.2f} "
            f"| {speed} | {format_mb(r.get('peak_mem_mb'))} | {r['gflops']:.4f} "
            f"| {','.join(map(str, r['tokens_per_layer']))} | {_ratios(r['keep_ratios'])} |")
    return _table(title, ['method', 'top-1 [%]', 'top-3 [%]', 'top-5 [%]', 'DBA',
                          'latency median [ms]', 'p90 [ms]', 'speed-up vs mha', 'peak mem [MB]',
                          'GFLOPs', 'tokens per layer', 'learned r_l'], lines)


def table_ablation(rows: list[dict], title: str) -> str:
    """Table IV: accuracy and FLOPs of the ablations against routed."""
    lines = [f"| {r['label']} | {_pct(r['top1'])} | {_pct(r['top3'])} | {_pct(r['top5'])} "
             f"| {r['dba']:.3f} | {r['gflops']:.4f} |" for r in rows]
    return _table(title, ['method', 'top-1 [%]', 'top-3 [%]', 'top-5 [%]', 'DBA', 'GFLOPs'],
                  lines)


def table_modalities(rows: list[dict], title: str) -> str:
    """Table V: one modality removed (retrained), and the full model with it marked absent."""
    lines = []
    for r in rows:
        absent = r.get('absent_scores')
        absent = f"{_pct(absent['top1'])} / {_pct(absent['top3'])}" if absent else '-'
        lines.append(f"| {r['removed'] or 'none'} | {r['n_tokens']} | {_pct(r['top1'])} "
                     f"| {_pct(r['top3'])} | {_pct(r['top5'])} | {r['dba']:.3f} "
                     f"| {r['latency_ms_median']:.2f} | {absent} |")
    return _table(title, ['modality removed', 'tokens N', 'top-1 [%]', 'top-3 [%]', 'top-5 [%]',
                          'DBA', 'latency median [ms]',
                          'full model, modality marked absent: top-1 / top-3 [%]'], lines)
