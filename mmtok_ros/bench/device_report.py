"""The Markdown summary of the device check's results (``device_check.md``), written from
the JSON after every part, so whatever ran has its table even when a later part fails."""
from __future__ import annotations

import json


def _f(value, fmt='{:.2f}') -> str:
    if value is None:
        return '-'
    if isinstance(value, str):
        return value
    return fmt.format(value)


def summary_markdown(results: dict) -> str:
    parts = results.get('parts', {})
    env = parts.get('env', {}).get('result', {})
    lines = [f"# Device check ({'dry run, ' if results.get('dry') else ''}"
             f"{env.get('gpu', env.get('device', results.get('device')))})", '',
             f"Started {results.get('started_utc')}, {results.get('elapsed_s')} s in all; torch "
             f"{env.get('torch')} (CUDA {env.get('torch_cuda')}), onnxruntime "
             f"{env.get('onnxruntime')}; ROS modules loaded: "
             f"{results.get('ros_modules_loaded') or 'none'}.", '',
             '| part | status | seconds | note |', '|---|---|---|---|']
    for name, entry in parts.items():
        lines.append(f"| {name} | {entry.get('status')} | {entry.get('seconds', '-')} | "
                     f"{(entry.get('error') or '').replace('|', '/')[:160]} |")
    par = parts.get('parity', {}).get('result', {})
    if any(isinstance(v, dict) and 'pass' in v for v in par.values()):
        lines += ['', '## Device against CPU (shipped models, held-out windows, fp32)', '',
                  f"Tolerance: |Δlogit| ≤ {par.get('tolerance', {}).get('abs_logit')}, every "
                  'decision equal.', '',
                  '| model | windows | max abs Δlogit | max abs Δp | decisions differing | '
                  'accuracy CPU / device | pass |', '|---|---|---|---|---|---|---|']
        for m, r in par.items():
            if isinstance(r, dict) and 'pass' in r:
                lines.append(f"| {m} | {r['windows']} | {r['max_abs_logit_diff']:.2e} | "
                             f"{r['max_abs_p_diff']:.2e} | {r['decisions_differing']} | "
                             f"{r['accuracy_cpu']:.2%} / {r['accuracy_device']:.2%} | "
                             f"{'yes' if r['pass'] else '**NO**'} |")
    t7 = parts.get('table7', {}).get('result', {}).get('rows', [])
    if t7:
        lines += ['', '## Table VII on the device (batch 1)', '',
                  '| model | variant | accuracy | acc. H=3 | Δ decisions vs fp32 | latency p50 '
                  '[ms] | p90 [ms] | peak mem [MB] | above start [MB] | params |',
                  '|---|---|---|---|---|---|---|---|---|---|']
        for r in t7:
            if 'accuracy' not in r:
                lines.append(f"| {r['method']} | {r['variant']} | {r.get('status')}: "
                             f"{r.get('error', '')[:80].replace('|', '/')} | | | | | | | |")
                continue
            lines.append(f"| {r['method']} | {r['variant']} | {r['accuracy']:.2%} | "
                         f"{r['accuracy_h3']:.2%} | {r['decisions_differing_vs_fp32']} | "
                         f"{r['median_ms']:.2f} | {r['p90_ms']:.2f} | {_f(r['peak_mem_mb'], '{:.1f}')} | "
                         f"{_f(r['peak_mem_above_start_mb'], '{:.1f}')} | {r['params']:,} |")
    bench = parts.get('bench', {}).get('result', {}).get('rows', [])
    if bench:
        lines += ['', '## mmtok bench on the device (untrained weights, batch 1)', '',
                  '| preset | precision | method | γ\' | latency p50 [ms] | p90 [ms] | speed-up '
                  'vs mha | peak mem [MB] | GFLOPs |', '|---|---|---|---|---|---|---|---|---|']
        for r in bench:
            lines.append(f"| {r['preset']} | {r['precision']} | {r['method']} | "
                         f"{_f(r['gamma'], '{:.2f}')} | {r['latency_ms_median']:.2f} | "
                         f"{r['latency_ms_p90']:.2f} | {_f(r['speedup_vs_mha'], '{:.2f}x')} | "
                         f"{_f(r['peak_mem_mb'], '{:.1f}')} | {r['gflops']:.2f} |")
    st = parts.get('streaming', {}).get('result', {})
    if st.get('rows'):
        lines += ['', '## Streaming predictor per frame (batch 1)', '',
                  '| model | option | precision | p50 [ms] | p90 [ms] | note |',
                  '|---|---|---|---|---|---|']
        for r in st['rows']:
            note = []
            if 'max_abs_p_diff_vs_eager' in r:
                note.append(f"max abs Δp vs eager {r['max_abs_p_diff_vs_eager']:.1e}"
                            + (f", capture {r['capture_s']} s" if r.get('captured') else ''))
            if 'compile_and_first_windows_s' in r:
                note.append(f"compile {r['compile_and_first_windows_s']} s, "
                            f"{r.get('graph_breaks', '-')} graph breaks")
            lines.append(f"| {r['method']} | {r['option']} | {r['precision']} | "
                         f"{r['median_ms']:.2f} | {r['p90_ms']:.2f} | {'; '.join(note)} |")
        if st.get('syncs_per_window'):
            lines += ['', 'Device-to-host syncs per window (encode: transformer + head; '
                      'predict: StreamingPredictor.predict, one new frame): ' + '; '.join(
                          f"{m}: {v['as is']} as is, {v['K fixed once']} with K fixed once"
                          for m, v in st['syncs_per_window'].items())]
    failed = {k: v for k, v in st.items() if isinstance(v, dict) and v.get('status')}
    if failed:
        lines += ['', 'Streaming options that did not run: ' + '; '.join(
            f"{k}: {v['status']} ({v.get('error', '')[:120]})" for k, v in failed.items())]
    ox = parts.get('onnx', {}).get('result', {})
    if ox:
        lines += ['', '## onnxruntime', '', f"CUDA execution provider: "
                  f"{ox.get('cuda_execution_provider', '-')}. Ran on {ox.get('ran_on', '-')}.", '']
        for m in ('routed', 'mha'):
            r = ox.get(m)
            if isinstance(r, dict) and 'frame_ms_median' in r:
                lines.append(f"- {m}: {r.get('provider_used')}, per frame "
                             f"{r['frame_ms_median']:.2f} ms (p90 {r['frame_ms_p90']:.2f}), "
                             f"accuracy {r['accuracy']:.2%}, decisions differing from torch CPU: "
                             f"{r.get('decisions_differing_vs_torch_cpu', '-')}, export "
                             f"{r['export_s']} s")
            elif isinstance(r, dict):
                lines.append(f'- {m}: {json.dumps(r, default=str)[:300]}')
    cap = parts.get('capture', {}).get('result', {})
    if cap:
        lines += ['', '## CUDA-graph capture of the routed model as it is', '',
                  json.dumps(cap, default=str)[:600]]
    return '\n'.join(lines) + '\n'
