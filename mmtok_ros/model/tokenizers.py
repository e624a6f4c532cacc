"""Modality tokenizers (Section III-B, Eqs. 13-15): every modality to tokens of width d.

Image and LiDAR-BEV share one small ResNet-style CNN design (written here because torchvision
has no CPU build on our machines): a patchifying stem, two residual stages, and a 1-D
convolution over the flattened grid that projects the features to d (Eq. 13/14). Radar, GPS
and RSSI go through two linear layers (Eq. 15 and the scalar case).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .config import ModelConfig
from .preprocess import BEV_CHANNELS


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions with batch norm and an identity skip."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


class GridTokenizer(nn.Module):
    """(B, C, H, W) image or BEV grid -> (B, H/s * W/s, d) tokens, s = ``stride``."""

    def __init__(self, in_channels: int, stride: int, cfg: ModelConfig):
        super().__init__()
        w0, w1 = cfg.cnn_widths
        stem = stride // 2
        self.stem = nn.Sequential(  # patchify: stride s/2 at once, cheap at 256x256
            nn.Conv2d(in_channels, w0, stem, stride=stem, bias=False),
            nn.BatchNorm2d(w0), nn.ReLU(inplace=True))
        self.stage1 = BasicBlock(w0)
        self.down = nn.Sequential(
            nn.Conv2d(w0, w1, 2, stride=2, bias=False), nn.BatchNorm2d(w1), nn.ReLU(inplace=True))
        self.stage2 = BasicBlock(w1)
        self.project = nn.Conv1d(w1, cfg.d_model, kernel_size=1)  # the 1-D conv of Eq. 13

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage2(self.down(self.stage1(self.stem(x))))  # (B, w1, H/s, W/s)
        return self.project(x.flatten(2)).transpose(1, 2)       # (B, H/s*W/s, d)


class PointTokenizer(nn.Module):
    """(B, n, in_dim) vectors -> (B, n, d): two linear layers (radar points, GPS, RSSI)."""

    def __init__(self, in_dim: int, d_model: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, d_model), nn.GELU(), nn.Linear(d_model, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_tokenizer(modality: str, cfg: ModelConfig) -> nn.Module:
    if modality == 'image':
        return GridTokenizer(3, cfg.image_stride, cfg)
    if modality == 'lidar':
        return GridTokenizer(BEV_CHANNELS, cfg.bev_stride, cfg)
    in_dim = {'radar': 4, 'gps': cfg.gps_dim, 'rssi': cfg.rssi_dim}[modality]
    return PointTokenizer(in_dim, cfg.d_model)


def as_token_rows(modality: str, x: torch.Tensor) -> torch.Tensor:
    """Frame-batched input of one modality, shaped for its tokenizer: GPS/RSSI get n=1."""
    return x[:, None, :] if modality in ('gps', 'rssi') else x


class FrameTokenizer(nn.Module):
    """All modalities of a batch of frames -> (BT, tokens_per_frame, d).

    Adds the 2-D spatial embedding (image, LiDAR), the modality embedding, and replaces the
    tokens of a modality that is absent in a frame by a learned ``missing`` token. The
    temporal embedding is added later (``MultiModalTransformer.encode``) so that a frame's
    tokens do not depend on its position in the window and can be cached while streaming.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.modalities = tuple(cfg.modalities)
        d = cfg.d_model
        self.tokenizers = nn.ModuleDict({m: build_tokenizer(m, cfg) for m in self.modalities})
        # nn.Parameter(torch.zeros(1, 32 * 32, d)) in the paper; small noise breaks symmetry
        self.spatial = nn.ParameterDict({
            m: nn.Parameter(0.02 * torch.randn(cfg.tokens_of(m), d))
            for m in self.modalities if m in ('image', 'lidar')})
        self.modality_embedding = nn.Embedding(len(self.modalities), d)
        self.missing = nn.Parameter(torch.zeros(len(self.modalities), d))

    def forward(self, frames: dict[str, torch.Tensor],
                present: torch.Tensor | None = None) -> torch.Tensor:
        """``frames[m]``: (BT, ...) per modality; ``present``: (BT, M) bool or None (all)."""
        parts = []
        for i, m in enumerate(self.modalities):
            tokens = self.tokenizers[m](as_token_rows(m, frames[m]))     # (BT, n_m, d)
            if m in self.spatial:
                tokens = tokens + self.spatial[m]
            if present is not None:
                keep = present[:, i].to(tokens.dtype)[:, None, None]      # (BT, 1, 1)
                tokens = tokens * keep + self.missing[i] * (1 - keep)
            parts.append(tokens + self.modality_embedding.weight[i])
        return torch.cat(parts, dim=1)                                    # (BT, n_frame, d)
