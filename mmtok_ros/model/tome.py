"""Token merging baseline (ToMe, bipartite soft matching), as pure functions.

Used by the ``tome`` method: after attention, each block merges ``r`` tokens of set A (even
positions) into their most similar token of set B (odd positions), averaging features weighted
by how many original tokens each one stands for. The CLS token is kept out of the matching by
the caller. Attention uses proportional attention (log size added to the logits).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def merge_count_schedule(n_tokens: int, n_layers: int, keep_fraction: float) -> list[int]:
    """A constant r per layer so that about ``keep_fraction`` of the tokens are left after the
    last layer, capped by what bipartite matching can merge (half of the tokens)."""
    r = int(round(n_tokens * (1.0 - keep_fraction) / max(1, n_layers)))
    schedule, n = [], n_tokens
    for _ in range(n_layers):
        step = max(0, min(r, n // 2))
        schedule.append(step)
        n -= step
    return schedule


def bipartite_merge(x: torch.Tensor, size: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge r tokens. x (B, N, d), size (B, N, 1) -> (B, N - r, d), (B, N - r, 1)."""
    if r <= 0:
        return x, size
    d = x.shape[-1]
    metric = F.normalize(x.float(), dim=-1)
    sim = metric[:, ::2] @ metric[:, 1::2].transpose(1, 2)       # (B, Na, Nb)
    best_sim, best_dst = sim.max(dim=-1)                          # (B, Na)
    order = best_sim.argsort(dim=-1, descending=True)             # (B, Na)
    src_idx, keep_idx = order[:, :r], order[:, r:]                # (B, r), (B, Na - r)
    dst_idx = best_dst.gather(1, src_idx)                         # (B, r)

    weighted = x * size
    a, b = weighted[:, ::2], weighted[:, 1::2]
    size_a, size_b = size[:, ::2], size[:, 1::2]
    expand = lambda idx, width: idx[..., None].expand(-1, -1, width)  # noqa: E731
    b = b.scatter_add(1, expand(dst_idx, d), a.gather(1, expand(src_idx, d)))
    size_b = size_b.scatter_add(1, expand(dst_idx, 1), size_a.gather(1, expand(src_idx, 1)))
    a_kept = a.gather(1, expand(keep_idx, d))
    size_a_kept = size_a.gather(1, expand(keep_idx, 1))
    merged_size = torch.cat([size_a_kept, size_b], dim=1)         # (B, N - r, 1)
    return torch.cat([a_kept, b], dim=1) / merged_size, merged_size
