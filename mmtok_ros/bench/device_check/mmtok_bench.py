"""Part ``bench``: ``mmtok bench`` (``timing.benchmark_methods``) on the device, routed
gamma'=0.4 against mha with untrained weights, fp32 and bf16, on paper-handover and rsu-cpu
(the presets the paper's speed-up and the node's CPU numbers are quoted at)."""
from __future__ import annotations

from .runner import Check


def part_bench(check: Check, res: dict) -> None:
    """``mmtok bench`` on the device: routed gamma'=0.4 against mha, untrained weights."""
    from ...timing import benchmark_methods
    presets = check.args.presets or (('rsu-mini',) if check.args.dry
                                     else ('paper-handover', 'rsu-cpu'))
    precisions = ('fp32',) if check.args.dry else ('fp32', 'bf16')
    res['rows'] = []
    for preset_name in presets:
        for precision in precisions:
            def one():
                return benchmark_methods(preset_name, device=str(check.device),
                                         methods=['mha', 'routed'], gammas=[0.4],
                                         reps=check.reps_for(30),
                                         warmup=1 if check.args.dry else 5,
                                         precision=precision, progress=False)
            key = f'{preset_name} {precision}'
            rows = check.guarded(res, key, check.rest_of_part(), one)
            if rows is None:
                continue
            res['rows'].extend(rows)
            routed = next(r for r in rows if r['method'] == 'routed')
            check.say(f"bench {key}: mha {rows[0]['latency_ms_median']:.2f} ms, routed "
                      f"{routed['latency_ms_median']:.2f} ms ({routed['speedup_vs_mha']:.2f}x)")
            check.save()
