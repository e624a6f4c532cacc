"""mmtok flops: analytic FLOPs of one window for a preset and method."""
from __future__ import annotations

import json

from ..model.config import METHODS, PRESETS

HELP = 'Count the FLOPs of one window (2 x multiply-adds; see mmtok_ros/model/flops.py).'


def add_arguments(p) -> None:
    p.add_argument('--preset', default='paper-handover', choices=sorted(PRESETS))
    p.add_argument('--method', default='routed', choices=METHODS)
    p.add_argument('--gamma', type=float, default=None,
                   help="target keep ratio gamma' (every routed layer keeps gamma' N tokens)")
    p.add_argument('--budget-gflops', type=float, default=None,
                   help="derive gamma' from a FLOPs budget instead (see keep_ratio.py)")
    p.add_argument('--json', action='store_true', help='print one JSON object')


def run(args) -> int:
    from ..model import MultiModalTransformer, preset
    from ..model.flops import count_flops
    from ..model.keep_ratio import gamma_from_budget
    overrides = {'method': args.method}
    budget = None
    if args.budget_gflops is not None:
        budget = gamma_from_budget(args.preset, args.budget_gflops)
        overrides['target_keep_ratio'] = budget['gamma_exact']
    elif args.gamma is not None:
        overrides['target_keep_ratio'] = args.gamma
    result = count_flops(MultiModalTransformer(preset(args.preset, **overrides)))
    if budget:
        result['budget'] = budget
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['preset']} / {result['method']} (gamma'={result['gamma']}), "
          f"N={result['n_tokens']} tokens")
    print(f"  transformer: {result['gflops']:.2f} GFLOPs (routers {result['router_gflops']:.2f})")
    print(f"  tokenizers:  {result['tokenizer_gflops']:.2f} GFLOPs")
    print(f"  tokens per layer: {result['tokens_per_layer']}")
    if budget:
        print(f"  budget {args.budget_gflops} GFLOPs: gamma' = {budget['gamma_exact']:.3f} exact, "
              f"{budget['gamma_paper']:.3f} by the paper's sqrt(gamma / FLOPs_max)")
    return 0
