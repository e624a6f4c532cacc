"""The node's per-frame work under CUDA graphs, timed and checked against eager: used by the
``streaming`` part (K fixed once) and by the ``capture`` probe (the routed model as it is).
On a CPU the same static buffers run without capture, so a dry run checks all but the
capture itself."""
from __future__ import annotations

import contextlib
import statistics
import time

from .measures import sync


def graph_autocast(device, precision: str):
    """``model.compress.autocast_for`` without autocast's weight-cast cache: casts made while
    a CUDA graph is captured must live in the graph's memory pool (PyTorch's CUDA-graph notes:
    autocast with graphs needs ``cache_enabled=False``)."""
    import torch
    if precision == 'fp32':
        return contextlib.nullcontext()
    dtype = {'fp16': torch.float16, 'bf16': torch.bfloat16}[precision]
    return torch.autocast(device.type, dtype=dtype, cache_enabled=False)


class GraphedFrames:
    """The node's per-frame work under two CUDA graphs: the tokenizer on one frame, and the
    transformer + head on the window's tokens (a shift register of the last T frames).
    ``step(frame)`` returns p_blocked of the window that ends with ``frame``.

    ``capture=False`` (and always on a CPU) runs the same static buffers eagerly."""

    def __init__(self, model, device, precision: str = 'fp32', capture: bool = True):
        import torch

        from ...model.preprocess import frame_shapes
        cfg = model.cfg
        self.model, self.device, self.precision = model, device, precision
        self.captured = capture and device.type == 'cuda'
        self.frame = {m: torch.zeros((1, 1, *s), device=device)
                      for m, s in frame_shapes(cfg).items()}
        self.frame['present'] = torch.ones((1, 1, len(cfg.modalities)), dtype=torch.bool,
                                           device=device)
        tok = self._tokenize()                                              # (1, 1, n, d)
        self.tokens = torch.zeros((1, cfg.n_frames, *tok.shape[2:]), dtype=tok.dtype,
                                  device=device)
        if not self.captured:
            return
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):                       # warm up on a side stream (cuBLAS, cuDNN)
                self._tokenize()
                self._encode()
        torch.cuda.current_stream(device).wait_stream(side)
        self.g_tok, self.g_enc = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.g_tok):
            self.tok_out = self._tokenize()
        with torch.cuda.graph(self.g_enc):
            self.logits = self._encode()

    def _tokenize(self):
        import torch
        with torch.no_grad(), graph_autocast(self.device, self.precision):
            return self.model.tokenize(self.frame)

    def _encode(self):
        import torch
        with torch.no_grad(), graph_autocast(self.device, self.precision):
            return self.model.encode(self.tokens)

    def step(self, frame: dict) -> float:
        import torch
        for m, a in frame.items():
            self.frame[m].copy_(torch.from_numpy(a)[None, None])
        if self.captured:
            self.g_tok.replay()
            tok = self.tok_out
        else:
            tok = self._tokenize()
        self.tokens[:, :-1].copy_(self.tokens[:, 1:].clone())
        self.tokens[:, -1].copy_(tok[:, 0])
        if self.captured:
            self.g_enc.replay()
            logits = self.logits
        else:
            logits = self._encode()
        return float(torch.sigmoid(logits[0, 0].float()))


def random_frames(cfg, count: int, seed: int = 0):
    """``count`` random frames of the model's shapes, all modalities present (numpy)."""
    import numpy as np

    from ...model.flops import dummy_window
    arrays = {m: v[0].numpy() for m, v in dummy_window(cfg.with_(n_frames=count),
                                                          seed=seed).items()}
    present = np.ones((count, len(cfg.modalities)), bool)
    return [{**{m: arrays[m][k] for m in cfg.modalities}, 'present': present[k]}
            for k in range(count)]


def time_graphed(model, device, precision, reps, warmup, capture: bool = True) -> dict:
    """CUDA graphs: per-frame p50 and max |p - eager p| on the same random windows
    (``capture=False``: the same static buffers without graphs)."""
    import numpy as np
    import torch

    from ...timing import percentile
    cfg = model.cfg
    tic = time.perf_counter()
    runner = GraphedFrames(model, device, precision, capture=capture)
    capture_s = time.perf_counter() - tic
    frames = random_frames(cfg, cfg.n_frames + warmup + reps)
    ms, diffs = [], []
    for k, frame in enumerate(frames):
        sync(device)
        t = time.perf_counter()
        p = runner.step(frame)
        sync(device)
        if k >= cfg.n_frames - 1:
            if k >= cfg.n_frames - 1 + warmup:
                ms.append((time.perf_counter() - t) * 1e3)
            if len(diffs) < min(5, reps):           # the same window eagerly
                win = frames[k - cfg.n_frames + 1:k + 1]
                batch = {m: torch.from_numpy(np.stack([f[m] for f in win]))[None].to(device)
                         for m in (*cfg.modalities, 'present')}
                with torch.no_grad(), graph_autocast(device, precision):
                    ref = float(torch.sigmoid(model(batch)[0, 0].float()))
                diffs.append(abs(ref - p))
    return {'median_ms': statistics.median(ms), 'p90_ms': percentile(ms, 90), 'reps': reps,
            'captured': runner.captured, 'capture_s': round(capture_s, 2),
            'max_abs_p_diff_vs_eager': max(diffs)}
