"""The model's inference (``tokenize`` and ``encode``) cut into chunks that a
:class:`~.work_sharing.WorkSharingPool` shares between the inference thread and its helpers.

The same arithmetic as ``MultiModalTransformer.tokenize`` / ``encode`` in eval mode, in a
different order of rows: a frame's modalities are tokenized as separate chunks; in every
layer the router and LN1 + QKV run on row chunks of the tokens, and after the Top-K
selection, attention, projection, LN2 and the MLP run on chunks of the *query* rows (a row's
attention reads every key and value, the rest of the block is per row). Outputs equal the
model's within float rounding (``test/test_fast_path.py``: 1e-5). Layers of another kind
(ToMe's merging layers) run whole, as in the model.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model import routing
from ..model.tokenizers import as_token_rows
from ..model.transformer import Block, FullLayer, MultiModalTransformer, RoutedLayer
from .work_sharing import WorkSharingPool


def row_slices(n: int, chunks: int) -> list[slice]:
    """``chunks`` contiguous, nearly equal slices of ``range(n)`` (fewer when n is small)."""
    chunks = max(1, min(int(chunks), n))
    bounds = [round(i * n / chunks) for i in range(chunks + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


class ChunkedEncoder:
    """``tokenize(batch)`` and ``encode(frame_tokens)`` of ``model`` through ``pool``.

    ``attention_chunks``: query-row chunks per layer (the bulk of the work);
    ``row_chunks``: chunks of the router and of LN1 + QKV. FP32, inference only.
    """

    def __init__(self, model: MultiModalTransformer, pool: WorkSharingPool, *,
                 attention_chunks: int = 8, row_chunks: int = 2):
        self.model, self.pool = model, pool
        self.attention_chunks, self.row_chunks = int(attention_chunks), int(row_chunks)
        self._heads: dict[int, list] = {}

    def _rows(self, fn, n: int, chunks: int) -> torch.Tensor:
        parts = self.pool.map(fn, row_slices(n, chunks))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    # --- tokenize: FrameTokenizer.forward, one chunk per modality ------------------------
    def tokenize(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, T, ...) per modality -> (B, T, tokens_per_frame, d), as ``model.tokenize``."""
        ft, mods = self.model.frame_tokenizer, self.model.cfg.modalities
        B, T = batch[mods[0]].shape[:2]
        frames = {m: batch[m].flatten(0, 1) for m in mods}
        present = batch.get('present')
        present = None if present is None else present.flatten(0, 1)

        def modality(im: tuple[int, str]) -> torch.Tensor:
            i, m = im
            tokens = ft.tokenizers[m](as_token_rows(m, frames[m]))          # (BT, n_m, d)
            if m in ft.spatial:
                tokens = tokens + ft.spatial[m]
            if present is not None:
                keep = present[:, i].to(tokens.dtype)[:, None, None]
                tokens = tokens * keep + ft.missing[i] * (1 - keep)
            return tokens + ft.modality_embedding.weight[i]

        tokens = torch.cat(self.pool.map(modality, list(enumerate(ft.modalities))), dim=1)
        return tokens.view(B, T, *tokens.shape[1:])

    # --- encode --------------------------------------------------------------------------
    def _head_weights(self, attn) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Rows of ``attn.qkv`` that make head j's q, k and v, per head (cached)."""
        key = id(attn)
        if key not in self._heads:
            h, hd = attn.n_heads, attn.head_dim
            w, b = attn.qkv.weight, attn.qkv.bias
            rows = [torch.cat([torch.arange(i * h * hd + j * hd, i * h * hd + (j + 1) * hd)
                               for i in range(3)]) for j in range(h)]
            self._heads[key] = [(w[r].contiguous(), None if b is None else b[r].contiguous())
                                for r in rows]
        return self._heads[key]

    def block(self, block: Block, xs: torch.Tensor, *, residual: bool) -> torch.Tensor:
        """``block(xs)`` (or ``block(xs) - xs``, the routed layers' E_l) for (B, K, d)."""
        B, K, _ = xs.shape
        attn = block.attn
        a = block.ln1(xs)

        def head(wb) -> torch.Tensor:                  # one head's QKV and attention
            qkv = F.linear(a, *wb).view(B, K, 3, 1, attn.head_dim).permute(2, 0, 3, 1, 4)
            return F.scaled_dot_product_attention(*qkv.unbind(0))           # (B, 1, K, hd)

        y = torch.cat(self.pool.map(head, self._head_weights(attn)), dim=1)  # (B, h, K, hd)
        y = y.transpose(1, 2).reshape(B, K, -1)

        def rows(s: slice) -> torch.Tensor:
            x = xs[:, s]
            z = x + attn.proj(y[:, s])
            z = z + block.mlp(block.ln2(z))
            return z - x if residual else z

        return self._rows(rows, K, self.attention_chunks)

    def routed(self, layer: RoutedLayer, x: torch.Tensor) -> torch.Tensor:
        """``RoutedLayer.forward`` at inference (Eq. 16-17)."""
        n = x.shape[1]
        scores = self._rows(lambda s: layer.router(x[:, s]), n, self.row_chunks)   # (B, N)
        idx = layer.select(scores, layer.tokens_processed(n))                     # (B, K)
        gate = torch.sigmoid(scores.float().gather(1, idx)).to(x.dtype)
        delta = self.block(layer.block, routing.gather_tokens(x, idx), residual=True)
        return routing.scatter_update(x, idx, gate[..., None] * delta)

    def transform(self, frame_tokens: torch.Tensor) -> torch.Tensor:
        """As ``model.transform``: (B, T, n, d) -> (B, N_L, d)."""
        m = self.model
        B, T, n, d = frame_tokens.shape
        x = frame_tokens + m.temporal.weight[:T, None, :]
        x = torch.cat([m.cls.expand(B, 1, d).to(x.dtype), x.reshape(B, T * n, d)], dim=1)
        size = None
        for layer in m.layers:
            if isinstance(layer, RoutedLayer) and not layer.training:
                x = self.routed(layer, x)
            elif isinstance(layer, FullLayer):
                x = self.block(layer.block, x, residual=False)
            else:
                x, size = layer(x, size)
        return x

    def encode(self, frame_tokens: torch.Tensor) -> torch.Tensor:
        return self.model.readout(self.transform(frame_tokens))


__all__ = ['ChunkedEncoder', 'row_slices']
