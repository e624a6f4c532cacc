"""ONNX export with a fixed K per layer: two graphs, so the streaming token cache keeps working.

- ``FILE.tokenizer.onnx``: one batch of frames -> their tokens, (F, ...) per modality and
  ``present`` (F, M) bool -> ``frame_tokens`` (F, n, d) (``MultiModalTransformer.tokenize``).
- ``FILE.onnx``: (B, T, n, d) frame tokens -> (B, n_classes) logits: the temporal embedding,
  CLS, the layers and the head (``MultiModalTransformer.encode``).

K is fixed at export time (Top-K in ONNX and TensorRT takes a constant k, and ``argsort`` does
not export): K_l = round(N r_l) from the learned keep ratios, or round(N clamp(s r_l)) for a
keep scale s, exactly the K ``set_keep_override(s)`` gives the torch model. Top-K, gather and
scatter become the ONNX operators TopK, GatherElements and ScatterElements (reduction add);
the CLS token is forced into every Top-K as in ``routing.top_k_indices``. The batch is
dynamic; T and N are the model's.

Every export is checked: the graphs run under onnxruntime on random windows (some modalities
absent) and must match PyTorch within ``tolerance``, or the files are removed and
:class:`ExportError` says by how much. A layer kind without an exact ONNX form (ToMe's
merging) fails before anything is written.

The exporter is torch's TorchScript one (``dynamo=False``): it needs nothing beyond torch
(the dynamo exporter needs ``onnxscript``), and the only data-dependent parts of the traced
inference path, the Top-K indices, are ONNX operators.
"""
from __future__ import annotations

import json
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..errors import UserInputError
from .export_graphs import EncoderGraph, ExportError, TokenizerGraph
from .transformer import MultiModalTransformer, RoutedLayer

FORMAT = 'mmtok_ros.onnx/1'
OPSET = 18
TOLERANCE = 1e-4
META_PREFIX = 'mmtok.'


# --- K per layer ---------------------------------------------------------------------------

@contextmanager
def _keep_scale(model: MultiModalTransformer, keep_scale: float | None):
    """The model runs with ``set_keep_override(keep_scale)``; its own override is restored."""
    saved = [layer.keep_override for layer in model.routed_layers()]
    try:
        model.set_keep_override(keep_scale)
        yield model
    finally:
        for layer, value in zip(model.routed_layers(), saved):
            layer.keep_override = value


def fixed_keep_counts(model: MultiModalTransformer, keep_scale: float | None = None) -> list[int]:
    """Tokens entering attention in each layer at inference: K_l = round(N r_l), or with a
    keep scale s the K of ``set_keep_override(s)``."""
    with _keep_scale(model, keep_scale):
        return [int(k) for k in model.tokens_per_layer()]


def _reference_logits(model: MultiModalTransformer, frame_tokens: torch.Tensor,
                      keep_scale: float | None) -> torch.Tensor:
    with _keep_scale(model, keep_scale):
        return model.encode(frame_tokens)


# --- file names and metadata --------------------------------------------------------------

def tokenizer_path(encoder_path: str | os.PathLike) -> Path:
    """``FILE.onnx`` -> ``FILE.tokenizer.onnx``."""
    p = Path(encoder_path)
    return p.with_name(p.stem + '.tokenizer.onnx')


def scale_path(encoder_path: str | os.PathLike, keep_scale: float) -> Path:
    """``FILE.onnx`` -> ``FILE.scale0.60.onnx``: the encoder exported at another keep scale."""
    p = Path(encoder_path)
    return p.with_name(f'{p.stem}.scale{keep_scale:.2f}.onnx')


def tokenizer_input_names(cfg) -> list[str]:
    return [*cfg.modalities, 'present']


