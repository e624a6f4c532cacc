"""Part ``onnx``: ``mmtok export`` of the shipped models, then onnxruntime's CUDA execution
provider per frame and on the held-out windows where the installed onnxruntime has it; where
it does not, the result says so in one sentence and the CPU provider is timed for reference."""
from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

from .inputs import load_models, load_windows, window_rows
from .measures import accuracy
from .runner import Check


def _providers(check: Check, res: dict, ort) -> list[str]:
    """What this onnxruntime offers, recorded in ``res``, and the provider to run."""
    available = ort.get_available_providers()
    res['onnxruntime'] = ort.__version__
    res['providers_available'] = available
    cuda_ep = 'CUDAExecutionProvider' in available
    res['cuda_execution_provider'] = (
        'available' if cuda_ep else
        f'NOT available: onnxruntime {ort.__version__} here has {available} (the CPU-only '
        'wheel; the CUDA EP comes with the onnxruntime-gpu wheel, hundreds of MB, too big to '
        'carry to a lent machine); the CUDA EP was not run')
    if 'TensorrtExecutionProvider' not in available:
        res['tensorrt_execution_provider'] = 'not available'
    want = ['CUDAExecutionProvider'] if cuda_ep and check.device.type == 'cuda' else \
        ['CPUExecutionProvider']
    res['ran_on'] = want[0]
    if want[0] == 'CPUExecutionProvider':
        res['why_cpu'] = ('the device is the CPU (dry run)' if check.device.type == 'cpu'
                          else 'no CUDA EP: the CPU EP timed for reference')
    check.say(f"onnx: providers {available}; running {want[0]}")
    return want


def part_onnx(check: Check, res: dict) -> None:
    """The exported graphs under onnxruntime: CUDA EP where this build has it."""
    import numpy as np

    from ...model.export import export_model
    from ...runtime.onnx_predictor import OnnxStreamingPredictor
    from ...timing import time_streaming_frame
    import onnxruntime as ort
    load_windows(check)
    load_models(check)
    want = _providers(check, res, ort)
    reps = check.reps
    rows = window_rows(check)
    methods = list(check.models)
    if check.args.dry:
        methods = methods[:1]           # one export is enough to keep the path alive
    with tempfile.TemporaryDirectory(prefix='mmtok-device-onnx-') as tmp:
        for method in methods:
            cpu, dev, path = check.models[method]
            entry = res.setdefault(method, {})

            def export():
                tic = time.perf_counter()
                out = export_model(copy.deepcopy(cpu), Path(tmp) / f'{method}.onnx',
                                   decision_threshold=cpu.decision_threshold,
                                   source=Path(path).name)
                return out, time.perf_counter() - tic
            done = check.guarded(entry, 'export', check.rest_of_part(), export)
            if done is None:
                continue
            result, seconds = done
            entry.update(export_s=round(seconds, 1), max_abs_diff_vs_torch=result.max_abs_diff,
                         tokens_per_layer=result.tokens_per_layer)

            def measure():
                pred = OnnxStreamingPredictor(result.encoder, providers=want,
                                              threshold=cpu.decision_threshold)
                entry['provider_used'] = pred.device
                entry['warnings'] = pred.warnings
                timing = time_streaming_frame(cpu, reps=reps, warmup=2, predictor=pred)
                ps = np.array([pred.predict(check.windows.window(int(r)), use_cache=False)
                               .p_blocked for r in rows])
                thr = cpu.decision_threshold
                ref = check.cpu_p.get(method)
                if ref is not None and len(ref[0]) == len(rows) and (ref[0] == rows).all():
                    entry['decisions_differing_vs_torch_cpu'] = int(
                        ((ps >= thr) != (ref[1] >= thr)).sum())
                    entry['max_abs_p_diff_vs_torch_cpu'] = float(np.abs(ps - ref[1]).max())
                entry.update(frame_ms_median=timing['median_ms'], frame_ms_p90=timing['p90_ms'],
                             **accuracy(check.windows, ps, rows, thr))
                check.say(f"onnx {method} on {pred.device}: per frame "
                          f"{timing['median_ms']:.2f} ms, acc {entry['accuracy']:.2%}")
            check.guarded(entry, 'run', check.rest_of_part(), measure)
            check.save()
