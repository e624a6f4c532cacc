"""mmtok export: a model file -> ONNX graphs with a fixed K per layer (docs/export.md)."""
from __future__ import annotations

HELP = ('Export a model file to ONNX (tokenizer + encoder graphs, a fixed K per layer), '
        'checked against PyTorch under onnxruntime.')


def _scales(text: str) -> tuple[float, ...]:
    return tuple(float(t) for t in text.split(',') if t.strip())


def add_arguments(p) -> None:
    p.add_argument('--model', required=True, help='model file (.pt) written by mmtok train')
    p.add_argument('--out', required=True,
                   help='encoder graph FILE.onnx; the tokenizer graph goes to FILE.tokenizer.onnx')
    p.add_argument('--keep-scale', type=float, default=None,
                   help='K_l = round(N clamp(S r_l)) instead of round(N r_l) (default: r_l)')
    p.add_argument('--extra-keep-scales', type=_scales, default=(),
                   help='comma-separated keep scales to export as more encoder graphs '
                        '(FILE.scaleS.onnx) for run-time switching by the deadline controller')
    p.add_argument('--opset', type=int, default=None, help='ONNX opset (default 18)')
    p.add_argument('--tolerance', type=float, default=None,
                   help='largest |ONNX - PyTorch| accepted in the export check (default 1e-4)')


def run(args) -> int:
    from pathlib import Path

    from ..errors import UserInputError
    from ..model.checkpoint import load_model
    from ..model.export import OPSET, TOLERANCE, ExportError, export_model, read_metadata
    model, meta = load_model(args.model)
    threshold = meta.get('decision_threshold')
    try:
        result = export_model(model, args.out, keep_scale=args.keep_scale,
                              extra_keep_scales=args.extra_keep_scales,
                              decision_threshold=None if threshold is None else
                              model.decision_threshold,
                              source=Path(args.model).name, opset=args.opset or OPSET,
                              tolerance=TOLERANCE if args.tolerance is None else args.tolerance)
    except ExportError as err:           # this model cannot be exported: one line, not a bug
        raise UserInputError(str(err)) from None
    cfg = model.cfg
    print(f'{args.model}: {cfg.preset}/{cfg.method}, N={cfg.n_tokens} tokens, '
          f'decision threshold {model.decision_threshold:g}')
    print(f'  tokenizer graph: {result.tokenizer}')
    for scale, path in sorted(result.scales.items(), reverse=True):
        k = read_metadata(path)['tokens_per_layer']
        print(f'  encoder graph:   {path} (keep scale {scale:g}, K per layer {k})')
    worst = max(result.max_abs_diff.values())
    print(f'  checked under onnxruntime (CPU): max |ONNX - PyTorch| = {worst:.2e} '
          f'on random windows, some modalities absent')
    return 0
