"""The node's CPU paths: work sharing (``torch_threads: 0``) gives the
one-thread path's outputs within float rounding, a helper that does not come back never
holds a window up, and int8 linear layers (measured by ``mmtok bench --heldout``, not a node
backend) give the FP32 decisions within a stated tolerance."""
import threading
import time

import numpy as np
import pytest
import torch

from model_helpers import tiny
from model_helpers import window as model_window
from mmtok_ros.errors import UserInputError
from mmtok_ros.model import MultiModalTransformer
from mmtok_ros.model.checkpoint import save_model
from mmtok_ros.model.quantize import Int8Linear, quantize_int8
from mmtok_ros.runtime.backends import load_predictor
from mmtok_ros.runtime.chunked_encode import ChunkedEncoder, row_slices
from mmtok_ros.runtime.predictor import StreamingPredictor
from mmtok_ros.runtime.work_sharing import WorkSharingPool, auto_helpers
from mmtok_ros.data.window import Window
from mmtok_ros.model.preprocess import frame_shapes

INT8_MAX_ABS_DP = 0.05     # the stated tolerance of the int8 path on the tiny model
EXACT_ATOL = 1e-5          # work sharing: the same arithmetic, rows in another order


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread, as the node: two are slow whenever the machine is busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model(method='routed', seed=0, **overrides):
    torch.manual_seed(seed)
    model = MultiModalTransformer(tiny(method, **overrides)).eval()
    with torch.no_grad():           # spread p over (0, 1), as a trained head does
        model.head.weight.mul_(60.0)
    return model


def _windows(cfg, n, seed=0):
    """``n`` windows of random frames of random brightness, each one frame newer than the
    last (one frame has no LiDAR), stamped 300 ms apart."""
    rng = np.random.default_rng(seed)
    total, T = n + cfg.n_frames - 1, cfg.n_frames
    frames = {m: rng.random((total, *shape), dtype=np.float32)
              * rng.uniform(0, 3, (total,) + (1,) * len(shape)).astype(np.float32)
              for m, shape in frame_shapes(cfg).items()}
    present = np.ones((total, len(cfg.modalities)), bool)
    present[3, cfg.modalities.index('lidar')] = False
    stamps = (np.arange(total, dtype=np.int64) + 1) * 300_000_000
    return [Window({**{m: a[k:k + T] for m, a in frames.items()}, 'present': present[k:k + T]},
                   stamps[k:k + T], int(stamps[k + T - 1])) for k in range(n)]


def _ps(predictor, cfg, windows=12):
    return np.array([predictor.predict(w).p_blocked for w in _windows(cfg, windows)])


def test_row_slices_cover_every_row_once():
    for n, chunks in ((10, 3), (2, 8), (2566, 8), (1, 1)):
        rows = [i for s in row_slices(n, chunks) for i in range(n)[s]]
        assert rows == list(range(n)) and len(row_slices(n, chunks)) == min(n, chunks)


@pytest.mark.parametrize('method', ['routed', 'mha', 'tome'])
def test_work_sharing_equals_the_model(method):
    model = _model(method, rssi_tokens='kept' if method == 'routed' else 'routed')
    batch = model_window(model.cfg, batch=1)
    pool = WorkSharingPool(1)
    try:
        chunked = ChunkedEncoder(model, pool, attention_chunks=5, row_chunks=3)
        with torch.no_grad():
            ref_tokens, tokens = model.tokenize(batch), chunked.tokenize(batch)
            ref, out = model.encode(ref_tokens), chunked.encode(ref_tokens)
        torch.testing.assert_close(tokens, ref_tokens, atol=EXACT_ATOL, rtol=0)
        torch.testing.assert_close(out, ref, atol=EXACT_ATOL, rtol=0)
        assert pool.stats['steps'] > 0
    finally:
        pool.close()


def test_streaming_with_a_helper_gives_the_same_probabilities():
    model = _model()
    ref = _ps(StreamingPredictor(model), model.cfg)
    shared = StreamingPredictor(model, helpers=1)
    try:
        out = _ps(shared, model.cfg)
    finally:
        shared.close()
    assert np.abs(out - ref).max() <= EXACT_ATOL
    assert np.ptp(ref) > 0.1                                 # the windows differ


def test_int8_decisions_equal_fp32_within_tolerance():
    model = _model()
    ref = _ps(StreamingPredictor(model), model.cfg, windows=24)
    quantize_int8(model)
    assert sum(isinstance(m, Int8Linear) for m in model.modules()) == 4 * model.cfg.n_layers
    out = _ps(StreamingPredictor(model), model.cfg, windows=24)
    dp = np.abs(out - ref)
    assert 0 < dp.max() <= INT8_MAX_ABS_DP          # quantized, and close
    threshold = float(np.median(ref))
    clear = np.abs(ref - threshold) > INT8_MAX_ABS_DP   # decisions away from the threshold
    assert clear.sum() >= 6
    assert ((out >= threshold) == (ref >= threshold))[clear].all()


def test_int8_refuses_a_model_off_the_cpu():
    model = _model().to('meta')
    with pytest.raises(UserInputError, match='CPU only'):
        quantize_int8(model)


def test_load_predictor_auto_threads(tmp_path, monkeypatch):
    path = save_model(tmp_path / 'tiny.pt', _model(), meta={'decision_threshold': 0.6})
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr('mmtok_ros.runtime.work_sharing.usable_cores', lambda: 2)
        loaded = load_predictor(path, backend='torch', device='cpu', threads=0)
        assert torch.get_num_threads() == 1 and loaded.model_threshold == 0.6
        assert loaded.predictor.helpers == auto_helpers() == 1
        assert loaded.threading == '1 intra-op thread(s) + 1 work-sharing helper(s)'
        loaded.predictor.close()
        monkeypatch.setattr('mmtok_ros.runtime.work_sharing.usable_cores', lambda: 1)
        one_core = load_predictor(path, backend='torch', device='cpu', threads=0)
        assert one_core.predictor.helpers == 0 and one_core.predictor.pool is None
        plain = load_predictor(path, backend='torch', device='cpu', threads=1)
        assert plain.predictor.helpers == 0 and plain.predictor._chunked is None
        with pytest.raises(UserInputError, match='torch-int8'):
            load_predictor(path, backend='torch-int8', device='cpu')
    finally:
        torch.set_num_threads(before)


def test_a_helper_that_stalls_is_not_waited_for():
    """A chunk a helper holds is recomputed by the caller after about one chunk's time."""
    pool = WorkSharingPool(1)
    stall = threading.Event()

    def work(x):
        if threading.current_thread().name.startswith('mmtok-helper') and not stall.is_set():
            stall.set()
            time.sleep(1.0)              # a helper descheduled for a second
        time.sleep(0.005)
        return x * x
    try:
        t0 = time.perf_counter()
        assert pool.map(work, list(range(8))) == [x * x for x in range(8)]
        assert time.perf_counter() - t0 < 0.5
        assert stall.is_set() and pool.stats['chunks_recomputed'] >= 1
        assert pool.map(work, [3, 4]) == [9, 16]           # the next step is not held up
    finally:
        pool.close()


def test_helper_errors_fall_back_to_the_caller():
    pool = WorkSharingPool(1)

    def work(x):
        if threading.current_thread().name.startswith('mmtok-helper'):
            raise RuntimeError('helper only')
        time.sleep(0.002)
        return x + 1
    try:
        assert pool.map(work, list(range(6))) == list(range(1, 7))
    finally:
        pool.close()
