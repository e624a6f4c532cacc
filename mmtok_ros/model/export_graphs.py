"""The two graphs ``model/export.py`` traces to ONNX, and the error an export raises."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import MmtokError
from . import routing
from .transformer import FullLayer, MultiModalTransformer, RoutedLayer


class ExportError(MmtokError, RuntimeError):
    """The model cannot be exported exactly, or the exported graph does not match PyTorch."""


class TokenizerGraph(nn.Module):
    """(F, ...) per modality + present (F, M) bool -> (F, n, d): frames tokenized one by one."""

    def __init__(self, model: MultiModalTransformer):
        super().__init__()
        self.frame_tokenizer = model.frame_tokenizer
        self.modalities = tuple(model.cfg.modalities)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        *frames, present = inputs
        return self.frame_tokenizer(dict(zip(self.modalities, frames)), present)


class EncoderGraph(nn.Module):
    """(B, T, n, d) frame tokens -> (B, n_classes) logits with a constant K per routed layer.

    The same steps as ``MultiModalTransformer.encode`` in eval mode, with K_l given as Python
    ints (so the traced TopK gets a constant k) instead of computed from r_l inside forward.
    """

    def __init__(self, model: MultiModalTransformer, keep_counts: list[int]):
        super().__init__()
        self.model = model
        for layer in model.layers:
            if not isinstance(layer, (FullLayer, RoutedLayer)):
                raise ExportError(
                    f'cannot export method {model.cfg.method!r}: layer {type(layer).__name__} '
                    'has no exact ONNX form (ToMe merging sorts similarities with argsort and '
                    'changes the token count per input); export routed, mha, mod or ablation1-3')
        self.keep_counts = [int(k) for k in keep_counts]

    def forward(self, frame_tokens: torch.Tensor) -> torch.Tensor:
        m = self.model
        B, T, n, d = frame_tokens.shape
        x = frame_tokens + m.temporal.weight[:T, None, :]                   # (B, T, n, d)
        x = torch.cat([m.cls.expand(B, 1, d).to(x.dtype), x.reshape(B, T * n, d)], dim=1)
        for layer, k in zip(m.layers, self.keep_counts):
            if isinstance(layer, RoutedLayer):                               # Eq. 16-17, fixed K
                scores = layer.router(x)                                     # (B, N) fp32
                idx = layer.select(scores, k)                        # (B, K), CLS (+kept) first
                x = routing.route(x, scores, idx, layer.block.residual_branch)  # (B, N, d)
            else:
                x, _ = layer(x)
        return m.readout(x)                                                  # (B, n_classes)


__all__ = ['EncoderGraph', 'ExportError', 'TokenizerGraph']
