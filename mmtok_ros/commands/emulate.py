"""``mmtok emulate``: offline handover emulation (no ROS) over many recorded scenarios.

The same windows as the live node (decode, ApproximateTime sync, causal windows: see
``train/build.py``), the model's p_blocked per window, the node's hysteresis
(:class:`~mmtok_ros.runtime.handover.HandoverDecision`), and every decision executed one
inference latency after its window's newest frame. Policies compared per scenario: proactive,
reactive, oracle (``runtime/emulation.py``). Use it to choose the hysteresis on training
scenarios and to check a model on many held-out ones; ``mmtok demo`` runs the real nodes.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = 'offline handover emulation: a model on recorded bags -> Fig. 5 per scenario, no ROS'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..runtime.handover import HysteresisConfig
    h = HysteresisConfig()
    parser.add_argument('--model', required=True, help='model file (.pt)')
    parser.add_argument('--data', required=True, help='directory of bags with .truth.json sidecars')
    parser.add_argument('--bags', default='', help='comma-separated bag names (default: all)')
    parser.add_argument('--out', default='results/emulate', help='results directory')
    parser.add_argument('--latency-ms', type=float, default=None,
                        help='decision delay after the newest frame (default: the median '
                             'measured batch-1 inference time of this model here)')
    parser.add_argument('--p-on', type=float, default=h.p_on)
    parser.add_argument('--p-off', type=float, default=h.p_off)
    parser.add_argument('--on-windows', type=int, default=h.on_windows)
    parser.add_argument('--off-windows', type=int, default=h.off_windows)
    parser.add_argument('--min-dwell-ms', type=float, default=h.min_dwell_ns / 1e6)
    parser.add_argument('--device', default='auto')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--rsus', type=int, default=None,
                        help='RSUs in the data (default: read from its index.json); N >= 3: '
                             'the road emulation of every RSU (commands/_road.py)')


def measured_latency_ms(model, data, device, n: int = 10) -> float:
    """Median batch-1 time (the benchmark's ``time_once``) over the first ``n`` windows,
    after one warm-up."""
    import numpy as np

    from ..timing import Candidate, time_once
    timed = Candidate(model.cfg.method, model.cfg.target_keep_ratio, model)
    for i in range(min(n, len(data)) + 1):
        time_once(timed, data.batch(np.array([i % len(data)]), device)[0], device, 'fp32')
    return float(np.median(timed.total_ms[1:]))


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..devices import resolve_device
    from ..model.checkpoint import load_model
    from ..reports import emulation as report
    from ..runtime import emulation as emu
    from ..runtime.handover import HysteresisConfig
    from ..train.build import dataset_from_bags
    from ..train.trainer import predict

    from ._road import road_rsus, run_emulate
    n_rsus = args.rsus or road_rsus(args.data)
    if n_rsus is not None and n_rsus >= 3:
        return run_emulate(args, n_rsus)
    hysteresis = HysteresisConfig(args.p_on, args.p_off, args.on_windows, args.off_windows,
                                  int(args.min_dwell_ms * 1e6))
    device, _ = resolve_device(args.device)
    model, _ = load_model(args.model, device=device)
    if model.cfg.n_classes != 1:
        raise ValueError(f'{args.model} predicts {model.cfg.n_classes} classes; emulate needs a '
                         'link-status model (n_classes 1)')
    data, names = dataset_from_bags(args.data, model.cfg, progress=not args.no_progress)
    wanted, truths = emu.bags_and_truths(args.data, args.bags, names)
    latency_ms = (measured_latency_ms(model, data, device) if args.latency_ms is None
                  else args.latency_ms)
    p_blocked = torch.sigmoid(torch.from_numpy(predict(model, data)[:, 0])).numpy()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scenarios, rows, checks = {}, [], []
    for name in wanted:
        g = names.index(name)
        rows_g = np.flatnonzero(data.groups == g)
        rows_g = rows_g[np.argsort(data.newest_stamp_ns[rows_g])]
        preds = [(int(data.newest_stamp_ns[r]), float(p_blocked[r]), latency_ms) for r in rows_g]
        timeline = emu.timeline_from_truth(truths[name])
        results = emu.emulate(timeline, {
            'proactive': emu.switches_from_predictions(preds, hysteresis=hysteresis),
            'reactive': emu.reactive_switches(timeline,
                                              emu.timeline_measured_from_truth(truths[name])),
            'oracle': emu.oracle_switches(timeline)})
        metrics = {p: r.metrics for p, r in results.items()}
        blocked = bool(timeline.blockage_intervals_ns)
        if blocked or metrics['proactive']['handovers']:
            report.write_csv(out / f'fig5_{name}.csv', timeline, results)
            report.plot(out / f'fig5_{name}.png', timeline, results,
                     title=f"{name} ({truths[name].get('kind', '')}): served RSSI")
        scenarios[name] = {'kind': truths[name].get('kind'), 'blocked': blocked,
                           'policies': metrics}
        rows += report.policy_rows(name, metrics)
        if blocked:
            checks.append(report.proactive_check(name, metrics))
    blocked_names = [n for n in wanted if scenarios[n]['blocked']]
    clear_names = [n for n in wanted if not scenarios[n]['blocked']]

    def mean_rssi(policy: str, subset: list[str]) -> float | None:
        values = [scenarios[n]['policies'][policy]['mean_served_rssi_dbm'] for n in subset]
        return float(np.mean(values)) if values else None

    doc = {'model': str(args.model), 'data': str(args.data), 'latency_ms': latency_ms,
           'hysteresis': {'p_on': hysteresis.p_on, 'p_off': hysteresis.p_off,
                          'on_windows': hysteresis.on_windows,
                          'off_windows': hysteresis.off_windows,
                          'min_dwell_ms': hysteresis.min_dwell_ns / 1e6},
           'blocked_scenarios': len(blocked_names),
           'proactive_before_blockage': sum(c['proactive_before_blockage'] for c in checks),
           'proactive_above_reactive': sum(c['proactive_above_reactive'] for c in checks),
           'false_alarm_handovers_in_clear_scenarios':
               sum(scenarios[n]['policies']['proactive']['handovers'] for n in clear_names),
           'mean_served_rssi_dbm': {p: {'blocked': mean_rssi(p, blocked_names),
                                        'clear': mean_rssi(p, clear_names)}
                                    for p in emu.POLICIES},
           'checks': checks, 'scenarios': scenarios}
    (out / 'summary.json').write_text(json.dumps(doc, indent=1) + '\n')
    table = report.markdown_table(rows)
    (out / 'summary.md').write_text(f'# mmtok emulate: `{args.model}` on `{args.data}`\n\n'
                                    f'decision latency {latency_ms:.1f} ms\n\n{table}')
    print(table)
    print(f"proactive before the blockage in {doc['proactive_before_blockage']}/"
          f"{len(blocked_names)} blocked scenarios, served RSSI above reactive in "
          f"{doc['proactive_above_reactive']}/{len(blocked_names)}; "
          f"{doc['false_alarm_handovers_in_clear_scenarios']} handovers in "
          f"{len(clear_names)} clear scenarios (latency {latency_ms:.1f} ms)")
    print(f'wrote {out}/summary.json, summary.md and fig5_*.png')
    return 0