def _write_metadata(path: Path, values: dict) -> None:
    import onnx
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key = META_PREFIX + key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    onnx.save(proto, str(path))


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``mmtok.*`` metadata of an exported file (prefix removed, values as stored)."""
    import onnx
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key[len(META_PREFIX):]: p.value for p in proto.metadata_props
            if p.key.startswith(META_PREFIX)}


# --- export --------------------------------------------------------------------------------

@dataclass
class ExportResult:
    encoder: Path                                 # the primary encoder graph (FILE.onnx)
    tokenizer: Path
    keep_scale: float
    tokens_per_layer: list[int]
    scales: dict[float, Path] = field(default_factory=dict)   # every encoder, primary included
    max_abs_diff: dict[str, float] = field(default_factory=dict)


def _trace_to_onnx(module: nn.Module, args: tuple, path: Path, input_names: list[str],
                   output_name: str, opset: int) -> None:
    dynamic = {name: {0: 'batch'} for name in [*input_names, output_name]}
    module.eval()   # a new wrapper module is in training mode: BatchNorm would use batch stats
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of dynamo (which needs onnxscript);
        # TracerWarnings are about Python ints taken from shapes, which are fixed here (T, N)
        warnings.simplefilter('ignore')
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=opset,
                          input_names=input_names, output_names=[output_name],
                          dynamic_axes=dynamic, do_constant_folding=True,
                          training=torch.onnx.TrainingMode.EVAL)


def _check_windows(model: MultiModalTransformer, batch: int = 1, seed: int = 0) -> list[dict]:
    """Random windows to compare on: all present, and some modalities absent. Batch 1: the
    exported graph materialises every attention matrix (h N^2 floats per layer, 3.4 GB at
    paper-handover's N = 10246 without routing), so the check holds one window at a time."""
    from .flops import dummy_window
    cfg = model.cfg
    M = len(cfg.modalities)
    full = dummy_window(cfg, batch=batch, seed=seed)
    full['present'] = torch.ones(batch, cfg.n_frames, M, dtype=torch.bool)
    gaps = dummy_window(cfg, batch=batch, seed=seed + 1)
    g = torch.Generator().manual_seed(seed + 2)
    gaps['present'] = torch.rand((batch, cfg.n_frames, M), generator=g) > 0.4
    gaps['present'][0, 0] = False                     # one frame with nothing at all
    return [full, gaps]


def _session(path: Path):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=['CPUExecutionProvider'])


