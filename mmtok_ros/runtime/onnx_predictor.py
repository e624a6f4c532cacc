"""Streaming inference on the graphs ``mmtok export`` writes, under onnxruntime.

The same interface as :class:`~mmtok_ros.runtime.predictor.StreamingPredictor` (``predict``,
``clear``, ``warm_up``, ``threshold``, ``cache_hits``/``cache_misses``, ``model``), and the
same per-frame token cache: the tokenizer graph runs on the frames not yet cached, the
encoder graph on the whole window of tokens.

K is fixed inside an exported graph. ``model.set_keep_override(scale)`` (what the deadline
controller calls) therefore switches between the encoder graphs exported at different keep
scales (``mmtok export --extra-keep-scales``): it takes the largest exported scale at or
below the one asked for (never more tokens than the controller wants), or the smallest
exported one when none is that low; with one graph, K never changes and ``keep_scale``
says so. ``model.keep_scale`` is the scale actually running.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from ..constants import DEFAULT_DECISION_THRESHOLD
from ..data.window import Window
from ..model.checkpoint import ModelFileError
from ..model.config import ModelConfig
from .predictor import Prediction
from .token_cache import FrameTokenCache

_log = logging.getLogger(__name__)

FORMAT = 'mmtok_ros.onnx/1'          # mmtok_ros.model.export.FORMAT (that module imports torch)
DEFAULT_PROVIDERS = ('CPUExecutionProvider',)


class OnnxModelError(ModelFileError):
    """An exported file is missing, unreadable, or not an ``mmtok export`` graph."""


def _session(path: Path, providers: list[str], threads: int | None, spin: bool = False):
    import onnxruntime as ort
    if not path.is_file():
        raise OnnxModelError(f'ONNX file not found: {path} (write it with mmtok export)')
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    # idle intra-op threads busy-wait by default: CPU taken from the node's other threads
    # (and from torch when both run in one process, as in mmtok bench --backend)
    opts.add_session_config_entry('session.intra_op.allow_spinning', '1' if spin else '0')
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types per failure
        first = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
        raise OnnxModelError(f'cannot load ONNX file {path}: corrupt or not an ONNX model '
                             f'({type(err).__name__}: {first})') from None


def _metadata(session, path: Path, graph: str) -> dict[str, str]:
    meta = {k[len('mmtok.'):]: v for k, v in
            session.get_modelmeta().custom_metadata_map.items() if k.startswith('mmtok.')}
    if meta.get('format') != FORMAT or meta.get('graph') != graph:
        raise OnnxModelError(f'{path} is not an mmtok export {graph} graph (metadata format '
                             f'{meta.get("format")!r}, graph {meta.get("graph")!r}; expected '
                             f'{FORMAT!r}, {graph!r})')
    return meta


def choose_providers(requested) -> tuple[list[str], list[str]]:
    """(providers to ask onnxruntime for, warnings): the requested ones this onnxruntime
    build has, in order, always ending with the CPU provider as the fallback."""
    import onnxruntime as ort
    available = set(ort.get_available_providers())
    wanted = [requested] if isinstance(requested, str) else list(requested or DEFAULT_PROVIDERS)
    chosen, warnings = [], []
    for name in wanted:
        if name in available:
            chosen.append(name)
        else:
            warnings.append(f'onnxruntime execution provider {name} is not available in this '
                            f'build (have {sorted(available)}); falling back')
    if 'CPUExecutionProvider' not in chosen:
        chosen.append('CPUExecutionProvider')
    return chosen, warnings


class ExportedModel:
    """What the node asks of ``predictor.model``, for exported graphs: ``cfg``,
    ``tokens_per_layer()``, ``routed_layers()``, ``set_keep_override(scale)``,
    ``decision_threshold``."""

    def __init__(self, cfg: ModelConfig, graphs: dict[float, tuple], primary: float,
                 layer_kinds: list[str], decision_threshold: float | None):
        self.cfg = cfg
        self._graphs = graphs            # keep scale -> (session, tokens_per_layer, path)
        self.primary_scale = primary
        self.keep_scale = primary
        self.layer_kinds = layer_kinds
        self.decision_threshold = decision_threshold

    @property
    def keep_scales(self) -> list[float]:
        return sorted(self._graphs)

    @property
    def session(self):
        return self._graphs[self.keep_scale][0]

    def tokens_per_layer(self, n_tokens: int | None = None) -> list[int]:
        if n_tokens not in (None, self.cfg.n_tokens):
            raise ValueError(f'an exported graph has a fixed N={self.cfg.n_tokens}')
        return list(self._graphs[self.keep_scale][1])

    def routed_layers(self) -> list[int]:
        """Indices of the routed layers (the torch model returns the layers themselves)."""
        return [i for i, kind in enumerate(self.layer_kinds) if kind == 'routed']

    def set_keep_override(self, scale: float | None) -> float:
        """Switch to the exported graph nearest below ``scale`` (None: the primary graph);
        returns the keep scale now running."""
        if scale is None:
            self.keep_scale = self.primary_scale
        else:
            below = [s for s in self._graphs if s <= float(scale) + 1e-9]
            self.keep_scale = max(below) if below else min(self._graphs)
        return self.keep_scale


class OnnxStreamingPredictor:
    """Window -> :class:`Prediction` on onnxruntime, with the per-frame token cache.

    ``encoder_path``: the ``FILE.onnx`` of ``mmtok export``; its tokenizer graph and the
    encoders of other keep scales are found from its metadata, next to it. ``providers``:
    onnxruntime execution providers in order of preference (default CPU); unavailable ones
    are dropped and listed in ``warnings`` (also logged). ``threshold`` None: the decision
    threshold recorded at export, else ``DEFAULT_DECISION_THRESHOLD``. ``threads``:
    onnxruntime's intra-op threads (default: its own choice, one per physical core); ``spin``:
    let idle threads busy-wait (off: the node shares the CPU).
    """

    def __init__(self, encoder_path: str | os.PathLike, *, providers=None,
                 threshold: float | None = None, cache_frames: int | None = None,
                 threads: int | None = None, spin: bool = False):
        path = Path(encoder_path)
        self.providers, self.warnings = choose_providers(providers)
        primary_session = _session(path, self.providers, threads, spin)
        meta = _metadata(primary_session, path, 'encoder')
        try:
            cfg = ModelConfig.from_dict(json.loads(meta['config']))
            scale_files = {float(k): v for k, v in json.loads(meta['scale_files']).items()}
            primary = float(meta['keep_scale'])
            kinds = json.loads(meta['layer_kinds'])
            tok_name = meta['tokenizer_file']
        except (KeyError, TypeError, ValueError) as err:
            raise OnnxModelError(f'{path}: incomplete mmtok export metadata ({err})') from None
        graphs = {}
        for scale, name in scale_files.items():
            p = path if scale == primary else path.with_name(name)
            session = primary_session if scale == primary else _session(
                p, self.providers, threads, spin)
            m = _metadata(session, p, 'encoder')
            graphs[scale] = (session, tuple(json.loads(m['tokens_per_layer'])), p)
        self.tokenizer_session = _session(path.with_name(tok_name), self.providers, threads,
                                          spin)
        _metadata(self.tokenizer_session, path.with_name(tok_name), 'tokenizer')
        used = self.tokenizer_session.get_providers()
        if used[0] != self.providers[0]:
            self.warnings.append(f'onnxruntime runs on {used[0]}, not {self.providers[0]} '
                                 '(the provider failed to initialise)')
        for w in self.warnings:
            _log.warning(w)
        recorded = meta.get('decision_threshold') or None
        self.model = ExportedModel(cfg, graphs, primary, kinds,
                                   None if recorded is None else float(recorded))
        self.path = path
        self.threshold = (threshold if threshold is not None
                          else self.model.decision_threshold or DEFAULT_DECISION_THRESHOLD)
        self.modalities = tuple(cfg.modalities)
        self.device = used[0]
        self.cache = FrameTokenCache(cache_frames or 2 * cfg.n_frames)

    @property
    def cache_hits(self) -> int:
        return self.cache.hits

    @property
    def cache_misses(self) -> int:
        return self.cache.misses

    def _tokenize(self, window: Window, ts: list[int]) -> np.ndarray:
        """Frames ``ts`` of ``window`` -> (len(ts), n, d) tokens."""
        feed = {m: np.ascontiguousarray(window.arrays[m][ts], dtype=np.float32)
                for m in self.modalities}
        feed['present'] = np.ascontiguousarray(window.arrays['present'][ts], dtype=bool)
        return self.tokenizer_session.run(None, feed)[0]

    def predict(self, window: Window, *, use_cache: bool = True) -> Prediction:
        T = len(window.stamps_ns)
        if T != self.model.cfg.n_frames:
            raise ValueError(f'the exported graph takes {self.model.cfg.n_frames}-frame '
                             f'windows, got {T} frames')
        start = time.perf_counter()
        tokens, n_new = self.cache.window_tokens(
            window, lambda ts: self._tokenize(window, ts), use_cache=use_cache)   # (m, n, d)
        logits = self.model.session.run(None, {'frame_tokens': np.stack(tokens)[None]})[0]
        logit = float(logits[0, 0])                                        # (T, n, d) -> ()
        p = float(1.0 / (1.0 + np.exp(-logit)))
        inference_ms = (time.perf_counter() - start) * 1e3
        return Prediction(int(window.newest_stamp_ns), p, p >= self.threshold, inference_ms,
                          n_new, tuple(self.model.tokens_per_layer()))

    def clear(self) -> None:
        """Forget cached frames (time jumped back: old stamps may come again)."""
        self.cache.clear()

    def warm_up(self, window: Window, repeats: int = 2) -> float:
        """Run ``window`` uncached a few times (memory arenas, kernel choice) on every exported
        keep scale; returns the last ms of the running one."""
        running = self.model.keep_scale
        for scale in self.model.keep_scales:
            if scale != running:
                self.model.set_keep_override(scale)
                self.predict(window, use_cache=False)
        self.model.keep_scale = running
        ms = 0.0
        for _ in range(repeats):
            ms = self.predict(window, use_cache=False).inference_ms
        self.clear()
        return ms


__all__ = ['ExportedModel', 'OnnxModelError', 'OnnxStreamingPredictor', 'choose_providers']
