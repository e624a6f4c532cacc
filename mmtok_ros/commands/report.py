"""mmtok report: Table VI (every method, cross-validated) + keep-ratio and accuracy plots."""
from __future__ import annotations

from .train import add_train_options, train_config

HELP = 'Cross-validate every method and write Table VI (Markdown + JSON) and plots (PNG).'


def add_arguments(p) -> None:
    add_train_options(p)
    p.add_argument('--methods', default='mha,tome,mod,ablation1,ablation2,ablation3,routed')
    p.add_argument('--gammas', default='0.3,0.4,0.5,0.7', help="gamma' values for routed")
    p.add_argument('--folds', type=int, default=9)
    p.add_argument('--max-folds', type=int, default=None, help='run only the first folds')
    p.add_argument('--seeds', default='0,1,2')
    p.add_argument('--split', choices=('scenario', 'kind'), default='scenario',
                   help='folds by scenario (the paper) or by scenario kind (whole kinds held '
                        'out: blockages never trained on)')
    p.add_argument('--bench-reps', type=int, default=7)
    p.add_argument('--out', default='results/report')


def run(args) -> int:
    from ..model import preset
    from ..train.build import dataset_from_bags
    from ..train.report import run_report
    from ..train.crossval import scenario_kinds
    data, names = dataset_from_bags(args.data, preset(args.preset), progress=not args.no_progress)
    kinds = scenario_kinds(args.data, names) if args.split == 'kind' else None
    rows = run_report(data, preset_name=args.preset,
                      methods=[m for m in args.methods.split(',') if m],
                      gammas=[float(g) for g in args.gammas.split(',') if g],
                      folds=args.folds, seeds=[int(s) for s in args.seeds.split(',') if s],
                      tc=train_config(args), out_dir=args.out, max_folds=args.max_folds,
                      bench_reps=args.bench_reps, progress=not args.no_progress,
                      group_kinds=kinds, horizon=args.horizon)
    print((__import__('pathlib').Path(args.out) / 'table6.md').read_text())
    print(f'wrote {args.out}/table6.md, table6.json, keep_ratios.png, accuracy_vs_latency.png')
    return 0 if rows else 1
