"""The per-frame token cache both streaming predictors (torch, onnxruntime) share.

Frame tokens carry no temporal embedding, so a frame's tokens are the same in every window
that holds it: a frame is tokenized once, on arrival, and its tokens reused by the next
``n_frames - 1`` windows. A frame is keyed by its stamp and which modalities it has (a
partial frame and the full frame of the same stamp are different inputs).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Sequence

from ..data.window import Window


def frame_key(window: Window, t: int) -> tuple:
    """(stamp ns, present mask) of frame ``t`` of ``window``."""
    return int(window.stamps_ns[t]), tuple(bool(p) for p in window.arrays['present'][t])


class FrameTokenCache:
    """Least-recently-used tokens of the last ``capacity`` frames, with hit/miss counts."""

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self._tokens: OrderedDict[tuple, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def window_tokens(self, window: Window, tokenize: Callable[[list[int]], Sequence[Any]], *,
                      use_cache: bool = True) -> tuple[list[Any], int]:
        """Every frame's tokens, oldest first, and how many frames ``tokenize`` had to run
        on (``tokenize(frame indices) -> one token array per index``)."""
        keys = [frame_key(window, t) for t in range(len(window.stamps_ns))]
        missing = [t for t, k in enumerate(keys) if not use_cache or k not in self._tokens]
        fresh = dict(zip((keys[t] for t in missing), tokenize(missing))) if missing else {}
        tokens = [fresh[k] if k in fresh else self._tokens[k] for k in keys]
        if use_cache:
            self._tokens.update(fresh)
            for k in keys:
                self._tokens.move_to_end(k)
            while len(self._tokens) > self.capacity:
                self._tokens.popitem(last=False)
            self.hits += len(keys) - len(missing)
            self.misses += len(missing)
        return tokens, len(missing)

    def clear(self) -> None:
        """Forget every frame (time jumped back: old stamps may come again)."""
        self._tokens.clear()

    def __len__(self) -> int:
        return len(self._tokens)


__all__ = ['FrameTokenCache', 'frame_key']
