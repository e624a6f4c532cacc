"""From a FLOPs budget gamma to a target keep ratio gamma' (constraint 11, footnote 2).

The paper sets gamma' = sqrt(gamma / FLOPs_max), which treats every FLOP as attention
(FLOPs ~ K^2 d). Projections and the MLP scale with K, not K^2, and the routers always see
all N tokens, so that rule overshoots a budget when K is small compared with d times a
constant. ``gamma_from_budget`` reports both: the paper's rule, and the exact uniform keep
ratio at which our FLOPs counter meets the budget (found by bisection).
"""
from __future__ import annotations

import math

from ..errors import UserInputError
from .config import preset
from .flops import layer_flops
from .transformer import MultiModalTransformer


def _transformer_gflops(model: MultiModalTransformer, keep_ratio: float) -> float:
    for layer in model.routed_layers():
        layer.keep_override = keep_ratio
    rows = layer_flops(model)
    return sum(r.attention + r.mlp + r.router + r.merge for r in rows) / 1e9


def gamma_from_budget(preset_name: str, budget_gflops: float) -> dict:
    """gamma' for a budget of ``budget_gflops`` per window (transformer FLOPs, head excluded)."""
    full = _transformer_gflops(MultiModalTransformer(preset(preset_name, method='mha')), 1.0)
    if budget_gflops <= 0:
        raise UserInputError(f'the FLOPs budget must be positive, got {budget_gflops}')
    routed = MultiModalTransformer(preset(preset_name, method='routed'))
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _transformer_gflops(routed, mid) <= budget_gflops else (lo, mid)
    return {'budget_gflops': budget_gflops, 'flops_max_gflops': full,
            'gamma_paper': min(1.0, math.sqrt(budget_gflops / full)), 'gamma_exact': lo}
