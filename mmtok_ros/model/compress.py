"""Deployment options of Tables IX/X: half precision and structured pruning.

Unlike the paper's mask-based pruning (which left latency and memory unchanged), pruning here
removes heads and MLP channels from the weight matrices, so the pruned model is really smaller.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from ..errors import UserInputError
from .transformer import Block, MultiModalTransformer


def autocast_for(device: str | torch.device, precision: str):
    """A context that runs the blocks in ``precision`` (fp32, fp16, bf16); routers stay FP32."""
    device_type = torch.device(device).type
    if precision == 'fp32':
        return contextlib.nullcontext()
    dtype = {'fp16': torch.float16, 'bf16': torch.bfloat16}.get(precision)
    if dtype is None:
        raise UserInputError(f'unknown precision {precision!r}; choose fp32, fp16 or bf16')
    if device_type == 'cpu' and dtype is torch.float16:
        raise UserInputError('fp16 is not supported on CPU; use bf16')
    return torch.autocast(device_type, dtype=dtype)


def _keep_rows(linear: nn.Linear, rows: torch.Tensor) -> nn.Linear:
    out = nn.Linear(linear.in_features, len(rows), bias=linear.bias is not None)
    out.weight.data.copy_(linear.weight.data[rows])
    if linear.bias is not None:
        out.bias.data.copy_(linear.bias.data[rows])
    return out


def _keep_cols(linear: nn.Linear, cols: torch.Tensor) -> nn.Linear:
    out = nn.Linear(len(cols), linear.out_features, bias=linear.bias is not None)
    out.weight.data.copy_(linear.weight.data[:, cols])
    if linear.bias is not None:
        out.bias.data.copy_(linear.bias.data)
    return out


def prune_block(block: Block, n_heads: int, mlp_hidden: int) -> None:
    """Keep the ``n_heads`` heads and ``mlp_hidden`` MLP channels with the largest L2 norm."""
    attn, hd = block.attn, block.attn.head_dim
    if n_heads < attn.n_heads:
        w = attn.qkv.weight.data.view(3, attn.n_heads, hd, -1)          # (3, h, hd, d)
        norm = w.pow(2).sum(dim=(0, 2, 3)) + attn.proj.weight.data.view(
            -1, attn.n_heads, hd).pow(2).sum(dim=(0, 2))                # (h,)
        heads = norm.topk(n_heads).indices.sort().values
        per_head = (heads[:, None] * hd + torch.arange(hd)).flatten()   # (h' hd,)
        rows = torch.cat([per_head + i * attn.n_heads * hd for i in range(3)])
        attn.qkv, attn.proj = _keep_rows(attn.qkv, rows), _keep_cols(attn.proj, per_head)
        attn.n_heads = n_heads
    if mlp_hidden < block.mlp.fc1.out_features:
        norm = block.mlp.fc1.weight.data.pow(2).sum(1) + block.mlp.fc2.weight.data.pow(2).sum(0)
        keep = norm.topk(mlp_hidden).indices.sort().values
        block.mlp.fc1, block.mlp.fc2 = _keep_rows(block.mlp.fc1, keep), _keep_cols(block.mlp.fc2, keep)


def prune_model(model: MultiModalTransformer, *, heads_fraction: float = 0.5,
                mlp_fraction: float = 0.5) -> MultiModalTransformer:
    """Structured L2 pruning (zero-shot, after training) of every block, in place.

    The config records the fractions, so a saved pruned model rebuilds with its own shapes.
    """
    from .transformer import pruned_sizes
    model.cfg = model.cfg.with_(prune_heads_fraction=heads_fraction, prune_mlp_fraction=mlp_fraction)
    n_heads, hidden = pruned_sizes(model.cfg)
    for layer in model.layers:
        prune_block(layer.block, n_heads, hidden)
    return model
