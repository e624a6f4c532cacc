"""Streaming inference: each frame is tokenized once, on arrival; a window reuses the cached
tokens of its older frames and only runs the transformer.

Frame tokens carry no temporal embedding (``MultiModalTransformer.tokenize``), so a frame's
tokens are the same whatever its position in the window; ``encode`` adds the position.

``helpers`` > 0 (CPU, FP32): tokenizing and the transformer are shared, chunk by chunk, with
that many helper threads (``work_sharing.WorkSharingPool``, ``chunked_encode``); the outputs
equal the one-thread path's within float rounding.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..constants import DEFAULT_DECISION_THRESHOLD
from ..data.window import Window
from ..devices import synchronize
from ..errors import UserInputError
from ..model import MultiModalTransformer
from ..model.compress import autocast_for
from .token_cache import FrameTokenCache

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    newest_stamp_ns: int
    p_blocked: float          # probability that the serving link is blocked at the next frame
    blocked: bool             # p_blocked >= threshold
    inference_ms: float       # tokenizing new frames + transformer + head
    frames_tokenized: int     # frames not found in the cache
    tokens_per_layer: tuple[int, ...]


class StreamingPredictor:
    """Window -> :class:`Prediction`, with a per-frame token cache keyed by frame stamp."""

    def __init__(self, model: MultiModalTransformer, *, device: str | torch.device = 'cpu',
                 precision: str = 'fp32', threshold: float = DEFAULT_DECISION_THRESHOLD,
                 cache_frames: int | None = None, helpers: int = 0):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.precision = precision
        self.threshold = threshold
        self.modalities = tuple(model.cfg.modalities)
        self.cache = FrameTokenCache(cache_frames or 2 * model.cfg.n_frames)
        self.helpers = int(helpers) if self.device.type == 'cpu' and precision == 'fp32' else 0
        self.pool = self._chunked = None
        if self.helpers:
            from .chunked_encode import ChunkedEncoder
            from .work_sharing import WorkSharingPool
            self.pool = WorkSharingPool(self.helpers)
            self._chunked = ChunkedEncoder(self.model, self.pool,
                                           attention_chunks=4 * (self.helpers + 1),
                                           row_chunks=self.helpers + 1)

    @property
    def cache_hits(self) -> int:
        return self.cache.hits

    @property
    def cache_misses(self) -> int:
        return self.cache.misses

    def _frame_batch(self, window: Window, ts: list[int]) -> dict[str, torch.Tensor]:
        """Frames ``ts`` of ``window`` as a (1, len(ts), ...) model batch."""
        out = {m: torch.from_numpy(np.ascontiguousarray(window.arrays[m][ts]))[None].to(self.device)
               for m in self.modalities}
        out['present'] = torch.from_numpy(window.arrays['present'][ts])[None].to(self.device)
        return out

    @torch.no_grad()
    def predict(self, window: Window, *, use_cache: bool = True) -> Prediction:
        synchronize(self.device)
        start = time.perf_counter()
        run = self._chunked or self.model
        with autocast_for(self.device, self.precision):
            def tokenize(ts: list[int]) -> torch.Tensor:
                return run.tokenize(self._frame_batch(window, ts))[0]          # (m, n, d)
            tokens, n_new = self.cache.window_tokens(window, tokenize, use_cache=use_cache)
            logit = run.encode(torch.stack(tokens)[None])[0, 0].float()        # (T, n, d) -> ()
        p = float(torch.sigmoid(logit))
        synchronize(self.device)
        inference_ms = (time.perf_counter() - start) * 1e3
        return Prediction(int(window.newest_stamp_ns), p, p >= self.threshold, inference_ms,
                          n_new, tuple(self.model.tokens_per_layer()))

    def clear(self) -> None:
        """Forget cached frames (time jumped back: old stamps may come again)."""
        self.cache.clear()

    def close(self) -> None:
        """End the helper threads, if any."""
        if self.pool is not None:
            self.pool.close()

    def warm_up(self, window: Window, repeats: int = 2) -> float:
        """Run ``window`` uncached a few times (kernel selection, allocator); returns the last ms."""
        ms = 0.0
        for _ in range(repeats):
            ms = self.predict(window, use_cache=False).inference_ms
        self.clear()
        return ms


class DeadlineController:
    """Keeps inference under ``deadline_ms`` by scaling every layer's K (beyond the paper).

    After ``patience`` consecutive windows over the deadline the scale drops by ``step``;
    after ``patience`` consecutive windows under ``headroom`` x deadline it rises by ``step``,
    never outside [min_scale, max_scale]. Returns the new scale when it changed, else None.
    """

    def __init__(self, deadline_ms: float, *, min_scale: float = 0.5, max_scale: float = 1.0,
                 step: float = 0.1, patience: int = 3, headroom: float = 0.6):
        if not 0 < min_scale <= max_scale:
            raise UserInputError(f'need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}')
        self.deadline_ms, self.min_scale, self.max_scale = deadline_ms, min_scale, max_scale
        self.step, self.patience, self.headroom = step, patience, headroom
        self.scale = max_scale
        self._over = self._under = 0
        self.changes = 0

    def update(self, inference_ms: float) -> float | None:
        over = inference_ms > self.deadline_ms
        under = inference_ms < self.headroom * self.deadline_ms
        self._over = self._over + 1 if over else 0
        self._under = self._under + 1 if under else 0
        new = self.scale
        if self._over >= self.patience:
            new = max(self.min_scale, round(self.scale - self.step, 6))
        elif self._under >= self.patience:
            new = min(self.max_scale, round(self.scale + self.step, 6))
        if new == self.scale:
            return None
        self.scale, self._over, self._under = new, 0, 0
        self.changes += 1
        return new
