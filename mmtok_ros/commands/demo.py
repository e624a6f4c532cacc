"""``mmtok demo``: simulated testbed bags -> real node processes -> Fig. 5-style results.

Steps: (1) simulate a few scenarios (reused when present), (2) pick the models: the shipped
ones, else quick small models trained here (said so in the output), (3) for every blocked
scenario and each model (proposed routed, then mha) start rsu_node and handover_emulator as
separate processes and play the bag with bag_replay at 1x (DDS on localhost, a private
domain id), (4) combine the emulations: a PNG and CSV per blocked scenario with both models'
proactive handover, the reactive baseline and the oracle, ``summary.json`` and a Markdown
table in ``--out``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..constants import NS_PER_S
from ..errors import UserInputError

HELP = 'end-to-end demo: simulate, replay through the real ROS 2 nodes, emulate handover'

QUICK = dict(image_hw=(32, 32), bev_hw=(32, 32), d_model=32, n_heads=4, n_layers=2,
             cnn_widths=(8, 8), router_hidden=16)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', default='results', help='results directory')
    parser.add_argument('--data', default='results/demo_data',
                        help='bag directory (simulated here when it has no index.json)')
    parser.add_argument('--scenarios', type=int, default=4,
                        help='scenarios to simulate (0, 2, 4, 6... have a blockage)')
    parser.add_argument('--frames', type=int, default=60, help='frames per scenario (300 ms)')
    # seed 1: scenes the shipped model never saw (it was trained on seed 0's scenarios)
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--model', default='', help='proposed (routed) model file '
                        '(default: the shipped models/handover_rsu_cpu_g40.pt)')
    parser.add_argument('--mha-model', default='', help='mha model file (default: '
                        'models/handover_rsu_cpu_mha.pt)')
    parser.add_argument('--epochs', type=int, default=10,
                        help='epochs of the quick models trained when none is shipped')
    parser.add_argument('--rate', type=float, default=1.0, help='replay speed')
    parser.add_argument('--road-rsus', type=int, default=3,
                        help='also emulate N RSUs along a road offline (0: skip)')
    parser.add_argument('--road-scenarios', type=int, default=2,
                        help='road scenarios to simulate')
    parser.add_argument('--road-frames', type=int, default=40,
                        help='frames per road scenario')


def _road_emulation(args, model: Path, out: Path, *, latency_ms: float) -> dict:
    """N RSUs along a road, offline: every RSU's model through its own window stream, the
    serving RSU's decision against reactive and oracle (``mmtok emulate`` on road data),
    with the decision latency measured in the live run above."""
    from . import emulate, simulate
    data = Path(args.data).with_name(Path(args.data).name + f'_road{args.road_rsus}')
    if (data / 'index.json').is_file():
        print(f'[demo] reusing the road bags in {data}')
    else:
        print(f'[demo] simulating {args.road_scenarios} road scenarios x {args.road_rsus} RSUs '
              f'x {args.road_frames} frames -> {data}', flush=True)
        parser = argparse.ArgumentParser()
        simulate.add_arguments(parser)
        if simulate.run(parser.parse_args(
                ['--out', str(data), '--rsus', str(args.road_rsus), '--scenarios',
                 str(args.road_scenarios), '--frames', str(args.road_frames), '--seed',
                 str(args.seed), '--no-progress'])) != 0:
            raise RuntimeError(f'road simulation into {data} failed')
    print(f'[demo] {args.road_rsus} RSUs along a road: emulating offline with {model}',
          flush=True)
    parser = argparse.ArgumentParser()
    emulate.add_arguments(parser)
    road_out = out / 'road'
    emulate.run(parser.parse_args(
        ['--model', str(model), '--data', str(data), '--out', str(road_out), '--latency-ms',
         f'{latency_ms:.1f}', '--rsus', str(args.road_rsus), '--no-progress']))
    doc = json.loads((road_out / 'summary.json').read_text())
    keep = ('mean_served_rssi_dbm', 'time_below_threshold_s', 'handovers')
    return {'n_rsus': doc['n_rsus'], 'latency_ms': doc['latency_ms'],
            'never_worse_passed': doc['never_worse_passed'],
            'scenarios_checked': doc['scenarios_checked'], 'results': str(road_out),
            'scenarios': {name: {p: {k: m[k] for k in keep} for p, m in sc['policies'].items()}
                          for name, sc in doc['scenarios'].items()}}


def _blocked(index: dict) -> list[dict]:
    return [s for s in index['scenarios'] if s['n_blocked_frames'] > 0]


def _simulate(data: Path, args) -> dict:
    if (data / 'index.json').is_file():
        print(f'[demo] reusing the bags in {data}')
    else:
        from ..sim.simulate import simulate
        print(f'[demo] simulating {args.scenarios} scenarios x {args.frames} frames -> {data}')
        simulate(data, n_scenarios=args.scenarios, seed=args.seed,
                 frames_per_scenario=args.frames, progress=False)
    return json.loads((data / 'index.json').read_text())


def _quick_model(method: str, data: Path, out: Path, epochs: int) -> Path:
    """A small model trained on the demo bags (cached): used only when none is shipped."""
    import torch

    from ..model import preset
    from ..model.checkpoint import save_model
    from ..train.build import dataset_from_bags
    from ..train.trainer import TrainConfig, train_model
    from ..train.evaluation import evaluate
    path = out / 'models' / f'quick_{method}.pt'
    if path.is_file():
        print(f'[demo] reusing quick {method} model {path}')
        return path
    torch.set_num_threads(2)
    cfg = preset('rsu-cpu', method=method, **QUICK)
    dataset, _ = dataset_from_bags(data, cfg, progress=False)
    tic = time.perf_counter()
    model, history = train_model(cfg, dataset, TrainConfig(epochs=epochs, lr=2e-3,
                                                           device='cpu'), progress=False)
    metrics = evaluate(model, dataset)
    save_model(path, model, meta={'note': 'quick demo model (mmtok demo), not the shipped one',
                                  'history': history, 'train_metrics': metrics})
    print(f'[demo] trained quick {method} model in {time.perf_counter() - tic:.0f} s '
          f'(train accuracy {metrics["accuracy"]:.3f}) -> {path}')
    return path


def _models(args, data: Path, out: Path) -> dict[str, Path]:
    from ..model.shipped import choose_model_file, shipped_model_path
    models = {}
    for label, explicit, method in (('proposed', args.model, 'routed'),
                                    ('mha', args.mha_model, 'mha')):
        path = choose_model_file(explicit, method)
        if path is not None:
            models[label] = path
            continue
        print(f'[demo] no trained {label} model at {shipped_model_path(method)}: training a '
              f'quick small {method} model on the demo bags ({args.epochs} epochs; 32x32 inputs, so its '
              'latency is not the rsu-cpu model\'s: see `mmtok bench --e2e` for that)')
        models[label] = _quick_model(method, data, out, args.epochs)
    return models


def _switches(doc: dict, t0_ns: int):
    """The proactive switches the handover emulator recorded from the node's triggers."""
    from ..runtime.emulation import Switch
    return [Switch(t0_ns + int(round(s['t_s'] * NS_PER_S)), s['rsu'])
            for s in doc['switches']['proactive']]


