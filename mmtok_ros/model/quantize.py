"""Int8 dynamic quantization of the transformer blocks' linear layers (CPU only).

Measured, not shipped (``mmtok bench --heldout --backend torch,torch-int8``, docs/results.md
"Fast CPU path"): on this project's AVX2 CPU it is no faster, because these linear layers
are a small part of a window's time (attention is most of it), and PyTorch deprecates the
quantized tensors it needs. In every block, ``attn.qkv``, ``attn.proj``,
``mlp.fc1`` and ``mlp.fc2`` become :class:`Int8Linear`: weights int8, symmetric, one scale
per output channel, quantized once at load; activations quantized per call to 7-bit unsigned
with the tensor's own range (``reduce_range``: no int16 overflow in AVX2's u8 x s8 products),
products accumulated in int32 and rescaled to FP32 (PyTorch's ``quantized::linear_dynamic``,
FBGEMM / oneDNN). Routers, tokenizers, norms, attention itself and the head stay FP32: the
routers decide which tokens are processed, and attention (Q K^T, softmax, x V) has no
weights to quantize.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from ..errors import UserInputError
from .transformer import Block, MultiModalTransformer

QUANTIZED_LINEARS = ('attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2')


def int8_engine() -> str | None:
    """The quantized engine in use ('x86', 'fbgemm', 'onednn', 'qnnpack'), None if none."""
    engines = [e for e in torch.backends.quantized.supported_engines if e != 'none']
    if not engines:
        return None
    if torch.backends.quantized.engine == 'none':
        torch.backends.quantized.engine = engines[0]
    return torch.backends.quantized.engine


class Int8Linear(nn.Module):
    """``linear`` with int8 per-channel weights and dynamically quantized activations."""

    def __init__(self, linear: nn.Linear, *, reduce_range: bool = True):
        super().__init__()
        w = linear.weight.detach().float().cpu()
        scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12).double()
        with warnings.catch_warnings():     # "quantized tensor creation ... deprecated"
            warnings.filterwarnings('ignore', message='.*quantize_per_channel.*')
            qweight = torch.quantize_per_channel(w, scale, torch.zeros(len(scale),
                                                                       dtype=torch.long),
                                                 0, torch.qint8)
        bias = None if linear.bias is None else linear.bias.detach().float().cpu()
        self._packed = torch.ops.quantized.linear_prepack(qweight, bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.reduce_range = reduce_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x.contiguous(), self._packed,
                                                  self.reduce_range)

    def extra_repr(self) -> str:
        return f'in_features={self.in_features}, out_features={self.out_features}, int8'


def _swap(block: Block, dotted: str) -> None:
    owner_name, name = dotted.split('.')
    owner = getattr(block, owner_name)
    linear = getattr(owner, name)
    if isinstance(linear, nn.Linear):
        setattr(owner, name, Int8Linear(linear))


def quantize_int8(model: MultiModalTransformer,
                  linears: tuple[str, ...] = QUANTIZED_LINEARS) -> MultiModalTransformer:
    """Swap the blocks' ``linears`` for :class:`Int8Linear`, in place; returns ``model``
    (in eval mode). Raises ``UserInputError`` when the model is not on the CPU or this
    PyTorch has no quantized engine."""
    device = next(model.parameters()).device
    if device.type != 'cpu':
        raise UserInputError(f'int8 dynamic quantization runs on the CPU only (the model is '
                             f'on {device}); use backend torch on a GPU')
    if int8_engine() is None:
        raise UserInputError('this PyTorch build has no quantized engine (fbgemm/x86/onednn) '
                             'for int8 dynamic quantization')
    model.eval()
    for layer in model.layers:
        for dotted in linears:
            _swap(layer.block, dotted)
    model.quantization = f'int8 dynamic ({", ".join(linears)})'
    return model


__all__ = ['Int8Linear', 'QUANTIZED_LINEARS', 'int8_engine', 'quantize_int8']
