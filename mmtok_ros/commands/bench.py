"""mmtok bench: latency, memory and FLOPs of every method in one run."""
from __future__ import annotations

from ..constants import GAMMA_SWEEP
from ..errors import UserInputError
from ..model.config import METHODS, PRESETS

HELP = 'Benchmark single-window inference of several methods in one run (table + JSON).'


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(',') if t.strip()]


def add_arguments(p) -> None:
    p.add_argument('--preset', default='paper-handover', choices=sorted(PRESETS))
    p.add_argument('--device', default='auto', help='cpu, cuda, cuda:N or auto (default)')
    p.add_argument('--methods', default='mha,tome,mod,routed',
                   help=f'comma-separated, from {",".join(METHODS)}')
    p.add_argument('--gammas', default=','.join(f'{g:g}' for g in GAMMA_SWEEP),
                   help="target keep ratios gamma' for the routed methods")
    p.add_argument('--reps', type=int, default=7, help='timed windows per method')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--precision', default='fp32', choices=('fp32', 'fp16', 'bf16'))
    p.add_argument('--prune', type=float, default=0.0,
                   help='structured pruning fraction of heads and MLP channels (0: none)')
    p.add_argument('--out', default='results/bench.json', help='JSON file to write')
    p.add_argument('--no-progress', action='store_true')
    p.add_argument('--backend', default='torch',
                   help='torch (default), or comma-separated torch,onnxruntime: time the '
                        'exported graphs beside PyTorch in one run (bench/backends.py); with '
                        '--heldout: torch and torch-int8 (int8 linear layers, measured only)')
    p.add_argument('--threads', default='1',
                   help='with --e2e or --heldout: comma-separated torch_threads of the node, '
                        'each a run (default 1; 0: the node\'s auto, one intra-op thread plus '
                        'work-sharing helpers on the other cores), e.g. 1,0')
    held = p.add_argument_group('CPU paths on the held-out windows (--heldout)')
    held.add_argument('--heldout', action='store_true',
                      help='every --backend x --threads path of the node on the held-out '
                           'windows: accuracy against the first path, and one streaming frame '
                           'timed round-robin over the paths (bench/fast_path.py)')
    held.add_argument('--keep-scales', default='0',
                      help='comma-separated keep_ratio_scale values of the node (0: the learned '
                           'r_l), each a path')
    held.add_argument('--frame-reps', type=int, default=30,
                      help='timed streaming windows per path (0: accuracy only)')
    held.add_argument('--windows', default='',
                      help='held-out windows file (default: the committed '
                           'mmtok_ros/bench/data/heldout_windows_rsu_cpu.npz)')
    e2e = p.add_argument_group('end to end (--e2e): a bag through the real node processes')
    e2e.add_argument('--e2e', action='store_true',
                     help='replay --bag through rsu_node (proposed, then mha) and report '
                          'arrival-to-publish latency, dropped windows, CPU %% and RSS')
    e2e.add_argument('--bag', help='rosbag2 directory to replay (for --e2e)')
    e2e.add_argument('--rate', type=float, default=1.0, help='replay speed (for --e2e)')
    e2e.add_argument('--no-mha', action='store_true',
                     help='only the proposed model (with --e2e)')
    e2e.add_argument('--model', default='',
                     help='proposed model file (default: the shipped rsu-cpu model, else an '
                          'untrained rsu-cpu model: latency does not depend on the weights; '
                          'with --heldout: the shipped model)')
    e2e.add_argument('--mha-model', default='',
                     help='mha model file (default: models/handover_rsu_cpu_mha.pt, else an '
                          'untrained rsu-cpu mha model)')


def run_e2e(args) -> int:
    from ..bench.e2e import format_table, run_e2e, resolve_models
    if not args.bag:
        raise UserInputError('--e2e needs --bag PATH (a rosbag2 directory, e.g. from mmtok simulate)')
    out = args.out if args.out != 'results/bench.json' else 'results/bench_e2e.json'
    models = resolve_models(args.model, args.mha_model)
    if args.no_mha:
        models.pop('mha')
    rows = run_e2e(args.bag, models, rate=args.rate, out=out,
                   device='cpu' if args.device == 'auto' else args.device,
                   threads=_threads(args.threads), backends=tuple(_csv(args.backend)))
    print(f'\nend to end, {args.bag} at {args.rate:g}x (latency: newest frame arrival in '
          'rsu_node -> /mmtok/link_status publish; infer: in-node inference; bench 1 frame: '
          'offline one new frame + transformer, at the run\'s threads)')
    print(format_table(rows))
    print(f'wrote {out}')
    return 0


def _threads(text: str) -> list[int]:
    try:
        counts = [int(t) for t in _csv(text)]
    except ValueError:
        raise UserInputError(f'--threads takes comma-separated integers, got {text!r}') from None
    if not counts or min(counts) < 0:
        raise UserInputError(f'--threads takes integers >= 0 (0: auto), got {text!r}')
    return counts


def run_heldout(args) -> int:
    from ..bench.fast_path import BACKENDS, paths, run_heldout
    from ..model.shipped import shipped_model_path
    backends = _csv(args.backend)
    bad = [b for b in backends if b not in BACKENDS]
    if bad:
        raise UserInputError(f'--heldout compares the torch paths ({", ".join(BACKENDS)}), '
                             f'got {bad}')
    out = args.out if args.out != 'results/bench.json' else 'results/bench_heldout.json'
    try:
        scales = [float(k) for k in _csv(args.keep_scales)]
    except ValueError:
        raise UserInputError(f'--keep-scales takes numbers, got {args.keep_scales!r}') from None
    run_heldout(args.model or shipped_model_path('routed'),
                paths(backends, _threads(args.threads), scales),
                out=out, reps=args.frame_reps,
                data_path=args.windows or None)
    return 0


def run(args) -> int:
    if args.e2e:
        return run_e2e(args)
    if args.heldout:
        return run_heldout(args)
    if args.backend != 'torch':
        from ..bench.backends import run_backends
        return run_backends(args)
    from ..bench.latency import format_table, write_json
    from ..timing import benchmark_methods
    methods = _csv(args.methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserInputError(f'unknown methods {unknown}; choose from {list(METHODS)}')
    gammas = [float(g) for g in _csv(args.gammas)]
    rows = benchmark_methods(args.preset, device=args.device, methods=methods, gammas=gammas,
                         reps=args.reps, warmup=args.warmup, precision=args.precision,
                         prune=args.prune, progress=not args.no_progress)
    print(f"\n{args.preset} on {rows[0]['device_name']} ({args.precision}, batch 1, "
          f'median of {args.reps})')
    print(format_table(rows))
    print(f'wrote {write_json(rows, args.out)}')
    return 0
