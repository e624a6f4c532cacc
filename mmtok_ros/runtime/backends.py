"""One call that gives the node a streaming predictor, whatever runs the model.

``torch`` (default): a model file (``.pt``) in eager PyTorch on the resolved device.
``onnxruntime``: the ``FILE.onnx`` of ``mmtok export`` (fixed K per layer, tokenizer and
encoder graphs), on the execution providers that match the device (CUDA, then CPU; the
CPU provider is always the fallback). Both predictors share one interface
(``predict``, ``clear``, ``warm_up``, ``threshold``, ``model.cfg``,
``model.tokens_per_layer()``, ``model.routed_layers()``, ``model.set_keep_override``), and
both start with the decision threshold their model file carries
(``constants.DEFAULT_DECISION_THRESHOLD`` when it has none).

``threads``: intra-op threads. 0 (auto): for torch on the CPU, one intra-op
thread plus a work-sharing helper thread per further usable core (at most
``work_sharing.MAX_HELPERS``; ``runtime.work_sharing``), which is never much slower than one
thread when the other cores are busy; on a GPU, and for onnxruntime, the runtime's default.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..constants import DEFAULT_DECISION_THRESHOLD
from ..errors import UserInputError

BACKENDS = ('torch', 'onnxruntime')


@dataclass
class LoadedPredictor:
    predictor: Any
    device: str                      # torch device, or the onnxruntime provider running
    model_threshold: float           # the decision threshold the model file carries
    warnings: list[str] = field(default_factory=list)
    threading: str = ''              # how it runs: intra-op threads, helpers

    @property
    def description(self) -> str:
        return f'{self.device}, {self.threading}' if self.threading else self.device


def load_predictor(model_path: str | Path, *, backend: str = 'torch', device: str = 'cpu',
                   threads: int = 0) -> LoadedPredictor:
    """The predictor for ``model_path``; raises ``ModelFileError`` (one line) on a bad file
    and ``UserInputError`` on an unknown backend."""
    if backend not in BACKENDS:
        raise UserInputError(f'backend {backend!r} is not one of {", ".join(BACKENDS)}')
    if backend == 'onnxruntime':
        from .onnx_predictor import OnnxStreamingPredictor
        providers = (['CUDAExecutionProvider', 'CPUExecutionProvider']
                     if device.startswith('cuda') else ['CPUExecutionProvider'])
        predictor = OnnxStreamingPredictor(model_path, providers=providers,
                                           threads=threads or None)
        return LoadedPredictor(predictor, predictor.device, predictor.threshold,
                               list(predictor.warnings),
                               f'{threads or "default"} intra-op thread(s)')
    import torch

    from ..devices import resolve_device
    from ..model.checkpoint import load_model
    from .predictor import StreamingPredictor
    from .work_sharing import auto_helpers
    resolved, warning = resolve_device(device or 'cpu', strict=False)
    warnings = [warning] if warning else []
    helpers = 0
    if threads > 0:
        torch.set_num_threads(threads)
    elif resolved.type == 'cpu':          # auto: one intra-op thread, the others share
        torch.set_num_threads(1)
        helpers = auto_helpers()
    model, _ = load_model(model_path, device=resolved)
    threshold = float(getattr(model, 'decision_threshold', DEFAULT_DECISION_THRESHOLD))
    predictor = StreamingPredictor(model, device=resolved, threshold=threshold, helpers=helpers)
    how = (f'{torch.get_num_threads()} intra-op thread(s)'
           + (f' + {helpers} work-sharing helper(s)' if helpers else ''))
    return LoadedPredictor(predictor, str(resolved), threshold, warnings, how)


__all__ = ['BACKENDS', 'LoadedPredictor', 'load_predictor']