def export_model(model: MultiModalTransformer, out: str | os.PathLike, *,
                 keep_scale: float | None = None, extra_keep_scales: tuple[float, ...] = (),
                 decision_threshold: float | None = None, source: str = '',
                 opset: int = OPSET, tolerance: float = TOLERANCE) -> ExportResult:
    """Write the tokenizer and encoder graph(s) of ``model`` next to ``out`` and check them.

    ``keep_scale`` None exports K_l = round(N r_l) (scale 1.0); ``extra_keep_scales`` writes
    one more encoder graph per scale (``scale_path``) for run-time switching; they share the
    tokenizer graph. Raises :class:`ExportError` (nothing left on disk) when the model cannot
    be exported exactly or a graph differs from PyTorch by more than ``tolerance``.
    """
    out = Path(out)
    if out.suffix != '.onnx':
        raise UserInputError(f'--out must end in .onnx, got {out}')
    for s in (keep_scale, *extra_keep_scales):
        if s is not None and not 0.0 < s <= 1.0:
            raise UserInputError(f'keep scale must be in (0, 1], got {s}')
    model = model.cpu().eval()
    cfg = model.cfg
    primary = 1.0 if keep_scale is None else float(keep_scale)
    scales = [primary] + [float(s) for s in extra_keep_scales if float(s) != primary]
    if not model.routed_layers():   # K does not depend on the scale: one encoder graph
        scales = [primary]
    scale_files = {s: (out if s == primary else scale_path(out, s)) for s in scales}
    encoders = {s: EncoderGraph(model, fixed_keep_counts(model, None if s == 1.0 else s))
                for s in scales}                 # raises ExportError before writing anything
    out.parent.mkdir(parents=True, exist_ok=True)
    tok_path = tokenizer_path(out)
    written = [tok_path, *scale_files.values()]
    try:
        with torch.no_grad():
            windows = _check_windows(model)
            example = windows[0]
            frames = [example[m].flatten(0, 1) for m in cfg.modalities]       # (BT, ...)
            present = example['present'].flatten(0, 1)                        # (BT, M)
            _trace_to_onnx(TokenizerGraph(model), (*frames, present), tok_path,
                           tokenizer_input_names(cfg), 'frame_tokens', opset)
            example_tokens = model.tokenize(example)                          # (B, T, n, d)
            for s, path in scale_files.items():
                _trace_to_onnx(encoders[s], (example_tokens,), path, ['frame_tokens'],
                               'logits', opset)
            diffs = _compare(model, tok_path, scale_files, windows)
        worst = max(diffs.values())
        if not worst <= tolerance:
            raise ExportError(f'the exported graphs differ from PyTorch by {worst:.3g} '
                              f'(> {tolerance:g}): {diffs}; nothing written')
        common = {'format': FORMAT, 'config': cfg.to_dict(), 'opset': str(opset),
                  'exporter': f'torch {torch.__version__} TorchScript (dynamo=False)',
                  'source_model': source}
        _write_metadata(tok_path, {**common, 'graph': 'tokenizer',
                                   'inputs': tokenizer_input_names(cfg)})
        kinds = ['routed' if isinstance(l, RoutedLayer) else 'full' for l in model.layers]
        ratios = [round(float(r), 6) for r in model.keep_ratios().detach()]
        for s, path in scale_files.items():
            _write_metadata(path, {
                **common, 'graph': 'encoder', 'keep_scale': str(s),
                'tokens_per_layer': encoders[s].keep_counts, 'layer_kinds': kinds,
                'keep_ratios': ratios, 'n_tokens': str(cfg.n_tokens),
                'decision_threshold': '' if decision_threshold is None
                else str(float(decision_threshold)),
                'tokenizer_file': tok_path.name,
                'scale_files': {str(k): v.name for k, v in scale_files.items()},
                'max_abs_diff_vs_torch': str(diffs[f'encoder@{s}'])})
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return ExportResult(out, tok_path, primary, encoders[primary].keep_counts, scale_files, diffs)


def _compare(model: MultiModalTransformer, tok_path: Path, scale_files: dict[float, Path],
             windows: list[dict]) -> dict[str, float]:
    """Max |ONNX - torch| of the tokenizer and of each encoder graph over ``windows``."""
    cfg = model.cfg
    diffs = {'tokenizer': 0.0, **{f'encoder@{s}': 0.0 for s in scale_files}}
    tok_session = _session(tok_path)
    sessions = {s: _session(p) for s, p in scale_files.items()}
    for window in windows:
        tokens = model.tokenize(window)                                      # (B, T, n, d)
        feed = {m: window[m].flatten(0, 1).numpy() for m in cfg.modalities}
        feed['present'] = window['present'].flatten(0, 1).numpy()
        onnx_tokens = tok_session.run(None, feed)[0].reshape(tokens.shape)
        diffs['tokenizer'] = max(diffs['tokenizer'],
                                 float(np.abs(onnx_tokens - tokens.numpy()).max()))
        for s, session in sessions.items():
            # the encoder gets torch's tokens, so its error is its own
            ref = _reference_logits(model, tokens, None if s == 1.0 else s).numpy()
            got = session.run(None, {'frame_tokens': tokens.numpy()})[0]
            key = f'encoder@{s}'
            diffs[key] = max(diffs[key], float(np.abs(got - ref).max()))
    return diffs


__all__ = ['ExportError', 'ExportResult', 'EncoderGraph', 'FORMAT', 'OPSET', 'TokenizerGraph',
           'export_model', 'fixed_keep_counts', 'read_metadata', 'scale_path', 'tokenizer_path']
