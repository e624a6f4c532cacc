"""mmtok report: Table VI (every method, cross-validated) + keep-ratio and accuracy plots."""
from __future__ import annotations

from ..constants import GAMMA_SWEEP
from ..errors import UserInputError
from .train import add_train_options, model_options, train_config

HELP = 'Cross-validate every method and write Table VI (Markdown + JSON) and plots (PNG).'


def add_arguments(p) -> None:
    add_train_options(p)
    p.add_argument('--methods', default='mha,tome,mod,ablation1,ablation2,ablation3,routed')
    p.add_argument('--gammas', default=','.join(f'{g:g}' for g in GAMMA_SWEEP),
                   help="gamma' values for routed")
    p.add_argument('--folds', type=int, default=9)
    p.add_argument('--max-folds', type=int, default=None, help='run only the first folds')
    p.add_argument('--seeds', default='0,1,2')
    p.add_argument('--split', choices=('scenario', 'kind'), default='scenario',
                   help='folds by scenario (the paper) or by scenario kind (whole kinds held '
                        'out: blockages never trained on)')
    p.add_argument('--ablation-gamma', type=float, default=0.3,
                   help="gamma' of ablations 1-3 (the paper's Tables IV-V: 0.3)")
    p.add_argument('--bench-reps', type=int, default=7,
                   help='timed windows per method for the latency column (0: no timing; for a '
                        'process that trains beside others)')
    p.add_argument('--metrics', choices=('proactive', 'legacy'), default='proactive',
                   help='false-alarm definition (docs/model.md); runs stored with their '
                        'predictions are scored again, older runs are trained again unless '
                        'legacy is asked for')
    p.add_argument('--out', default='results/report',
                   help='table, plots and runs/ (one file per run: a later or parallel call with '
                        'the same settings reuses or shares them)')
    p.add_argument('--plot-keep-ratios', default='', metavar='MODEL[,MODEL...]',
                   help='only plot the learned r_l of these model files (Fig. 3 style) into '
                        '--out/keep_ratios_models.png, and print them; no training')


def plot_keep_ratios_of_models(paths: list[str], out_dir: str) -> int:
    from pathlib import Path

    from ..model.checkpoint import load_model
    from ..train.report import plot_model_keep_ratios
    series, gammas = {}, set()
    for path in paths:
        model, _ = load_model(path)
        ratios = model.keep_ratios().tolist()
        if not ratios:
            raise UserInputError(f'{path} ({model.cfg.method}) has no keep ratios to plot')
        series[Path(path).stem] = ratios
        gammas.add(model.cfg.target_keep_ratio)
        print(f"{path}: r_1..r_{len(ratios)} = {', '.join(f'{r:.3f}' for r in ratios)} "
              f"(gamma' {model.cfg.target_keep_ratio:g}, spread {max(ratios) - min(ratios):.3f})")
    out = Path(out_dir) / 'keep_ratios_models.png'
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_model_keep_ratios(series, out, gamma=gammas.pop() if len(gammas) == 1 else None)
    print(f'wrote {out}')
    return 0


def run(args) -> int:
    if args.plot_keep_ratios:
        return plot_keep_ratios_of_models([p for p in args.plot_keep_ratios.split(',') if p],
                                          args.out)
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
                      group_kinds=kinds, horizon=args.horizon,
                      ablation_gamma=args.ablation_gamma, metrics=args.metrics,
                      model_options=model_options(args))
    if not rows:
        return 0
    print((__import__('pathlib').Path(args.out) / 'table6.md').read_text())
    print(f'wrote {args.out}/table6.md, table6.json, keep_ratios.png, accuracy_vs_latency.png')
    return 0
