"""Token routing as pure functions (Section III-C/D): Top-K selection, gather, scatter.

No module state here: ``transformer.py`` owns the router and keep-ratio parameters and calls
these. The CLS token (index 0) is always selected, and so are the ``kept`` tokens a layer
names (the RSSI tokens with ``rssi_tokens='kept'``), right after CLS.
"""
from __future__ import annotations

import math

import torch


def keep_count(n_tokens: int, keep_ratio: float) -> int:
    """Inference K_l = round(N r_l), at least 1 (the CLS token) and at most N."""
    return max(1, min(n_tokens, int(round(n_tokens * float(keep_ratio)))))


def floor_ceil_counts(n_tokens: int, keep_ratio: torch.Tensor) -> tuple[int, int]:
    """K_down = floor(N r), K_up = K_down + 1 for Eq. 18, both inside [1, N].

    K_up is K_down + 1 even when N r is an integer, so the two weights of Eq. 18 always sum
    to one and r always gets a gradient.
    """
    return bracket_counts(n_tokens, keep_ratio, 1)


def bracket_counts(n_tokens: int, keep_ratio: torch.Tensor, delta: int) -> tuple[int, int]:
    """(K_lo, K_hi) = (floor(N r) - delta + 1, floor(N r) + delta), cut to [1, N].

    delta = 1 is Eq. 18's floor/ceil pair. N r always lies inside [K_lo, K_hi] (for N r >= 1),
    so the interpolation weights of ``RoutedLayer`` stay in [0, 1] and sum to one.
    """
    if delta < 1:
        raise ValueError(f'the bracket half-width must be >= 1, got {delta}')
    c = int(math.floor(float(keep_ratio.detach()) * n_tokens))
    c = max(1, min(n_tokens - 1, c))
    return max(1, c - delta + 1), min(n_tokens, c + delta)


def top_k_indices(scores: torch.Tensor, k: int, kept: torch.Tensor | None = None) -> torch.Tensor:
    """(B, N) router scores -> (B, k) indices of the k best tokens, CLS (index 0) first, then
    the ``kept`` token indices (1-D), then the rest by score, best first, so that a prefix of
    the result is the Top-k' for any k' < k."""
    forced = scores.detach().clone()
    if kept is not None and len(kept):
        forced[:, kept] = torch.finfo(forced.dtype).max   # after CLS, before any scored token
    forced[:, 0] = float('inf')  # CLS is always processed
    return forced.topk(k, dim=1, sorted=True).indices


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (B, N, d), idx (B, K) -> (B, K, d)."""
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1]))


def scatter_update(x: torch.Tensor, idx: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
    """x (B, N, d) + update (B, K, d) at rows idx (B, K); other rows pass through unchanged."""
    return x.scatter_add(1, idx[..., None].expand(-1, -1, x.shape[-1]), update)


def route(x: torch.Tensor, scores: torch.Tensor, idx: torch.Tensor, residual_branch) -> torch.Tensor:
    """Eq. 17: X_i + s_i E_l(X_i) for the selected tokens, X_i for the rest.

    ``residual_branch`` maps (B, K, d) -> (B, K, d), the block's output minus its input, so only
    K tokens enter attention and the MLP. The gate s_i = sigmoid(score_i) is computed in FP32
    (unnormalised router logits overflow in FP16) and gives the router its gradient.
    """
    gate = torch.sigmoid(scores.float().gather(1, idx)).to(x.dtype)   # (B, K)
    delta = residual_branch(gather_tokens(x, idx))                    # (B, K, d)
    return scatter_update(x, idx, gate[..., None] * delta)            # (B, N, d)
