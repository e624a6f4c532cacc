"""``mmtok soak``: N RSU nodes on a looped road bag for a chosen time; table, JSON and PNG.

The run is ``ros/soak.py``'s, the report (targets, tables) ``reports/soak.py``'s, the PNG
``reports/soak_plot.py``'s.
Exit status 0 when every target passes, 1 when one fails (docs/soak.md).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import UserInputError

HELP = ('run N RSU nodes on a looped road bag for a long time: RSS, latency per minute, '
        'windows, crashes (soak test)')


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--rsus', type=int, default=3, help='RSUs (>= 3: a road), one rsu_node each')
    p.add_argument('--rate', type=float, default=1.0, help='replay speed (1.0: real time)')
    p.add_argument('--minutes', type=float, default=30.0,
                   help='replay time in minutes, warm-up included (default 30)')
    p.add_argument('--warmup-minutes', type=float, default=2.0,
                   help='first minutes not measured for RSS growth and latency drift (default 2)')
    p.add_argument('--out', default='results/soak',
                   help='directory for soak.json, soak.png, logs/ and the road bag')
    p.add_argument('--device', default='cpu', help='cpu (default), cuda or cuda:N')
    p.add_argument('--model', default='', help='model file (default: the shipped model)')
    p.add_argument('--bag', default='',
                   help='road bag of --rsus RSUs to loop (default: simulate one scenario)')
    p.add_argument('--frames', type=int, default=60,
                   help='frames of the simulated road scenario (default 60: 18 s per loop)')
    p.add_argument('--seed', type=int, default=11, help='seed of the simulated road')
    p.add_argument('--restart', action='store_true',
                   help='restart a node that exits during the soak (each exit still a crash)')
    p.add_argument('--threads', type=int, default=1, help='torch threads per node (default 1)')
    p.add_argument('--sample-s', type=float, default=2.0,
                   help='RSS and counter sampling period in seconds (default 2)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    from ..reports.soak import format_report, summarize
    from ..reports.soak_plot import plot_report
    from ..ros.soak import SoakConfig, run_soak
    if args.rsus < 3:
        raise UserInputError(f'--rsus {args.rsus}: a road needs 3 or more RSUs')
    if not 0.01 <= args.rate <= 100.0:
        raise UserInputError(f'--rate {args.rate}: bag_replay plays at 0.01x to 100x')
    if args.minutes <= 0 or not 0 <= args.warmup_minutes < args.minutes:
        raise UserInputError(f'need --minutes > --warmup-minutes >= 0; got {args.minutes} and '
                             f'{args.warmup_minutes}')
    if args.model and not Path(args.model).is_file():
        raise UserInputError(f'--model {args.model}: no such file')
    if args.frames < 10:
        raise UserInputError(f'--frames {args.frames}: need at least 10 (one window and more)')
    cfg = SoakConfig(rsus=args.rsus, rate=args.rate, minutes=args.minutes,
                     warmup_minutes=args.warmup_minutes, device=args.device,
                     model=str(Path(args.model).resolve()) if args.model else '',
                     bag=args.bag, frames=args.frames, seed=args.seed, restart=args.restart,
                     torch_threads=args.threads, sample_s=args.sample_s)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(run_soak(cfg, out, progress=not args.no_progress))
    (out / 'soak.json').write_text(json.dumps(summary, indent=1) + '\n')
    plot_report(summary, out / 'soak.png')
    print(format_report(summary))
    print(f"wrote {out / 'soak.json'}, {out / 'soak.png'} (wall {summary['wall_s']:.0f} s)")
    return 0 if summary['passed'] else 1
