"""The multi-modal transformer with token routing and learned keep ratios, and its baselines.

Read top to bottom: attention, MLP, block, router, the four kinds of layer (full, routed,
MoD, ToMe), then the model. Every method of ``config.METHODS`` is this one model with a
different layer plan, so tokenizers, head and training code are shared.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import routing
from .config import ModelConfig
from .tokenizers import FrameTokenizer
from .tome import bipartite_merge, merge_count_schedule


def plain_attention(q, k, v, bias=None):
    """Reference attention (B, h, N, hd); ``scaled_dot_product_attention`` must match it."""
    logits = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if bias is not None:
        logits = logits + bias
    return logits.softmax(dim=-1) @ v


class Attention(nn.Module):
    """Multi-head self-attention; ``n_heads`` and ``head_dim`` are per layer so that
    structured head pruning (``compress.py``) can shrink a layer for real."""

    def __init__(self, d_model: int, n_heads: int, head_dim: int):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, head_dim
        self.qkv = nn.Linear(d_model, 3 * n_heads * head_dim)
        self.proj = nn.Linear(n_heads * head_dim, d_model)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        B, N, _ = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)                                        # (B, h, N, hd)
        if bias is not None:
            bias = bias.to(q.dtype)
        # flash / memory-efficient kernels where available; plain_attention is its reference
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(y.transpose(1, 2).reshape(B, N, -1))          # (B, N, d)


class MLP(nn.Module):
    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(d_model, hidden)
        self.fc2 = nn.Linear(hidden, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer encoder block."""

    def __init__(self, cfg: ModelConfig, n_heads: int, mlp_hidden: int):
        super().__init__()
        head_dim = cfg.d_model // cfg.n_heads
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg.d_model, n_heads, head_dim)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg.d_model, mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))

    def residual_branch(self, x: torch.Tensor) -> torch.Tensor:
        """E_l(X) of Eq. 17: what the block adds to its input."""
        return self(x) - x


