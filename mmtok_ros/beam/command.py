"""``mmtok evaluate --task beam``: options and the run (kept here so ``commands/evaluate.py``
stays a thin switch between the handover and the beam task)."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from ..constants import GAMMA_SWEEP
from ..errors import UserInputError

SYNTHETIC = 'synthetic'
# option defaults; tables.TABLES spelled out so that building the CLI imports no torch
GAMMAS = ','.join(f'{g:g}' for g in GAMMA_SWEEP)
TABLES = 'II,III,IV,V'


def add_beam_arguments(p) -> None:
    g = p.add_argument_group('--task beam (Tables II-V; --data synthetic or a DeepSense '
                             'scenario folder / CSV)')
    g.add_argument('--preset', default='beam-mini', help='model preset (a beam preset)')
    g.add_argument('--scenes', type=int, default=70, help='synthetic scenes')
    g.add_argument('--frames-per-scene', type=int, default=36)
    g.add_argument('--test-fraction', type=float, default=0.3,
                   help='share of scenes (DeepSense: sequences) held out for testing')
    g.add_argument('--seed', type=int, default=0, help='scene seed (and training seed)')
    g.add_argument('--train-seed', type=int, default=None,
                   help='training seed when it should differ from --seed (seed studies)')
    g.add_argument('--epochs', type=int, default=8)
    g.add_argument('--batch-size', type=int, default=16)
    g.add_argument('--lr', type=float, default=1e-3)
    g.add_argument('--weight-decay', type=float, default=0.01)
    g.add_argument('--gammas', default=GAMMAS, help="routed gamma' values")
    g.add_argument('--tables', default=TABLES, help='which of II,III,IV,V to write')
    g.add_argument('--bench-reps', type=int, default=30)


def split_holdout(data, test_fraction: float):
    """(train, test): the last ``test_fraction`` of groups (scenes / sequences) held out; with
    a single group, the last windows in time (windows overlap, so never a random split)."""
    if not 0.0 < test_fraction < 1.0:
        raise UserInputError(f'--test-fraction must be in (0, 1), got {test_fraction}')
    groups = np.unique(data.groups)
    if len(groups) >= 2:
        n_test = min(len(groups) - 1, max(1, int(round(len(groups) * test_fraction))))
        test = np.isin(data.groups, groups[-n_test:])
    else:
        order = np.argsort(data.newest_stamp_ns, kind='stable')
        test = np.zeros(len(data), dtype=bool)
        test[order[int(len(data) * (1 - test_fraction)):]] = True
    return data.subset(np.flatnonzero(~test)), data.subset(np.flatnonzero(test))


def load_beam_data(args, cfg, out_dir: Path):
    """The windows ``--data`` names (synthetic scenes are cached under ``out_dir/data``)."""
    if args.data in (None, SYNTHETIC):
        from ..train.dataset import WindowDataset
        from .scenes import synthetic_dataset
        key = json.dumps([args.scenes, args.frames_per_scene, args.seed, cfg.to_dict()],
                         sort_keys=True)
        path = out_dir / 'data' / f'synthetic-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz'
        if path.is_file():
            data = WindowDataset.load(path)
        else:
            data = synthetic_dataset(cfg, n_scenes=args.scenes, frames_per_scene=args.frames_per_scene,
                                     seed=args.seed, progress=not args.no_progress)
            data.save(path)
        return data, (f'synthetic scenes (seed {args.seed}, {args.scenes} scenes x '
                      f'{args.frames_per_scene} frames)')
    from .deepsense import load_deepsense
    return load_deepsense(args.data, cfg), f'DeepSense 6G data at {args.data}'


def run_beam(args) -> int:
    from ..model import preset
    from ..train.trainer import TrainConfig
    from .tables import run_beam_tables
    out_dir = Path(args.out or 'results/beam')
    cfg = preset(args.preset)
    tic = time.perf_counter()
    data, note = load_beam_data(args, cfg, out_dir)
    train, test = split_holdout(data, args.test_fraction)
    data_s = time.perf_counter() - tic
    tc = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                     weight_decay=args.weight_decay,
                     seed=args.seed if args.train_seed is None else args.train_seed,
                     device='cpu' if args.device in (None, 'auto') else args.device)
    result = run_beam_tables(
        train, test, preset_name=args.preset, tc=tc, out_dir=out_dir, data_note=note,
        tables=tuple(t for t in args.tables.split(',') if t),
        gammas=tuple(float(g) for g in args.gammas.split(',') if g),
        bench_reps=args.bench_reps, progress=not args.no_progress)
    print((out_dir / 'tables.md').read_text())
    print(f'data in {data_s:.0f} s; wrote {out_dir}/tables.md, tables.json, '
          f'accuracy_vs_latency.png, keep_ratios.png')
    return 0 if result['rows'] else 1
