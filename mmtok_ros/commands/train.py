"""mmtok train: train a model on simulated or recorded bags and save it with its config."""
from __future__ import annotations

import json

from ..model.config import METHODS, PRESETS

HELP = 'Train a model on the bags in a directory (Eq. 19 loss), optionally holding scenarios out.'


def add_train_options(p) -> None:
    """Options shared by train, crossval and report."""
    p.add_argument('--data', required=True, help='directory of rosbag2 bags (mmtok simulate --out)')
    p.add_argument('--preset', default='rsu-cpu', choices=sorted(PRESETS))
    p.add_argument('--epochs', type=int, default=20)
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--lr', type=float, default=1e-4)
    p.add_argument('--weight-decay', type=float, default=0.01)
    p.add_argument('--coupled-weight-decay', action='store_true',
                   help='the old optimiser: Adam with L2 on every parameter (default: AdamW, '
                        'decay on linear/conv weight matrices only)')
    p.add_argument('--horizon', type=int, default=1,
                   help='label: blocked within the next H frames (1: the next frame, Eq. 8 and '
                        'the paper; the node publishes p for the label its model was trained on)')
    p.add_argument('--no-class-weight', action='store_true',
                   help="plain BCE (default: the blocked class weighted by the epoch's "
                        'negatives/positives)')
    p.add_argument('--threshold-windows', type=int, default=1024,
                   help='training windows used to choose the decision threshold written into '
                        'the model file (0: keep 0.5)')
    p.add_argument('--keep-ratio-lr', type=float, default=2e-3,
                   help="learning rate of the keep ratios r_l (their own group, no weight decay; "
                        "beyond the paper, which uses --lr for them too)")
    p.add_argument('--steady-fraction', type=float, default=1.0,
                   help='per epoch, keep every window near a blockage onset/end and only this '
                        'fraction of the steady ones (1: all windows, the paper protocol)')
    p.add_argument('--modality-dropout', type=float, default=0.0,
                   help='probability that a frame\'s modality is marked absent in training')
    p.add_argument('--eq18-down-pass', choices=('grad', 'no-grad'), default='grad',
                   help="Eq. 18's K_down pass with autograd (grad, the paper) or without "
                        '(no-grad: same output and dL/dr_l, about a third faster per routed step)')
    p.add_argument('--threads', type=int, default=None,
                   help='torch CPU threads (default: torch\'s own choice, the core count)')
    p.add_argument('--device', default='auto')
    p.add_argument('--no-progress', action='store_true')


def train_config(args, seed: int = 0):
    import torch

    from ..train.trainer import TrainConfig
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f'--threads must be >= 1, got {args.threads}')
        torch.set_num_threads(args.threads)
    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       weight_decay=args.weight_decay, keep_ratio_lr=args.keep_ratio_lr,
                       decay_norms_and_biases=args.coupled_weight_decay,
                       balance_classes=not args.no_class_weight,
                       threshold_windows=args.threshold_windows,
                       down_pass_grad=args.eq18_down_pass == 'grad',
                       seed=seed, device=args.device,
                       steady_fraction=args.steady_fraction,
                       modality_dropout=args.modality_dropout)


def add_arguments(p) -> None:
    add_train_options(p)
    p.add_argument('--method', default='routed', choices=METHODS)
    p.add_argument('--gamma', type=float, default=0.4, help="target keep ratio gamma'")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--holdout', default='', help='comma-separated bag names kept out of training '
                                                 'and used to report held-out accuracy')
    p.add_argument('--init', default='', help='go on training this model file (its config is '
                                              'used; --preset/--method/--gamma are ignored)')
    p.add_argument('--out', required=True, help='model file to write (.pt)')


def run(args) -> int:
    import numpy as np

    from ..devices import resolve_device
    from ..model import preset
    from ..model.checkpoint import load_model, save_model
    from ..train import distributed
    from ..train.build import dataset_from_bags
    from ..train.trainer import evaluate, train_model
    # under torchrun: join the process group now, so that rank 0 builds the dataset cache
    # alone; only rank 0 prints, evaluates and writes the model file (docs/distributed.md)
    distributed.setup(resolve_device(args.device)[0])
    main = distributed.is_main()
    init, init_meta = load_model(args.init, device='cpu') if args.init else (None, {})
    cfg = init.cfg if init is not None else preset(args.preset, method=args.method,
                                                   target_keep_ratio=args.gamma)
    if init is not None and main:
        print(f"going on from {args.init} ({cfg.preset}/{cfg.method} gamma'={cfg.target_keep_ratio})")
    with distributed.main_first():
        data, names = dataset_from_bags(args.data, cfg, progress=not args.no_progress and main)
    holdout = [h for h in args.holdout.split(',') if h]
    unknown = sorted(set(holdout) - set(names))
    if unknown:
        raise ValueError(f'--holdout names {unknown} are not bags in {args.data}; have {names}')
    held = np.isin(data.groups, [names.index(h) for h in holdout])
    if args.horizon < 1:
        raise ValueError(f'--horizon must be >= 1 frame, got {args.horizon}')
    train_data = data.subset(np.flatnonzero(~held)).with_horizon(args.horizon)
    model, history = train_model(cfg, train_data,
                                 train_config(args, args.seed), progress=not args.no_progress,
                                 init=init)
    if not main:
        return 0
    meta = {'train_bags': [n for n in names if n not in holdout], 'holdout_bags': holdout,
            'history': history, 'keep_ratios': model.keep_ratios().tolist(),
            'label_horizon_frames': args.horizon}
    threshold = 0.5
    if 'decision_threshold' in history:   # chosen on the training windows, read by the node
        threshold = history['decision_threshold']['value']
        meta['decision_threshold'] = threshold
        print(f"decision threshold {threshold:.2f} (training-window accuracy "
              f"{history['decision_threshold']['train_accuracy']:.4f}; at 0.5: "
              f"{history['decision_threshold']['train_accuracy_at_0.5']:.4f})")
    if init is not None:  # the model's whole training record, oldest first
        meta['init'] = {'model': str(args.init), **{k: init_meta.get(k) for k in
                        ('train_bags', 'holdout_bags', 'history', 'holdout', 'init')}}
    if held.any():
        meta['holdout'] = evaluate(model, data.subset(np.flatnonzero(held)), threshold=threshold,
                                   horizon=args.horizon)
        print(f"held-out accuracy: {meta['holdout']['accuracy']:.4f} on {meta['holdout']['n']} windows")
    path = save_model(args.out, model, meta=meta)
    print(f"trained {cfg.preset}/{cfg.method} gamma'={cfg.target_keep_ratio} in "
          f"{history['seconds']:.0f} s; keep ratios {[round(r, 3) for r in meta['keep_ratios']]}")
    print(f'wrote {path}')
    print(json.dumps({'model': str(path), **meta.get('holdout', {})}))
    return 0