def run(args: argparse.Namespace) -> int:
    from ..reports import emulation as report
    from ..reports.e2e import format_table
    from ..ros.pipeline import run_pipeline
    from ..ros_env import local_dds_env
    from ..timing import percentile
    from ..runtime import emulation as emu

    tic = time.perf_counter()
    env = local_dds_env()     # this process and every node it starts: localhost, one domain
    print(f"[demo] DDS: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, "
          f"ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}")
    out, data = Path(args.out), Path(args.data)
    out.mkdir(parents=True, exist_ok=True)
    index = _simulate(data, args)
    blocked = _blocked(index)
    if len(blocked) < 2:
        raise UserInputError(f'{data} has {len(blocked)} blocked scenarios; the demo needs 2 '
                         '(use --scenarios 4 or more, or another --data)')
    models = _models(args, data, out)
    runs: dict[str, dict[str, dict]] = {}
    for scenario in blocked:
        name = scenario['name']
        for label, model in models.items():
            print(f'[demo] {name}: replaying through rsu_node ({label}: {model})', flush=True)
            emu_dir = out / 'emulation' / label / name
            row = run_pipeline(data / scenario['bag_path'], model, label=f'{name}_{label}',
                               log_dir=out / 'logs', rate=args.rate,
                               truth=data / scenario['truth_path'], emulate_out=emu_dir,
                               stem=name)
            row['emulation'] = json.loads((emu_dir / 'summary.json').read_text())
            runs.setdefault(name, {})[label] = row
    # combine: both models' proactive switches, reactive, oracle on the true RSSI
    summary = {'scenarios': {}, 'e2e': {}, 'models': {k: str(v) for k, v in models.items()}}
    table_rows = []
    checks = []
    for scenario in blocked:
        name = scenario['name']
        timeline = emu.timeline_from_truth(emu.load_truth(data / scenario['truth_path']))
        options = emu.EmulationOptions.testbed(home_rsu=timeline.home_rsu)
        policies = {f'proactive ({label})': _switches(runs[name][label]['emulation'],
                                                      timeline.t0_ns)
                    for label in models}
        policies.update(emu.baseline_switches(timeline, options))
        results = emu.evaluate(timeline, policies, options)
        report.write_csv(out / f'fig5_{name}.csv', timeline, results)
        report.plot(out / f'fig5_{name}.png', timeline, results,
                    title=f'{name} ({scenario["kind"]}): served RSSI')
        metrics = {p: r.metrics for p, r in results.items()}
        summary['scenarios'][name] = {'kind': scenario['kind'], 'policies': metrics,
                                      'blockage_intervals_ns':
                                          timeline.blockage_intervals_ns}
        check = {p: emu.never_worse_check(name, metrics, policy=p) for p in policies
                 if p.startswith('proactive')}
        checks.append(check['proactive (proposed)'])
        table_rows += report.rows(name, metrics, check)
    e2e_rows = []
    for label in models:
        lat = [float(s['latency_ms']) for name in runs for s in runs[name][label]['statuses']]
        rows = [runs[name][label] for name in runs]
        import numpy as np
        agg = {'label': label, 'method': rows[0]['method'],
               'windows_published': sum(r['windows_published'] for r in rows),
               'dropped_windows': sum(r['dropped_windows'] or 0 for r in rows),
               'latency_p50_ms': percentile(lat, 50), 'latency_p99_ms': percentile(lat, 99),
               'inference_p50_ms': float(np.median([r['inference_p50_ms'] for r in rows
                                                    if r['inference_p50_ms'] is not None])),
               'cpu_percent': float(np.mean([r['cpu_percent'] or 0 for r in rows])),
               'rss_peak_mb': max(r['rss_peak_mb'] or 0 for r in rows),
               'deadline_misses': sum(r['deadline_misses'] or 0 for r in rows)}
        e2e_rows.append(agg)
        summary['e2e'][label] = agg
    summary['checks'] = checks
    if args.road_rsus:
        summary['road'] = _road_emulation(args, models['proposed'], out,
                                          latency_ms=summary['e2e']['proposed']['latency_p50_ms'])
    summary['runtime_s'] = time.perf_counter() - tic
    (out / 'summary.json').write_text(json.dumps(summary, indent=1, default=str) + '\n')
    md = ['# mmtok demo results', '',
          f'Bags: `{data}`; models: ' + ', '.join(f'{k} `{v}`' for k, v in models.items()),
          '', report.markdown(table_rows), '',
          '## End to end (1x replay, real node processes)', '',
          '```', format_table(e2e_rows), '```', '']
    (out / 'summary.md').write_text('\n'.join(md))
    print()
    print(report.markdown(table_rows))
    print(format_table(e2e_rows))
    for c in checks:
        print(f"[demo] {c['scenario']}: proactive handed over before the blockage: "
              f"{'yes' if c['before_blockage'] else 'NO'}; served RSSI above "
              f"reactive: {'yes' if c['above_reactive'] else 'NO'}; never worse than "
              f"reactive: {'yes' if c['passed'] else 'NO'}")
    if 'road' in summary:
        road = summary['road']
        print(f"[demo] {road['n_rsus']} RSUs along a road (offline, {out}/road/): the proactive "
              f"policy never worse than reactive in {road['never_worse_passed']}/"
              f"{road['scenarios_checked']} scenarios")
    print(f'[demo] done in {summary["runtime_s"]:.0f} s: results in {out}/ (summary.json, '
          f'summary.md, fig5_*.png, fig5_*.csv; node logs in {out}/logs)')
    return 0
