"""FLOPs of one window at inference, counted as 2 x multiply-adds.

What is counted, per layer, for the tokens that layer actually processes:
  - attention: QKV projection, Q K^T, attention x V, output projection;
  - MLP: both linear layers;
  - router (routed layers): both linear layers, over all N tokens of the layer's input;
  - ToMe merging: the cosine similarities between the two halves of the tokens.
The head (one linear layer on CLS, and on the RSSI tokens with ``rssi_tokens='kept+head'``) is
counted with the transformer. Tokenizers are counted separately (every Conv/Linear, from a
traced forward pass). Not counted: layer norms, softmax, GELU, biases, Top-K, gather/scatter
and the Eq. 17 gate (all O(N d) or below).

With this definition the ``mha`` model of ``paper-deepsense`` (N = 11746, d = 64, 8 layers)
costs 291.8 GFLOPs against the paper's 292.19 (Table II).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from .transformer import Block, MergingLayer, MultiModalTransformer, RoutedLayer


@dataclass
class LayerFlops:
    tokens: int          # tokens entering attention
    attention: float     # projections + QK^T + AV
    mlp: float
    router: float
    merge: float


def block_flops(block: Block, k_attn: int, k_mlp: int) -> tuple[float, float]:
    """(attention, MLP) FLOPs of a block on k_attn tokens (k_mlp after a ToMe merge)."""
    d = block.ln1.normalized_shape[0]
    inner = block.attn.n_heads * block.attn.head_dim
    projections = 2 * k_attn * (d * 3 * inner + inner * d)
    scores_and_mix = 2 * 2 * k_attn * k_attn * inner        # QK^T and AV
    mlp = 2 * k_mlp * 2 * d * block.mlp.fc1.out_features
    return float(projections + scores_and_mix), float(mlp)


def layer_flops(model: MultiModalTransformer, n_tokens: int | None = None) -> list[LayerFlops]:
    n = model.cfg.n_tokens if n_tokens is None else n_tokens
    d = model.cfg.d_model
    rows = []
    for layer, k in zip(model.layers, model.tokens_per_layer(n)):
        router = merge = 0.0
        k_mlp = k
        if isinstance(layer, RoutedLayer):
            router = 2.0 * n * (d * layer.router.fc1.out_features + layer.router.fc1.out_features)
        if isinstance(layer, MergingLayer):
            half = (n - 1) // 2
            merge = 2.0 * half * (n - 1 - half) * d
            k_mlp = n - layer.merge_count
            n -= layer.merge_count
        attention, mlp = block_flops(layer.block, k, k_mlp)
        rows.append(LayerFlops(k, attention, mlp, router, merge))
    return rows


def tokenizer_flops(model: MultiModalTransformer) -> float:
    """FLOPs of tokenizing one window (all T frames), from a traced forward pass on zeros."""
    total = 0.0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d) or isinstance(module, nn.Conv1d):
            per_output = module.in_channels // module.groups * int(torch.tensor(module.kernel_size).prod())
            total += 2.0 * output.numel() * per_output
        elif isinstance(module, nn.Linear):
            total += 2.0 * output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.frame_tokenizer.modules()
             if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model.tokenize(dummy_window(model.cfg, batch=1, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    return total


def dummy_window(cfg, *, batch: int = 1, device='cpu', dtype=torch.float32, seed: int = 0):
    """A random window with the shapes ``cfg`` expects (benchmarks, FLOPs tracing, tests)."""
    g = torch.Generator().manual_seed(seed)
    from .preprocess import frame_shapes
    return {m: torch.rand((batch, cfg.n_frames, *shape), generator=g).to(device=device,
                                                                          dtype=dtype)
            for m, shape in frame_shapes(cfg).items()}


def count_flops(model: MultiModalTransformer) -> dict:
    """The summary printed by ``mmtok flops`` and stored by ``mmtok bench``."""
    rows = layer_flops(model)
    head = 2.0 * model.head.in_features * model.head.out_features   # CLS (+ RSSI tokens)
    transformer = sum(r.attention + r.mlp + r.router + r.merge for r in rows) + head
    tok = tokenizer_flops(model)
    return {
        'preset': model.cfg.preset, 'method': model.cfg.method,
        'gamma': model.cfg.target_keep_ratio, 'n_tokens': model.cfg.n_tokens,
        'gflops': transformer / 1e9,
        'router_gflops': sum(r.router for r in rows) / 1e9,
        'tokenizer_gflops': tok / 1e9,
        'total_gflops': (transformer + tok) / 1e9,
        'tokens_per_layer': [r.tokens for r in rows],
        'layers': [asdict(r) for r in rows],
    }
