"""``mmtok simulate --rsus N``: N >= 3 RSUs along a road.

Not a subcommand of its own (the leading underscore): ``simulate`` calls in here when
``--rsus`` is given. ``mmtok emulate`` reads any N itself.
"""
from __future__ import annotations

import argparse
import sys
import time


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
