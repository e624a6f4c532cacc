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
    parser.add_argument('--kinds', default='default', choices=('default', 'new', 'all', 'random'),
                        help='scenario kinds: the ten of the testbed (default), eight kinds '
                             'never in it (new: other vehicles, speeds, lanes, directions, two '
                             'blockers), all 18 in turn, or random: every scenario a fresh draw '
                             'of blocker sizes, colours, shapes, speeds and lanes and of camera '
                             'exposure (domain randomisation, for training; docs/testbed.md)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    parser.add_argument('--rsus', type=int, default=2,
                        help='RSUs: 2 is the testbed; N >= 3 puts N RSUs along a road, each '
                             'with its own camera, LiDAR and RSSI topic')


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ['  '.join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def _error(message: str) -> int:
    print(f'mmtok simulate: error: {message}', file=sys.stderr)
    return 2


def _testbed(args: argparse.Namespace) -> str:
    from ..sim import simulate

    infos = simulate(args.out, n_scenarios=10 if args.scenarios is None else args.scenarios,
                     seed=args.seed, frames_per_scenario=args.frames,
                     drop_modality=args.drop_modality, progress=not args.no_progress,
                     kind_set=args.kinds)
    rows = [('scenario', 'kind', 'frames', 'blocked', 'first blockage [s]', 'bag [MB]')]
    for i in infos:
        first = '-' if i.first_blockage_s is None else f'{i.first_blockage_s:.1f}'
        rows.append((i.name, i.kind, str(i.n_frames), str(i.n_blocked_frames), first,
                     f'{i.bag_bytes / 1e6:.1f}'))
    n_blocked = sum(i.n_blocked_frames for i in infos)
    n_frames = sum(i.n_frames for i in infos)
    return (f'{_table(rows)}\n{len(infos)} scenarios, {n_frames} frames ({n_blocked} blocked)')


def _road(args: argparse.Namespace) -> str:
    from ..sim.road import DEFAULT_ROAD_FRAMES, simulate_road

    infos = simulate_road(args.out, n_rsus=args.rsus,
                          n_scenarios=4 if args.scenarios is None else args.scenarios,
                          seed=args.seed, frames_per_scenario=args.frames,
                          progress=not args.no_progress)
    rows = [('scenario', 'kind', 'frames', 'blocked frames per link', 'bag [MB]')]
    for i in infos:
        blocked = ' '.join(f'{r}:{n}' for r, n in i.link_blocked_frames.items())
        rows.append((i.name, i.kind, str(i.n_frames), blocked, f'{i.bag_bytes / 1e6:.1f}'))
    frames = args.frames or DEFAULT_ROAD_FRAMES
    return f'{_table(rows)}\n{len(infos)} road scenarios x {args.rsus} RSUs x {frames} frames'


def run(args: argparse.Namespace) -> int:
    """The testbed (``--rsus 2``) or a road of N >= 3 RSUs; the table, then one summary line."""
    from ..sim.road import MIN_RSUS

    if args.rsus != 2 and args.rsus < MIN_RSUS:
        return _error(f'--rsus {args.rsus}: 2 is the testbed, a road needs {MIN_RSUS} or more')
    if args.rsus != 2 and args.drop_modality:
        return _error('--drop-modality is a testbed option (without --rsus)')
    tic = time.perf_counter()
    try:
        summary = _testbed(args) if args.rsus == 2 else _road(args)
    except FileExistsError as err:
        return _error(str(err))
    print(f'{summary} in {time.perf_counter() - tic:.1f} s -> {args.out}/index.json')
    return 0
