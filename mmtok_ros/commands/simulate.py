"""``mmtok simulate``: write the simulated 60 GHz handover testbed recordings (rosbag2 bags)."""
from __future__ import annotations

import argparse
import sys
import time

HELP = 'simulate the two-RSU 60 GHz handover testbed: rosbag2 (MCAP) bags + ground truth'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', required=True,
                        help='output directory (scenario bags go inside)')
    parser.add_argument('--scenarios', type=int, default=None,
                        help='number of scenarios (scenario i has kind i %% 10; default 10, '
                             'with --rsus N >= 3: 4)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (same seed, same bytes)')
    parser.add_argument('--frames', type=int, default=None,
                        help='frames per scenario at 300 ms (default 85: ~800 windows in total)')
    parser.add_argument('--drop-modality', default=None, metavar='MODALITY[:P]',
                        help="extra message drops for one modality, e.g. 'image:0.2' "
                             "(image, lidar or rssi)")
    parser.add_argument('--kinds', default='default', choices=('default', 'new', 'all'),
                        help='scenario kinds: the ten of the testbed (default), eight kinds '
                             'never in it (new: other vehicles, speeds, lanes, directions, two '
                             'blockers) or all 18 in turn')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    parser.add_argument('--rsus', type=int, default=2,
                        help='RSUs: 2 is the testbed; N >= 3 puts N RSUs along a road, each '
                             'with its own camera, LiDAR and RSSI topic')


def _table(infos) -> str:
    rows = [('scenario', 'kind', 'frames', 'blocked', 'first blockage [s]', 'bag [MB]')]
    for i in infos:
        first = '-' if i.first_blockage_s is None else f'{i.first_blockage_s:.1f}'
        rows.append((i.name, i.kind, str(i.n_frames), str(i.n_blocked_frames), first,
                     f'{i.bag_bytes / 1e6:.1f}'))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ['  '.join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def run(args: argparse.Namespace) -> int:
    from ..sim import simulate

    if args.rsus != 2:
        from ._road import run_simulate
        return run_simulate(args)
    tic = time.perf_counter()
    try:
        n_scenarios = 10 if args.scenarios is None else args.scenarios
        infos = simulate(args.out, n_scenarios=n_scenarios, seed=args.seed,
                         frames_per_scenario=args.frames, drop_modality=args.drop_modality,
                         progress=not args.no_progress, kind_set=args.kinds)
    except FileExistsError as err:
        print(f'mmtok simulate: error: {err}', file=sys.stderr)
        return 2
    print(_table(infos))
    n_blocked = sum(i.n_blocked_frames for i in infos)
    n_frames = sum(i.n_frames for i in infos)
    print(f'{len(infos)} scenarios, {n_frames} frames ({n_blocked} blocked) in '
          f'{time.perf_counter() - tic:.1f} s -> {args.out}/index.json')
    return 0
