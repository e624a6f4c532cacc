"""mmtok train: train a model on simulated or recorded bags and save it with its config."""
from __future__ import annotations

import json

from ..constants import DEFAULT_DECISION_THRESHOLD
from ..errors import UserInputError
from ..model.config import METHODS, PRESETS, RSSI_TOKEN_MODES, ModelConfig
from ..train.config import add_cli_options, from_cli

HELP = 'Train a model on the bags in a directory (Eq. 19 loss), optionally holding scenarios out.'

_MODEL_DEFAULTS = ModelConfig()


def add_train_options(p) -> None:
    """Options shared by train and report: the data, the preset, the model options beyond the
    paper, and every option of ``TrainConfig`` (defaults from the dataclass)."""
    p.add_argument('--data', required=True, help='directory of rosbag2 bags (mmtok simulate --out)')
    p.add_argument('--preset', default='rsu-cpu', choices=sorted(PRESETS))
    p.add_argument('--horizon', type=int, default=1,
                   help='label: blocked within the next H frames (1: the next frame, Eq. 8 and '
                        'the paper; the node publishes p for the label its model was trained on)')
    p.add_argument('--rssi-tokens', choices=RSSI_TOKEN_MODES, default=_MODEL_DEFAULTS.rssi_tokens,
                   help="how the RSSI tokens reach the decision: 'routed' (the paper: like any "
                        "token), 'kept' (always processed, as CLS is), 'kept+head' (kept, and "
                        f'the head reads them beside CLS); default {_MODEL_DEFAULTS.rssi_tokens}')
    p.add_argument('--keep-ratio-bracket', type=int, default=_MODEL_DEFAULTS.keep_ratio_bracket,
                   metavar='DELTA',
                   help='Eq. 18 bracket half-width: the two training passes run at '
                        'floor(N r) - DELTA + 1 and floor(N r) + DELTA tokens (1: the paper; '
                        f'default {_MODEL_DEFAULTS.keep_ratio_bracket})')
    add_cli_options(p)
    p.add_argument('--threads', type=int, default=None,
                   help='torch CPU threads (default: torch\'s own choice, the core count)')
    p.add_argument('--device', default='auto')
    p.add_argument('--no-progress', action='store_true')


def model_options(args) -> dict:
    """The ``ModelConfig`` fields set by ``add_train_options``."""
    return {'rssi_tokens': args.rssi_tokens, 'keep_ratio_bracket': args.keep_ratio_bracket}


def train_config(args, seed: int = 0):
    import torch
    if args.threads is not None:
        if args.threads < 1:
            raise UserInputError(f'--threads must be >= 1, got {args.threads}')
        torch.set_num_threads(args.threads)
    return from_cli(args, seed=seed, device=args.device)


def add_arguments(p) -> None:
    add_train_options(p)
    p.add_argument('--method', default='routed', choices=METHODS)
    p.add_argument('--gamma', type=float, default=None,
                   help="target keep ratio gamma' (default: the preset's, 0.4 for rsu-cpu)")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--holdout', default='', help='comma-separated bag names kept out of training '
                                                 'and used to report held-out accuracy')
    p.add_argument('--init', default='', help='go on training this model file (its config is '
                                              'used; --preset/--method/--gamma are ignored)')
    p.add_argument('--out', required=True, help='model file to write (.pt)')
    p.add_argument('--metrics', choices=('proactive', 'legacy'), default='proactive',
                   help='false-alarm definition of the held-out scores (docs/model.md)')


def training_summary(s: dict) -> str:
    """One line: the model on its training windows beside persistence and always-clear."""
    return (f"training windows ({s['n_windows']} of {s['of_windows']}, weighted): accuracy "
            f"{s['accuracy']:.4f} at threshold {s['threshold']:.2f} "
            f"({s['accuracy_at_default_threshold']:.4f} at {DEFAULT_DECISION_THRESHOLD:g}); "
            f"persistence {s['persistence_accuracy']:.4f}, always clear "
            f"{s['always_clear_accuracy']:.4f}")


def run(args) -> int:
    import numpy as np

    from ..devices import resolve_device
    from ..model import preset
    from ..model.checkpoint import load_model, save_model
    from ..train import distributed
    from ..train.build import dataset_from_bags
    from ..train.trainer import train_model
    from ..train.evaluation import evaluate
    # under torchrun: join the process group now, so that rank 0 builds the dataset cache
    # alone; only rank 0 prints, evaluates and writes the model file (docs/distributed.md)
    distributed.setup(resolve_device(args.device)[0])
    main = distributed.is_main()
    init, init_meta = load_model(args.init, device='cpu') if args.init else (None, {})
    cfg = init.cfg if init is not None else preset(args.preset, method=args.method,
                                                   **model_options(args),
                                                   **({} if args.gamma is None else
                                                      {'target_keep_ratio': args.gamma}))
    if init is not None and main:
        print(f"going on from {args.init} ({cfg.preset}/{cfg.method} gamma'={cfg.target_keep_ratio})")
    with distributed.main_first():
        data, names = dataset_from_bags(args.data, cfg, progress=not args.no_progress and main)
    holdout = [h for h in args.holdout.split(',') if h]
    unknown = sorted(set(holdout) - set(names))
    if unknown:
        raise UserInputError(f'--holdout names {unknown} are not bags in {args.data}; have {names}')
    held = np.isin(data.groups, [names.index(h) for h in holdout])
    if args.horizon < 1:
        raise UserInputError(f'--horizon must be >= 1 frame, got {args.horizon}')
    train_data = data.subset(np.flatnonzero(~held)).with_horizon(args.horizon)
    model, history = train_model(cfg, train_data,
                                 train_config(args, args.seed), progress=not args.no_progress,
                                 init=init)
    if not main:
        return 0
    meta = {'train_bags': [n for n in names if n not in holdout], 'holdout_bags': holdout,
            'history': history, 'keep_ratios': model.keep_ratios().tolist(),
            'label_horizon_frames': args.horizon}
    threshold = DEFAULT_DECISION_THRESHOLD
    if 'decision_threshold' in history:   # chosen on the training windows, read by the node
        threshold = history['decision_threshold']['value']
        meta['decision_threshold'] = threshold
    if 'train_windows' in history:
        print(training_summary(history['train_windows']))
    if init is not None:  # the model's whole training record, oldest first
        meta['init'] = {'model': str(args.init), **{k: init_meta.get(k) for k in
                        ('train_bags', 'holdout_bags', 'history', 'holdout', 'init')}}
    if held.any():
        meta['holdout'] = evaluate(model, data.subset(np.flatnonzero(held)), threshold=threshold,
                                   horizon=args.horizon, metrics=args.metrics)
        held_out = meta['holdout']
        print(f"held-out accuracy: {held_out['accuracy']:.4f} on {held_out['n']} windows "
              f"(persistence {held_out['baselines']['persistence']['accuracy']:.4f})")
    path = save_model(args.out, model, meta=meta)
    print(f"trained {cfg.preset}/{cfg.method} gamma'={cfg.target_keep_ratio} in "
          f"{history['seconds']:.0f} s; keep ratios {[round(r, 3) for r in meta['keep_ratios']]}")
    print(f'wrote {path}')
    print(json.dumps({'model': str(path), **meta.get('holdout', {})}))
    return 0
