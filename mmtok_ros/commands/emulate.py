"""``mmtok emulate``: offline handover emulation (no ROS) over recorded scenarios, any N >= 2.

Every RSU's model runs on the bag through the node's own path (its topic map, the window
stream, the streaming predictor), and the node's own ``HandoverDecision`` decides on those
predictions, each decision executed one latency after its frame; reactive and oracle are the
baselines (``runtime/emulation``). The preset (testbed: a fixed home RSU; road: the serving
RSU decides) follows the data's sidecars unless ``--preset`` names one, and is printed. Use it
to choose the hysteresis on training scenarios and to check a model on many held-out ones;
``mmtok demo`` runs the real nodes.

Besides the per-policy table, the summary has the proactive metrics per scenario and in
total (blockages handed over in time, with a lead of at least the decision latency used;
spurious proactive handovers per hour of clear link; outage against reactive and oracle) and
ends with the four proactive-handover targets, PASS/FAIL (``runtime/emulation/acceptance.py``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..constants import NS_PER_MS
from ..errors import UserInputError

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
                             'streaming inference time per window measured here)')
    parser.add_argument('--p-on', type=float, default=None,
                        help="default: the model file's decision threshold, as the node's "
                             'hysteresis.p_on; then --p-off is at most it')
    parser.add_argument('--p-off', type=float, default=h.p_off)
    parser.add_argument('--on-windows', type=int, default=h.on_windows)
    parser.add_argument('--off-windows', type=int, default=h.off_windows)
    parser.add_argument('--min-dwell-ms', type=float, default=h.min_dwell_ns / NS_PER_MS)
    parser.add_argument('--clear-windows', type=int, default=h.clear_windows,
                        help='hand-back floor: home measured clear this many windows after it '
                             'was measured down, p < p_on: go home (default %(default)s, the '
                             'reactive hand-back); 0: off, the hand-back before it')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--rsus', type=int, default=None,
                        help='RSUs the data must have (default: whatever its sidecars say)')
    parser.add_argument('--preset', choices=('auto', 'testbed', 'road'), default='auto',
                        help='testbed: RSU 1 is a fixed home (its node decides, hands back, '
                             'oracle one frame ahead); road: the serving RSU decides; auto: '
                             'testbed for testbed sidecars, road for road ones')


def _options(args: argparse.Namespace, truth: dict, latency_ms: float, threshold: float):
    from ..runtime.emulation import EmulationOptions
    from ..runtime.handover import HysteresisConfig
    p_on, p_off = ((threshold, min(args.p_off, threshold)) if args.p_on is None
                   else (args.p_on, args.p_off))
    hysteresis = HysteresisConfig(p_on, p_off, args.on_windows, args.off_windows,
                                  int(args.min_dwell_ms * NS_PER_MS),
                                  clear_windows=args.clear_windows)
    kw = {'latency_ms': latency_ms, 'hysteresis': hysteresis}
    if args.preset == 'auto':
        return EmulationOptions.for_truth(truth, **kw)
    return getattr(EmulationOptions, args.preset)(**kw)


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def totals(scenarios: dict[str, dict], policies) -> dict:
    """Counts over all scenarios: blocked scenarios, the checks, per policy the blockages it
    was serving, those it left before, its time below S_th and mean served RSSI."""
    blocked = [n for n, s in scenarios.items() if s['blockage_intervals_s']]
    clear = [n for n in scenarios if n not in blocked]
    checks = [scenarios[n]['check'] for n in scenarios]
    return {
        'blocked_scenarios': len(blocked),
        'proactive_before_blockage': sum(scenarios[n]['check']['before_blockage']
                                         for n in blocked),
        'proactive_above_reactive': sum(scenarios[n]['check']['above_reactive']
                                        for n in blocked),
        'never_worse_passed': sum(c['passed'] for c in checks),
        'scenarios_checked': len(checks),
        'false_alarm_handovers_in_clear_scenarios':
            sum(scenarios[n]['policies']['proactive']['handovers'] for n in clear),
        'policies': {p: {
            'serving_blockages': sum(s['policies'][p]['serving_blockages']
                                     for s in scenarios.values()),
            'handed_over_before_blockage': sum(s['policies'][p]['handed_over_before_blockage']
                                               for s in scenarios.values()),
            'time_below_threshold_s': sum(s['policies'][p]['time_below_threshold_s']
                                          for s in scenarios.values()),
            'mean_served_rssi_dbm': {
                'blocked': _mean([scenarios[n]['policies'][p]['mean_served_rssi_dbm']
                                  for n in blocked]),
                'clear': _mean([scenarios[n]['policies'][p]['mean_served_rssi_dbm']
                                for n in clear])}} for p in policies}}


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..constants import DEFAULT_DECISION_THRESHOLD
    from ..devices import resolve_device
    from ..model.checkpoint import load_model
    from ..reports import emulation as report
    from ..runtime import emulation as emu
    from ..train.build import scenario_dirs

    device, _ = resolve_device(args.device)
    model, _ = load_model(args.model, device=device)
    if model.cfg.n_classes != 1:
        raise UserInputError(f'{args.model} predicts {model.cfg.n_classes} classes; emulate needs a '
                         'link-status model (n_classes 1)')
    threshold = float(getattr(model, 'decision_threshold', DEFAULT_DECISION_THRESHOLD))
    bags = {b.name: b for b in scenario_dirs(args.data)}
    wanted, truths = emu.bags_and_truths(args.data, args.bags, list(bags))
    options = {name: _options(args, truths[name], 0.0, threshold) for name in wanted}
    timelines = {name: emu.timeline_from_truth(truths[name], home_rsu=options[name].home_rsu)
                 for name in wanted}
    n_rsus = {len(tl.rsus) for tl in timelines.values()}
    if len(n_rsus) > 1 or (args.rsus is not None and n_rsus != {args.rsus}):
        raise UserInputError(f'{args.data}: the sidecars have {sorted(n_rsus)} RSUs'
                         + (f', --rsus says {args.rsus}' if args.rsus is not None else
                            '; emulate one kind of data at a time'))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    raw = {name: emu.predict_bag(bags[name], model, emu.topic_maps_of(truths[name]),
                                 device=device, progress=not args.no_progress)
           for name in wanted}
    measured_ms = [ms for r in raw.values() for v in r.values() for ms in v['inference_ms']]
    latency_ms = (float(args.latency_ms) if args.latency_ms is not None
                  else float(np.median(measured_ms)) if measured_ms else 0.0)
    options = {name: o.with_latency(latency_ms) for name, o in options.items()}
    presets = sorted({o.preset for o in options.values()})
    print(f"emulating {len(wanted)} scenarios of {', '.join(map(str, sorted(n_rsus)))} RSUs, "
          f"preset {'/'.join(presets)}, decision latency {latency_ms:.1f} ms")
    table, proactive_table, scenarios = [], [], {}
    for name in wanted:
        tl = timelines[name]
        preds = emu.FramePredictions.from_windows(
            tl, {r: v['windows'] for r, v in raw[name].items()})
        result = emu.emulate(tl, options[name], preds=preds)
        doc = report.summary(result)
        doc['predictions'] = emu.prediction_scores(tl, preds, threshold)
        doc['windows'] = {r: [[int(s), round(float(p), 5)] for s, p in v['windows']]
                          for r, v in raw[name].items()}
        scenarios[name] = doc
        table += report.rows(name, result.metrics, {'proactive': result.check})
        proactive_table.append(report.proactive_row(name, result.metrics, result.check))
        report.write_csv(out / f'fig5_{name}.csv', tl, result.results)
        report.plot(out / f'fig5_{name}.png', tl, result.results, records=result.records,
                    title=f"{name} ({tl.extra.get('kind') or ''}), {len(tl.rsus)} RSUs")
    h = next(iter(options.values())).decision.hysteresis if options else None
    doc = {'model': str(args.model), 'data': str(args.data), 'n_rsus': min(n_rsus, default=0),
           'presets': presets, 'latency_ms': latency_ms,
           'latency_source': 'given' if args.latency_ms is not None
           else f'median streaming inference per window here, torch threads '
                f'{torch.get_num_threads()}',
           'decision_threshold': threshold,
           'hysteresis': None if h is None else {
               'p_on': h.p_on, 'p_off': h.p_off, 'on_windows': h.on_windows,
               'off_windows': h.off_windows, 'min_dwell_ms': h.min_dwell_ns / NS_PER_MS,
               'floor_windows': h.floor_windows, 'clear_windows': h.clear_windows,
               'neighbour_stale_ms': h.neighbour_stale_ns / NS_PER_MS},
           'never_worse_tolerance': {'mean_rssi_db': emu.NEVER_WORSE_RSSI_TOL_DB,
                                     'time_below_s': emu.NEVER_WORSE_TIME_TOL_S},
           **totals(scenarios, emu.POLICIES),
           'proactive_metrics': emu.proactive_totals(scenarios, latency_ms),
           'topic_maps': {r: v['topic_map'] for r, v in next(iter(raw.values())).items()}
           if raw else {},
           'scenarios': scenarios}
    (out / 'summary.json').write_text(json.dumps(doc, indent=1) + '\n')
    md = report.markdown(table)
    pmd = report.proactive_markdown(proactive_table, doc['proactive_metrics'],
                                    link='fig5_{}.png')
    window_s = doc['proactive_metrics']['spurious_window_s']
    (out / 'summary.md').write_text(
        f'# mmtok emulate: `{args.model}` on `{args.data}`\n\n'
        f"preset {'/'.join(presets)}, decision latency {latency_ms:.1f} ms; never worse than "
        f'reactive: no more time below S_th, mean served RSSI at most '
        f'{emu.NEVER_WORSE_RSSI_TOL_DB} dB lower\n\n{md}\n'
        '## Proactive metrics\n\n'
        f'In time: left before the onset with a lead of at least the decision latency '
        f'({latency_ms:.1f} ms). A proactive handover is one made on a predicted blockage '
        f'(not the reactive floor, not a hand-back); spurious when the link it left has no '
        f'blockage under way or starting within {emu.SPURIOUS_WINDOW_FRAMES} frames'
        + ('' if window_s is None else f' ({window_s:.1f} s)')
        + ' after it; per hour of clear link (served at or above S_th).\n\n' + pmd)
    print(md)
    print(f"proactive before the blockage in {doc['proactive_before_blockage']}/"
          f"{doc['blocked_scenarios']} blocked scenarios, served RSSI above reactive in "
          f"{doc['proactive_above_reactive']}/{doc['blocked_scenarios']}; never worse than "
          f"reactive in {doc['never_worse_passed']}/{doc['scenarios_checked']}; "
          f"{doc['false_alarm_handovers_in_clear_scenarios']} handovers in "
          f"{len(wanted) - doc['blocked_scenarios']} clear scenarios "
          f'(latency {latency_ms:.1f} ms)')
    print()
    print(report.proactive_markdown(proactive_table, doc['proactive_metrics']))
    print(f'wrote {out}/summary.json, summary.md and fig5_*.png')
    return 0
