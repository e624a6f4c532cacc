"""mmtok calibrate: choose the decision threshold a model file carries, for onsets, on held-out
bags, and write a copy of the file that carries it.

``mmtok train`` writes the threshold that classifies the *training* windows best. For a model
that is unsure about onsets that threshold means "blocked next iff blocked now" (persistence:
no handover ahead of time). A proactive user wants the opposite criterion: as many onsets
announced ahead as possible at a false-alarm rate they can live with. This command scores the
model on bags nobody trained on (a calibration set: use scenarios of the training
*distribution* with another seed, never the test set you will report) and takes the lowest
threshold whose false alarms (the ``proactive`` definition of ``mmtok evaluate``) stay within
``--max-false-alarms-per-min`` per minute of clear link. The node reads the threshold from the
file (``blocked_threshold`` and, by default, ``hysteresis.p_on`` follow it).
"""
from __future__ import annotations

import math
from pathlib import Path

from ..errors import UserInputError

HELP = ('Choose a model file\'s decision threshold on held-out bags (onset recall at a '
        'false-alarm budget) and write a copy of the file carrying it.')


def add_arguments(p) -> None:
    p.add_argument('--model', required=True, help='model file (.pt) to calibrate')
    p.add_argument('--data', required=True,
                   help='directory of bags nobody trained on (not the test set)')
    p.add_argument('--out', required=True, help='model file to write (a copy, new threshold)')
    p.add_argument('--max-false-alarms-per-min', type=float, default=1.0,
                   help='false-alarm budget per minute of clear link (default %(default)s)')
    p.add_argument('--device', default='auto')
    p.add_argument('--no-progress', action='store_true')


def run(args) -> int:
    from ..devices import resolve_device
    from ..model.checkpoint import load_model, save_model
    from ..train.build import dataset_from_bags
    from ..train.evaluation import evaluate
    if not args.max_false_alarms_per_min >= 0:
        raise UserInputError(f'--max-false-alarms-per-min must be >= 0, got '
                             f'{args.max_false_alarms_per_min}')
    if Path(args.out).resolve() == Path(args.model).resolve():
        raise UserInputError('--out must not be the model file itself (write a copy)')
    model, meta = load_model(args.model, device=resolve_device(args.device)[0])
    if model.cfg.n_classes != 1:
        raise UserInputError(f'{args.model} is not a link-status model')
    data, names = dataset_from_bags(args.data, model.cfg, progress=not args.no_progress)
    horizon = int(meta.get('label_horizon_frames', 1))
    result = evaluate(model, data, threshold=model.decision_threshold, horizon=horizon,
                      max_false_alarms_per_min=args.max_false_alarms_per_min)
    chosen = result['at_fixed_false_alarm_rate']
    if not math.isfinite(chosen['threshold']):
        raise UserInputError(f'no threshold keeps the false alarms on {args.data} within '
                             f'{args.max_false_alarms_per_min:g} per minute')
    previous = model.decision_threshold
    meta['decision_threshold'] = chosen['threshold']
    meta['calibration'] = {
        'criterion': f"lowest threshold with <= {args.max_false_alarms_per_min:g} false alarms "
                     'per minute of clear link (proactive definition) on held-out bags',
        'data': Path(args.data).name, 'bags': names, 'n_windows': int(result['n']),
        'onsets': int(result['onsets']), 'clear_minutes': float(result['clear_minutes']),
        'false_alarms_per_min': chosen['false_alarms_per_min'],
        'onset_recall': chosen['onset_recall'], 'previous_threshold': previous,
        'label_horizon_frames': horizon}
    save_model(args.out, model, meta=meta)
    print(f"threshold {previous:.2f} -> {chosen['threshold']:.2f}: on {len(names)} bags "
          f"({result['n']} windows, {result['onsets']} onsets, {result['clear_minutes']:.1f} "
          f"min of clear link) onset recall 1 frame ahead {chosen['onset_recall']:.2f} at "
          f"{chosen['false_alarms_per_min']:.2f} false alarms/min; wrote {args.out}")
    return 0
