"""StreamingPredictor: each frame is tokenized once, and the cached result equals recomputing
the whole window (the node relies on this to keep per-window work to one frame)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmtok_ros.data.window import Window
from mmtok_ros.model import MultiModalTransformer, preset
from mmtok_ros.runtime.predictor import StreamingPredictor

HW = (32, 32)


def frames(cfg, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        arrays = {'image': rng.random((3, *HW), dtype=np.float32),
                  'lidar': rng.random((3, *HW), dtype=np.float32),
                  'rssi': rng.standard_normal(cfg.rssi_dim).astype(np.float32)}
        present = np.array([True, k % 4 != 2, True])   # a frame now and then without LiDAR
        if not present[1]:
            arrays['lidar'] = np.zeros_like(arrays['lidar'])
        out.append((1_000_000_000 + k * 300_000_000, arrays, present))
    return out


def window_at(cfg, stream, end: int) -> Window:
    part = stream[end - cfg.n_frames + 1:end + 1]
    arrays = {m: np.stack([a[m] for _, a, _ in part]) for m in cfg.modalities}
    arrays['present'] = np.stack([p for _, _, p in part])
    stamps = np.array([s for s, _, _ in part], dtype=np.int64)
    return Window(arrays, stamps, int(stamps[-1]))


@pytest.mark.parametrize('method,rssi_tokens', [('routed', 'routed'), ('mha', 'routed'),
                                                ('routed', 'kept+head')])
def test_cached_stream_equals_full_recompute(method, rssi_tokens):
    torch.manual_seed(0)
    cfg = preset('rsu-cpu', image_hw=HW, bev_hw=HW, method=method, rssi_tokens=rssi_tokens)
    model = MultiModalTransformer(cfg).eval()
    cached = StreamingPredictor(model)
    fresh = StreamingPredictor(model)
    stream = frames(cfg, 12)
    tokenized = []
    for end in range(cfg.n_frames - 1, len(stream)):
        window = window_at(cfg, stream, end)
        a = cached.predict(window)                   # reuses the older frames' tokens
        b = fresh.predict(window, use_cache=False)   # tokenizes all five frames again
        assert abs(a.p_blocked - b.p_blocked) <= 1e-5
        tokenized.append(a.frames_tokenized)
        # the model call itself: the whole window in one forward pass
        batch = {m: torch.from_numpy(window.arrays[m])[None] for m in cfg.modalities}
        batch['present'] = torch.from_numpy(window.arrays['present'])[None]
        with torch.no_grad():
            p_full = float(torch.sigmoid(model(batch)[0, 0]))
        assert abs(a.p_blocked - p_full) <= 1e-5
    assert tokenized[0] == cfg.n_frames and set(tokenized[1:]) == {1}   # each frame once
    assert cached.cache_misses == len(stream)


def test_clear_forgets_frames_after_a_time_jump():
    cfg = preset('rsu-cpu', image_hw=HW, bev_hw=HW)
    predictor = StreamingPredictor(MultiModalTransformer(cfg).eval())
    stream = frames(cfg, 6)
    predictor.predict(window_at(cfg, stream, 4))
    predictor.clear()
    assert predictor.predict(window_at(cfg, stream, 5)).frames_tokenized == cfg.n_frames
