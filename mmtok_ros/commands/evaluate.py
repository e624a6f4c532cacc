"""mmtok evaluate: accuracy of a model file on the windows of a directory of bags
(``--task handover``, the default), or Tables II-V of the beam task (``--task beam``,
``mmtok_ros.beam``)."""
from __future__ import annotations

import json
from pathlib import Path

from ..constants import DEFAULT_DECISION_THRESHOLD
from ..errors import UserInputError

HELP = ('Evaluate a model file on bags (accuracy, blocked precision/recall) and write JSON; '
        '--task beam: train, time and tabulate the beam methods (Tables II-V).')


def add_arguments(p) -> None:
    from ..beam.command import add_beam_arguments
    p.add_argument('--task', choices=('handover', 'beam'), default='handover')
    p.add_argument('--model', default=None,
                   help='model file (.pt) written by mmtok train (required for handover)')
    p.add_argument('--data', default=None, help='directory of rosbag2 bags (handover); '
                   "'synthetic' (default) or a DeepSense scenario folder or CSV (beam)")
    p.add_argument('--bags', default='', help='comma-separated bag names (default: all)')
    p.add_argument('--device', default='auto')
    p.add_argument('--out', default=None,
                   help='JSON file to write (handover); output folder (beam, default results/beam)')
    p.add_argument('--threshold', type=float, default=None,
                   help='handover: p_blocked at or above which a window counts as predicted '
                        'blocked (default: the threshold the model file carries, else '
                        f'{DEFAULT_DECISION_THRESHOLD:g})')
    p.add_argument('--horizon', type=int, default=None,
                   help='handover: score against "blocked within the next H frames" (default: '
                        'the horizon the model was trained on, else 1)')
    p.add_argument('--max-false-alarms-per-min', type=float, default=1.0,
                   help='handover: the false-alarm rate at which onset recall is also reported')
    p.add_argument('--metrics', choices=('proactive', 'legacy'), default='proactive',
                   help='handover: false-alarm definition. proactive (default): an alarm that '
                        'starts on a clear link with no blockage within the label horizon; '
                        'alarms running past a blockage are counted apart (late all-clear). '
                        'legacy: any alarm run on clear windows that does not run into an '
                        'onset, as in the tables before (docs/model.md)')
    p.add_argument('--no-progress', action='store_true')
    add_beam_arguments(p)


def prediction_table(result: dict) -> str:
    """The model, the node's decision (model OR own link below S_th), persistence and
    always-clear (Markdown)."""
    fixed = result['at_fixed_false_alarm_rate']['max_false_alarms_per_min']
    definition = result.get('false_alarm_definition', 'legacy')
    lines = [f"threshold {result['threshold']:.2f}, label horizon "
             f"{result['label_horizon_frames']} frame(s), {result['onsets']} onsets, "
             f"{result['clear_minutes']:.1f} min of clear link, false alarms by the "
             f"{definition} definition", '',
             '| predictor | accuracy | AUROC | onset recall 1 / 2 / 3 / 5 frames ahead | '
             'median lead [ms] | false alarms / min | late all-clears / min | '
             f'onset recall at <= {fixed:g} FA/min |',
             '|---|---|---|---|---|---|---|---|']
    rows = [('model', result)]
    if 'node_decision' in result:
        rows.append(('node: model OR own link < S_th', result['node_decision']))
    rows += [(name.replace('_', ' '), r) for name, r in result['baselines'].items()]
    for name, r in rows:
        ahead = ' / '.join(f"{r['onset_recall_ahead'][k]:.2f}" for k in r['onset_recall_ahead'])
        late = r.get('late_all_clears_per_min', float('nan'))
        lines.append(f"| {name} | {100 * r['accuracy']:.1f} % | "
                     f"{r['auroc']:.3f} | {ahead} | {r['median_lead_ms']:.0f} | "
                     f"{r['false_alarms_per_min']:.2f} | {late:.2f} | "
                     f"{r['at_fixed_false_alarm_rate']['onset_recall']:.2f} |")
    return '\n'.join(lines)


def run(args) -> int:
    if args.task == 'beam':
        from ..beam.command import run_beam
        return run_beam(args)
    if args.model is None or args.data is None:
        raise UserInputError('--task handover needs --model and --data')
    import numpy as np

    from ..devices import resolve_device
    from ..model.checkpoint import load_model
    from ..train.build import dataset_from_bags
    from ..train.evaluation import evaluate
    model, meta = load_model(args.model, device=resolve_device(args.device)[0])
    data, names = dataset_from_bags(args.data, model.cfg, progress=not args.no_progress)
    wanted = [b for b in args.bags.split(',') if b]
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise UserInputError(f'--bags {unknown} are not bags in {args.data}; have {names}')
    if wanted:
        data = data.subset(np.flatnonzero(np.isin(data.groups, [names.index(b) for b in wanted])))
    result = {'model': str(args.model), 'data': str(args.data), 'bags': wanted or names,
              **evaluate(model, data, threshold=model.decision_threshold if args.threshold is None
                         else args.threshold,
                         horizon=args.horizon or int(meta.get('label_horizon_frames', 1)),
                         max_false_alarms_per_min=args.max_false_alarms_per_min,
                         metrics=args.metrics)}
    print(f"accuracy: {result['accuracy']:.4f} on {result['n']} windows "
          f"(blocked precision {result.get('precision_blocked', float('nan')):.3f}, "
          f"recall {result.get('recall_blocked', float('nan')):.3f}; blockage onsets announced "
          f"a frame ahead: {result.get('onsets_predicted', '-')}/{result.get('onsets', '-')})")
    if 'auroc' in result:
        print(prediction_table(result))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + '\n')
        print(f'wrote {args.out}')
    return 0