class Router(nn.Module):
    """Eq. 16: two linear layers with GELU, one score per token, always in FP32."""

    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(d_model, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.fc2(F.gelu(self.fc1(x.float()))).squeeze(-1)  # (B, N)


# --- layers: each takes and returns (x, size); size is None except for ToMe ---------------

class FullLayer(nn.Module):
    """Every token through the block (the ``mha`` baseline, and MoD's unrouted layers)."""

    def __init__(self, block: Block):
        super().__init__()
        self.block = block

    def forward(self, x, size=None):
        return self.block(x), size

    def tokens_processed(self, n_tokens: int) -> int:
        return n_tokens


class RoutedLayer(nn.Module):
    """Top-K routing (Eq. 16-17) with a keep ratio r_l.

    ``learn_keep_ratio``: training runs the block at two token counts around N r_l and
    interpolates the two outputs (Eq. 18), so r_l gets a gradient; inference is one pass at
    K = round(N r_l). Otherwise (MoD, ablation 3) K = round(N r_l) always. ``keep_override``
    lets the deadline controller lower or raise K at run time without touching the weights.

    ``bracket`` (Delta, training only): the two passes run at K_lo = floor(N r_l) - Delta + 1
    and K_hi = floor(N r_l) + Delta and are mixed with weights (N r_l - K_lo) / (K_hi - K_lo)
    and (K_hi - N r_l) / (K_hi - K_lo). Delta = 1 is Eq. 18 exactly; a wider bracket makes
    dL/dr_l an average over 2 Delta - 1 marginal tokens instead of one (docs/model.md).

    ``kept``: token positions inside a frame that are always processed, right after CLS
    (the RSSI token with ``rssi_tokens='kept'``); ``tokens_per_frame`` locates them.

    ``down_pass_grad`` (training only; True is the paper): False runs the K_lo pass without
    autograd. The output stays exactly the interpolation, and so does dL/dr_l given the
    gradient arriving at the layer's output; the block and router weights, and the layers
    below, get the gradient of the K_hi pass alone, and the backward pass of the second
    forward pass is saved.
    """

    def __init__(self, block: Block, router: Router, keep_ratio: float, learn_keep_ratio: bool,
                 min_keep_ratio: float, *, bracket: int = 1, kept: tuple[int, ...] = (),
                 tokens_per_frame: int = 0):
        super().__init__()
        self.block, self.router = block, router
        self.keep_ratio = nn.Parameter(torch.tensor(float(keep_ratio)),
                                       requires_grad=learn_keep_ratio)
        self.learn_keep_ratio = learn_keep_ratio
        self.min_keep_ratio = min_keep_ratio
        self.keep_override: float | None = None
        self.down_pass_grad = True
        self.bracket = int(bracket)
        self.kept = tuple(kept)
        self.tokens_per_frame = int(tokens_per_frame)
        self._kept_cache: dict = {}
        self._k_cache: tuple | None = None          # ((N, override, r_l version), K)

    def ratio(self) -> torch.Tensor:
        if self.keep_override is not None:
            return torch.tensor(self.keep_override)
        return self.keep_ratio.clamp(self.min_keep_ratio, 1.0)

    def tokens_processed(self, n_tokens: int) -> int:
        """K = round(N r_l) at inference, read from r_l once and kept.

        r_l lives on the model's device, so reading it is a device-to-host copy: on a GPU a
        sync per layer per window, which also makes CUDA-graph capture fail. K is recomputed
        only when N, the override or r_l changes (every in-place change of r_l, an optimizer
        step, ``load_state_dict`` or ``fill_``, bumps its version counter).
        """
        if torch.compiler.is_compiling():     # dynamo cannot trace the version counter
            return routing.keep_count(n_tokens, float(self.ratio().detach()))
        key = (n_tokens, self.keep_override, self.keep_ratio._version)
        if self._k_cache is None or self._k_cache[0] != key:
            self._k_cache = (key, routing.keep_count(n_tokens, float(self.ratio().detach())))
        return self._k_cache[1]

    def kept_indices(self, n_tokens: int, device) -> torch.Tensor | None:
        """Indices of the always-processed tokens in a sequence of ``n_tokens`` (CLS + frames)."""
        if not self.kept:
            return None
        key = (n_tokens, str(device))
        if key not in self._kept_cache:
            n = self.tokens_per_frame
            frames = (n_tokens - 1) // n
            self._kept_cache[key] = torch.tensor(
                [1 + t * n + off for t in range(frames) for off in self.kept], device=device)
        return self._kept_cache[key]

    def select(self, scores: torch.Tensor, k: int) -> torch.Tensor:
        """(B, N) scores -> (B, k) token indices, CLS and the kept tokens first."""
        return routing.top_k_indices(scores, k, self.kept_indices(scores.shape[1], scores.device))

    def forward(self, x, size=None):
        n = x.shape[1]
        scores = self.router(x)                                          # (B, N) fp32
        if not (self.training and self.learn_keep_ratio and self.keep_override is None):
            idx = self.select(scores, self.tokens_processed(n))          # (B, K)
            return routing.route(x, scores, idx, self.block.residual_branch), size
        r = self.ratio()
        k_lo, k_hi = routing.bracket_counts(n, r, self.bracket)
        idx = self.select(scores, k_hi)                      # best first: prefix = Top-K_lo
        x_hi = routing.route(x, scores, idx, self.block.residual_branch)
        nr = n * r
        width = k_hi - k_lo
        w_hi, w_lo = nr - k_lo, k_hi - nr                    # Eq. 18 when width is 1
        if width != 1:
            w_hi, w_lo = w_hi / width, w_lo / width
        if not self.down_pass_grad:
            with torch.no_grad():
                x_lo = routing.route(x, scores, idx[:, :k_lo], self.block.residual_branch)
            # the interpolation rewritten as x_hi + w_lo (x_lo - x_hi): same value and the
            # same d/dr_l = N (x_hi - x_lo) / width; the weights see the K_hi pass only
            return x_hi + w_lo * (x_lo - x_hi.detach()), size
        x_lo = routing.route(x, scores, idx[:, :k_lo], self.block.residual_branch)
        return x_hi * w_hi + x_lo * w_lo, size                          # Eq. 18


class MergingLayer(nn.Module):
    """ToMe: attention over all current tokens, merge ``r`` of them, then the MLP."""

    def __init__(self, block: Block, merge_count: int):
        super().__init__()
        self.block, self.merge_count = block, merge_count

    def tokens_processed(self, n_tokens: int) -> int:
        return n_tokens

    def forward(self, x, size=None):
        if size is None:
            size = x.new_ones(x.shape[0], x.shape[1], 1)
        bias = size.log()[:, None, None, :, 0]          # proportional attention: (B, 1, 1, N)
        x = x + self.block.attn(self.block.ln1(x), bias=bias)
        cls, cls_size = x[:, :1], size[:, :1]           # CLS never merges
        rest, rest_size = bipartite_merge(x[:, 1:], size[:, 1:], self.merge_count)
        x, size = torch.cat([cls, rest], dim=1), torch.cat([cls_size, rest_size], dim=1)
        return x + self.block.mlp(self.block.ln2(x)), size


def pruned_sizes(cfg: ModelConfig) -> tuple[int, int]:
    """Heads and MLP width left after structured pruning (Table IX/X's technique)."""
    heads = max(1, cfg.n_heads - int(round(cfg.n_heads * cfg.prune_heads_fraction)))
    hidden = cfg.mlp_ratio * cfg.d_model
    return heads, max(1, hidden - int(round(hidden * cfg.prune_mlp_fraction)))


def build_layers(cfg: ModelConfig) -> nn.ModuleList:
    heads, hidden = pruned_sizes(cfg)
    block = lambda: Block(cfg, heads, hidden)  # noqa: E731
    router = lambda: Router(cfg.d_model, cfg.router_hidden)  # noqa: E731
    layers = []
    routed = dict(bracket=cfg.keep_ratio_bracket, tokens_per_frame=cfg.tokens_per_frame,
                  kept=tuple(cfg.frame_offsets_of('rssi')) if cfg.rssi_tokens != 'routed' else ())
    if cfg.method == 'tome':
        for r in merge_count_schedule(cfg.n_tokens - 1, cfg.n_layers, cfg.tome_keep_fraction):
            layers.append(MergingLayer(block(), r))
    for i in range(cfg.n_layers if cfg.method != 'tome' else 0):
        if cfg.method == 'mha' or (cfg.method == 'mod' and i % 2 == 0):
            layers.append(FullLayer(block()))
        elif cfg.method == 'mod':  # every other layer routed at a fixed capacity
            layers.append(RoutedLayer(block(), router(), cfg.mod_capacity, False,
                                      cfg.min_keep_ratio, **routed))
        else:  # routed and its ablations; ablation 3 keeps one fixed uniform ratio
            layers.append(RoutedLayer(block(), router(), cfg.initial_keep_ratio,
                                      cfg.method != 'ablation3', cfg.min_keep_ratio, **routed))
    return nn.ModuleList(layers)


class MultiModalTransformer(nn.Module):
    """Window of frames -> logits. ``forward(batch)`` = ``encode(tokenize(batch))``.

    ``batch``: dict with one tensor per modality, (B, T, ...) each, and optionally ``present``
    (B, T, M) bool. ``tokenize`` is per frame and cacheable; ``encode`` adds the temporal
    embedding and the CLS token and runs the layers and the head.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.frame_tokenizer = FrameTokenizer(cfg)
        self.temporal = nn.Embedding(cfg.n_frames, d)
        self.cls = nn.Parameter(0.02 * torch.randn(1, 1, d))
        self.layers = build_layers(cfg)
        self.ln_f = nn.LayerNorm(d)
        # 'kept+head': the head reads the RSSI token of every frame beside CLS
        self.head_rssi = (cfg.frame_offsets_of('rssi') if cfg.rssi_tokens == 'kept+head'
                          else [])
        self.head = nn.Linear(d * (1 + cfg.n_frames * len(self.head_rssi)), cfg.n_classes)
        # transformer and embeddings: nanoGPT-style N(0, 0.02); tokenizers keep PyTorch's
        # fan-in init so a single scalar (RSSI, GPS) is not scaled down to noise level
        for part in (self.temporal, self.frame_tokenizer.modality_embedding, self.layers,
                     self.head):
            part.apply(self._init_weights)
        self._freeze_for_method()

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def _freeze_for_method(self) -> None:
        """Ablation 1 freezes the tokenizers, ablation 2 the routers (Section IV-A)."""
        frozen = {'ablation1': ('frame_tokenizer',), 'ablation2': ('router',)}.get(
            self.cfg.method, ())
        for name, p in self.named_parameters():
            if any(part in name.split('.') for part in frozen):
                p.requires_grad_(False)

    # --- the two stages -------------------------------------------------------------------
    def tokenize(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, T, ...) per modality -> (B, T, tokens_per_frame, d)."""
        first = batch[self.cfg.modalities[0]]
        B, T = first.shape[:2]
        frames = {m: batch[m].flatten(0, 1) for m in self.cfg.modalities}   # (BT, ...)
        present = batch.get('present')
        present = None if present is None else present.flatten(0, 1)       # (BT, M)
        tokens = self.frame_tokenizer(frames, present)                       # (BT, n, d)
        return tokens.view(B, T, *tokens.shape[1:])

    def transform(self, frame_tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, n, d) frame tokens -> (B, N_L, d) after the last layer, CLS first."""
        B, T, n, d = frame_tokens.shape
        x = frame_tokens + self.temporal.weight[:T, None, :]                # (B, T, n, d)
        x = torch.cat([self.cls.expand(B, 1, d).to(x.dtype), x.reshape(B, T * n, d)], dim=1)
        size = None
        for layer in self.layers:
            x, size = layer(x, size)                                         # (B, N_l, d)
        return x

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N_L, d) -> (B, n_classes) logits from the CLS token (and, with
        ``rssi_tokens='kept+head'``, the RSSI tokens of all frames, oldest first)."""
        if not self.head_rssi:
            return self.head(self.ln_f(x[:, 0]))
        n = self.cfg.tokens_per_frame
        rows = [0] + [1 + t * n + off for t in range(self.cfg.n_frames) for off in self.head_rssi]
        return self.head(self.ln_f(x[:, rows]).flatten(1))

    def encode(self, frame_tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, n, d) frame tokens -> (B, n_classes) logits."""
        return self.readout(self.transform(frame_tokens))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encode(self.tokenize(batch))

    # --- keep ratios ---------------------------------------------------------------------
    def routed_layers(self) -> list[RoutedLayer]:
        return [layer for layer in self.layers if isinstance(layer, RoutedLayer)]

    def keep_ratios(self) -> torch.Tensor:
        """r_l of every routed layer (empty for ``mha``/``tome``)."""
        ratios = [layer.ratio() for layer in self.routed_layers()]
        return torch.stack(ratios) if ratios else torch.zeros(0)

    def keep_ratio_penalty(self) -> torch.Tensor:
        """The second term of Eq. 19: lambda (r_avg - gamma')^2 (zero when nothing is learned)."""
        learned = [l.ratio() for l in self.routed_layers() if l.learn_keep_ratio]
        if not learned:
            return self.cls.new_zeros(())
        r_avg = torch.stack(learned).mean()
        return self.cfg.keep_ratio_penalty * (r_avg - self.cfg.target_keep_ratio) ** 2

    def set_keep_override(self, scale: float | None) -> None:
        """Run time: K_l = round(N * scale * r_l) (deadline control); None restores r_l."""
        for layer in self.routed_layers():
            layer.keep_override = None
            if scale is not None:
                layer.keep_override = float(min(1.0, max(layer.min_keep_ratio,
                                                         scale * float(layer.ratio().detach()))))

    def tokens_per_layer(self, n_tokens: int | None = None) -> list[int]:
        """Tokens that enter attention in each layer at inference."""
        n = self.cfg.n_tokens if n_tokens is None else n_tokens
        counts = []
        for layer in self.layers:
            counts.append(layer.tokens_processed(n))
            if isinstance(layer, MergingLayer):
                n -= layer.merge_count
        return counts
