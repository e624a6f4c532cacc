"""``mmtok simulate --rsus N`` and ``mmtok emulate`` on N-RSU road data (N >= 3).

Not a subcommand of its own (the leading underscore): ``simulate`` and ``emulate`` call in
here when N >= 3, so the two-RSU testbed paths stay as they are.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def run_simulate(args: argparse.Namespace) -> int:
    from ..sim.road import DEFAULT_ROAD_FRAMES, MIN_RSUS, simulate_road

    if args.rsus < MIN_RSUS:
        print(f'mmtok simulate: error: --rsus {args.rsus}: 2 is the testbed, a road needs '
              f'{MIN_RSUS} or more', file=sys.stderr)
        return 2
    if args.drop_modality:
        print('mmtok simulate: error: --drop-modality is a testbed option (without --rsus)',
              file=sys.stderr)
        return 2
    tic = time.perf_counter()
    try:
        infos = simulate_road(args.out, n_rsus=args.rsus,
                              n_scenarios=4 if args.scenarios is None else args.scenarios,
                              seed=args.seed, frames_per_scenario=args.frames,
                              progress=not args.no_progress)
    except FileExistsError as err:
        print(f'mmtok simulate: error: {err}', file=sys.stderr)
        return 2
    rows = [('scenario', 'kind', 'frames', 'blocked frames per link', 'bag [MB]')]
    for i in infos:
        blocked = ' '.join(f'{r}:{n}' for r, n in i.link_blocked_frames.items())
        rows.append((i.name, i.kind, str(i.n_frames), blocked, f'{i.bag_bytes / 1e6:.1f}'))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for n, r in enumerate(rows):
        print('  '.join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
        if n == 0:
            print('  '.join('-' * w for w in widths))
    frames = args.frames or DEFAULT_ROAD_FRAMES
    print(f'{len(infos)} road scenarios x {args.rsus} RSUs x {frames} frames in '
          f'{time.perf_counter() - tic:.1f} s -> {args.out}/index.json')
    return 0


def road_rsus(data_dir: str | Path) -> int | None:
    """N of a road data directory (its ``index.json`` or first sidecar), None for a testbed."""
    data_dir = Path(data_dir)
    index = data_dir / 'index.json'
    if index.is_file():
        doc = json.loads(index.read_text())
        return int(doc['n_rsus']) if doc.get('generator') == 'mmtok_ros.sim.road' else None
    for sidecar in sorted(data_dir.glob('*.truth.json')):
        doc = json.loads(sidecar.read_text())
        return int(doc['n_rsus']) if str(doc.get('version', '')).startswith('road/') else None
    return None


def run_emulate(args: argparse.Namespace, n_rsus: int) -> int:
    import numpy as np
    import torch

    from ..devices import resolve_device
    from ..model.checkpoint import load_model
    from ..reports import road as report
    from ..runtime import emulation_road as road
    from ..runtime.handover import HysteresisConfig
    from ..runtime import emulation
    from ..train.build import scenario_dirs

    hysteresis = HysteresisConfig(args.p_on, args.p_off, args.on_windows, args.off_windows,
                                  int(args.min_dwell_ms * 1e6))
    device, _ = resolve_device(args.device)
    model, _ = load_model(args.model, device=device)
    if model.cfg.n_classes != 1 or model.cfg.rssi_dim != 2:
        raise ValueError(f'{args.model}: the road emulation needs a link-status model reading '
                         f'two RSSI values (own link, neighbour ahead); this one has n_classes '
                         f'{model.cfg.n_classes}, rssi_dim {model.cfg.rssi_dim}')
    threshold = float(getattr(model, 'decision_threshold', 0.5))
    bags = {b.name: b for b in scenario_dirs(args.data)}
    wanted, truths = emulation.bags_and_truths(args.data, args.bags, list(bags))
    for name, truth in truths.items():
        if truth.get('n_rsus') != n_rsus:
            raise ValueError(f"{args.data}/{name}.truth.json: {truth.get('n_rsus')} RSUs, "
                             f'expected {n_rsus}')
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    raw = {name: road.predict_road_bag(bags[name], model, n_rsus=n_rsus, device=device,
                                       progress=not args.no_progress) for name in wanted}
    measured_ms = [ms for r in raw.values() for v in r.values() for ms in v['inference_ms']]
    latency_ms = (float(np.median(measured_ms)) if args.latency_ms is None and measured_ms
                  else float(args.latency_ms or 0.0))
    rows, checks, scenarios = [], [], {}
    for name in wanted:
        tl = road.road_timeline_from_truth(truths[name])
        preds = road.FramePredictions.from_windows(
            tl, {r: v['windows'] for r, v in raw[name].items()})
        results, events = road.emulate_road(tl, preds, latency_ms=latency_ms,
                                            hysteresis=hysteresis)
        metrics = {p: r.metrics for p, r in results.items()}
        check = {p: road.never_worse_check(name, metrics, policy=p)
                 for p in ('proposed',)}
        checks.append(check)
        rows += report.road_rows(name, metrics, check)
        report.write_road_csv(out / f'fig5_{name}.csv', tl, results)
        report.plot_road(out / f'fig5_{name}.png', tl, results, events=events,
                         title=f"{name} ({truths[name].get('kind', '')}), {n_rsus} RSUs")
        scenarios[name] = {
            'kind': truths[name].get('kind'), 'initial_rsu': tl.home_rsu,
            'link_blocked_frames': truths[name].get('link_blocked_frames'),
            'policies': metrics, 'check': check,
            'proposed_events': [{'frame': e.frame, 't_s': (e.exec_ns - tl.t0_ns) / 1e9,
                                 'source': e.source_rsu, 'target': e.target_rsu,
                                 'reason': e.reason, 'p_blocked': e.p_blocked}
                                for e in events],
            'predictions': road.prediction_scores(tl, preds, threshold),
            'windows': {r: [[int(s), round(float(p), 5)] for s, p in v['windows']]
                        for r, v in raw[name].items()},
            'switches': {p: [{'t_s': (s.time_ns - tl.t0_ns) / 1e9, 'rsu': s.rsu}
                             for s in r.switches] for p, r in results.items()}}
    passed = {p: sum(c[p]['passed'] for c in checks) for p in ('proposed',)}
    doc = {'model': str(args.model), 'data': str(args.data), 'n_rsus': n_rsus,
           'latency_ms': latency_ms, 'latency_source': 'given' if args.latency_ms is not None
           else f'median streaming inference per window here, torch threads '
                f'{torch.get_num_threads()}',
           'decision_threshold': threshold,
           'hysteresis': {'p_on': hysteresis.p_on, 'p_off': hysteresis.p_off,
                          'on_windows': hysteresis.on_windows,
                          'floor_windows': hysteresis.floor_windows,
                          'neighbour_stale_ms': hysteresis.neighbour_stale_ns / 1e6},
           'never_worse_tolerance': {'mean_rssi_db': road.NEVER_WORSE_RSSI_TOL_DB,
                                     'time_below_s': road.NEVER_WORSE_TIME_TOL_S},
           'never_worse_passed': passed, 'scenarios_checked': len(checks),
           'topic_maps': {r: v['topic_map'] for r, v in next(iter(raw.values())).items()}
           if raw else {},
           'scenarios': scenarios}
    (out / 'summary.json').write_text(json.dumps(doc, indent=1) + '\n')
    table = report.road_markdown(rows)
    (out / 'summary.md').write_text(
        f'# mmtok emulate: `{args.model}` on `{args.data}` ({n_rsus} RSUs)\n\n'
        f'decision latency {latency_ms:.1f} ms; never worse than reactive: no more time below '
        f'S_th, mean served RSSI at most {road.NEVER_WORSE_RSSI_TOL_DB} dB lower\n\n{table}')
    print(table)
    for by_policy in checks:
        for p, c in by_policy.items():
            print(f"{c['scenario']}: {'PASS' if c['passed'] else 'FAIL'} {p} vs reactive: "
                  f"time below S_th {c['d_time_below_s']:+.1f} s, mean served RSSI "
                  f"{c['d_mean_rssi_db']:+.2f} dB")
    for p, n in passed.items():
        print(f'{p} never worse than reactive in {n}/{len(checks)} scenarios '
              f'(latency {latency_ms:.1f} ms)')
    print(f'wrote {out}/summary.json, summary.md, fig5_*.png')
    return 0
