"""ONNX export (mmtok_ros.model.export) and the onnxruntime backend (runtime.onnx_predictor):
the graphs equal PyTorch within 1e-4, K is a constant TopK input, and bad files fail clearly."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip('onnxruntime')
import onnx  # noqa: E402

from mmtok_ros.cli import main  # noqa: E402
from mmtok_ros.data.window import Window  # noqa: E402
from mmtok_ros.model import MultiModalTransformer, preset  # noqa: E402
from mmtok_ros.model.checkpoint import load_model, save_model  # noqa: E402
from mmtok_ros.model.export import (ExportError, export_model, fixed_keep_counts,  # noqa: E402
                                    read_metadata, tokenizer_path)
from mmtok_ros.model.flops import dummy_window  # noqa: E402
from mmtok_ros.model.shipped import shipped_model_path  # noqa: E402
from mmtok_ros.runtime.onnx_predictor import OnnxModelError, OnnxStreamingPredictor  # noqa: E402
from mmtok_ros.runtime.predictor import StreamingPredictor  # noqa: E402

TOL = 1e-4
METHODS = ('routed', 'mha', 'ablation3')


def tiny(method: str, seed: int = 0) -> MultiModalTransformer:
    torch.manual_seed(seed)
    return MultiModalTransformer(preset('rsu-cpu', image_hw=(32, 32), bev_hw=(32, 32),
                                        method=method)).eval()


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """method -> (model, ExportResult), exported once for the module."""
    out = {}
    root = tmp_path_factory.mktemp('onnx')
    for method in METHODS:
        model = tiny(method)
        scales = (0.5,) if method != 'mha' else ()
        out[method] = model, export_model(model, root / f'{method}.onnx', extra_keep_scales=scales,
                                          decision_threshold=0.37)
    return out


def onnx_logits(result, batch: dict) -> np.ndarray:
    """Tokenizer graph on every frame, then the encoder graph: (B, n_classes)."""
    import onnxruntime as ort
    cpu = ['CPUExecutionProvider']
    tok = ort.InferenceSession(str(result.tokenizer), providers=cpu)
    enc = ort.InferenceSession(str(result.encoder), providers=cpu)
    first = next(iter(v for k, v in batch.items() if k != 'present'))
    B, T = first.shape[:2]
    feed = {k: v.flatten(0, 1).numpy() for k, v in batch.items()}
    tokens = tok.run(None, feed)[0]
    return enc.run(None, {'frame_tokens': tokens.reshape(B, T, *tokens.shape[1:])})[0]


def random_batch(cfg, *, batch: int, seed: int, absent: bool) -> dict:
    out = dummy_window(cfg, batch=batch, seed=seed)
    g = torch.Generator().manual_seed(seed)
    present = torch.ones(batch, cfg.n_frames, len(cfg.modalities), dtype=torch.bool)
    if absent:
        present = torch.rand(present.shape, generator=g) > 0.5
        present[-1, -1] = False                 # the newest frame of one window: nothing
    out['present'] = present
    return out


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('absent', [False, True], ids=['all-present', 'absent-modalities'])
def test_onnx_equals_torch(exported, method, absent):
    model, result = exported[method]
    batch = random_batch(model.cfg, batch=3, seed=11, absent=absent)   # batch 3: dynamic
    with torch.no_grad():
        ref = model(batch).numpy()
    got = onnx_logits(result, batch)
    assert got.shape == ref.shape == (3, 1)
    assert np.abs(got - ref).max() <= TOL
    # absent modalities must change the output (the mask reaches the graph)
    if absent:
        full = {**batch, 'present': torch.ones_like(batch['present'])}
        assert np.abs(onnx_logits(result, full) - got).max() > 1e-6


def test_routed_graph_has_constant_topk_per_layer(exported):
    model, result = exported['routed']
    graph = onnx.load(str(result.encoder)).graph
    constants = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == 'Constant':
            constants[node.output[0]] = onnx.numpy_helper.to_array(node.attribute[0].t)
    ks = [int(constants[n.input[1]].reshape(-1)[0]) for n in graph.node if n.op_type == 'TopK']
    expected = fixed_keep_counts(model)
    assert ks == expected and len(ks) == len(model.routed_layers())
    assert all(1 < k < model.cfg.n_tokens for k in ks)
    ops = {n.op_type for n in graph.node}
    assert {'GatherElements', 'ScatterElements'} <= ops
    mha_ops = {n.op_type for n in onnx.load(str(exported['mha'][1].encoder)).graph.node}
    assert 'TopK' not in mha_ops


def test_metadata_records_k_config_and_threshold(exported):
    model, result = exported['routed']
    meta = read_metadata(result.encoder)
    assert json.loads(meta['tokens_per_layer']) == fixed_keep_counts(model)
    assert json.loads(meta['config']) == json.loads(json.dumps(model.cfg.to_dict()))
    assert float(meta['decision_threshold']) == pytest.approx(0.37)
    assert meta['tokenizer_file'] == tokenizer_path(result.encoder).name
    assert read_metadata(result.tokenizer)['graph'] == 'tokenizer'
    small = read_metadata(result.scales[0.5])
    assert json.loads(small['tokens_per_layer']) == fixed_keep_counts(model, 0.5)
    assert sum(json.loads(small['tokens_per_layer'])) < sum(fixed_keep_counts(model))


def windows(cfg, count: int, seed: int = 3) -> list[Window]:
    """``count`` windows, each one frame newer than the last, some modalities absent."""
    n = cfg.n_frames + count
    frames = {m: v[0].numpy() for m, v in dummy_window(cfg.with_(n_frames=n), seed=seed).items()}
    present = np.random.default_rng(seed).random((n, len(cfg.modalities))) > 0.25
    out = []
    for k in range(count):
        sl = slice(k, k + cfg.n_frames)
        arrays = {m: frames[m][sl] for m in cfg.modalities}
        arrays['present'] = present[sl]
        stamps = np.arange(k, k + cfg.n_frames, dtype=np.int64) * 100_000_000 + 1
        out.append(Window(arrays, stamps, int(stamps[-1])))
    return out


@pytest.mark.parametrize('method', ['routed', 'mha'])
def test_onnx_predictor_equals_streaming_predictor(exported, method):
    model, result = exported[method]
    torch_pred = StreamingPredictor(model)
    onnx_pred = OnnxStreamingPredictor(result.encoder)
    assert onnx_pred.threshold == pytest.approx(0.37)        # from the export's metadata
    assert onnx_pred.warnings == []
    assert onnx_pred.warm_up(windows(model.cfg, 1)[0]) > 0
    for w in windows(model.cfg, 4):
        a, b = torch_pred.predict(w), onnx_pred.predict(w)
        assert abs(a.p_blocked - b.p_blocked) <= TOL
        assert (a.frames_tokenized, a.tokens_per_layer) == (b.frames_tokenized,
                                                           b.tokens_per_layer)
        assert b.newest_stamp_ns == w.newest_stamp_ns and b.inference_ms > 0
    assert (onnx_pred.cache_hits, onnx_pred.cache_misses) == (torch_pred.cache_hits,
                                                              torch_pred.cache_misses)
    assert onnx_pred.cache_hits == 3 * (model.cfg.n_frames - 1)   # one new frame per window
    onnx_pred.clear()
    assert onnx_pred.predict(w).frames_tokenized == model.cfg.n_frames


def test_keep_scale_switches_exported_graphs(exported):
    model, result = exported['routed']
    pred = OnnxStreamingPredictor(result.encoder)
    assert pred.model.keep_scales == [0.5, 1.0] and pred.model.routed_layers() == [0, 1, 2, 3]
    assert pred.model.set_keep_override(0.7) == 0.5           # never more tokens than asked
    assert pred.model.tokens_per_layer() == fixed_keep_counts(model, 0.5)
    w = windows(model.cfg, 1)[0]
    model.set_keep_override(0.5)
    try:
        ref = StreamingPredictor(model).predict(w).p_blocked
    finally:
        model.set_keep_override(None)
    assert abs(pred.predict(w).p_blocked - ref) <= TOL
    assert pred.model.set_keep_override(0.2) == 0.5           # below every export: smallest
    assert pred.model.set_keep_override(None) == 1.0


def test_unavailable_provider_falls_back_to_cpu_with_a_warning(exported):
    pred = OnnxStreamingPredictor(exported['mha'][1].encoder,
                                  providers=['NoSuchExecutionProvider'])
    assert pred.providers == ['CPUExecutionProvider'] and pred.device == 'CPUExecutionProvider'
    assert any('NoSuchExecutionProvider' in w and 'falling back' in w for w in pred.warnings)


def test_missing_and_corrupt_files_fail_clearly(exported, tmp_path):
    with pytest.raises(OnnxModelError, match='not found.*nothing.onnx'):
        OnnxStreamingPredictor(tmp_path / 'nothing.onnx')
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'not a protobuf at all' * 10)
    with pytest.raises(OnnxModelError, match='cannot load ONNX file .*bad.onnx'):
        OnnxStreamingPredictor(bad)
    # a readable ONNX file that mmtok export did not write
    other = tmp_path / 'other.onnx'
    h = onnx.helper
    x = h.make_tensor_value_info('x', onnx.TensorProto.FLOAT, [1])
    y = h.make_tensor_value_info('y', onnx.TensorProto.FLOAT, [1])
    onnx.save(h.make_model(h.make_graph([h.make_node('Identity', ['x'], ['y'])], 'g', [x], [y])),
              str(other))
    with pytest.raises(OnnxModelError, match='not an mmtok export encoder graph'):
        OnnxStreamingPredictor(other)
    # the encoder without its tokenizer graph
    lonely = tmp_path / 'lonely.onnx'
    lonely.write_bytes(exported['mha'][1].encoder.read_bytes())
    with pytest.raises(OnnxModelError, match='not found.*mha.tokenizer.onnx'):
        OnnxStreamingPredictor(lonely)


def test_tome_is_refused_by_name_and_nothing_written(tmp_path):
    with pytest.raises(ExportError, match='MergingLayer.*argsort'):
        export_model(tiny('tome'), tmp_path / 'tome.onnx')
    assert list(tmp_path.iterdir()) == []


def test_a_graph_that_differs_from_torch_is_not_kept(tmp_path, monkeypatch):
    from mmtok_ros.model import export
    real = export._reference_logits
    monkeypatch.setattr(export, '_reference_logits', lambda *a: real(*a) + 1e-3)
    with pytest.raises(ExportError, match='differ from PyTorch'):
        export_model(tiny('routed'), tmp_path / 'r.onnx')
    assert list(tmp_path.iterdir()) == []


def test_export_leaves_the_model_unchanged(tmp_path):
    model = tiny('routed')
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_model(model, tmp_path / 'r.onnx', keep_scale=0.8)
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(layer.keep_override is None for layer in model.routed_layers())


def test_cli_export(tmp_path, capsys):
    src = save_model(tmp_path / 'm.pt', tiny('ablation3'), meta={'decision_threshold': 0.42})
    out = tmp_path / 'm.onnx'
    assert main(['export', '--model', str(src), '--out', str(out), '--keep-scale', '0.9']) == 0
    assert 'K per layer' in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta['keep_scale'] == '0.9' and float(meta['decision_threshold']) == 0.42
    assert main(['export', '--model', str(tmp_path / 'absent.pt'), '--out', str(out)]) == 2
    assert 'not found' in capsys.readouterr().err


@pytest.mark.parametrize('method', ['routed', 'mha'])
def test_shipped_model_exports_and_matches(tmp_path, method):
    path = shipped_model_path(method)
    if not path.is_file():
        pytest.skip(f'shipped model {path.name} absent')
    model, _ = load_model(path)
    result = export_model(model, tmp_path / f'{method}.onnx')
    batch = random_batch(model.cfg, batch=1, seed=5, absent=True)
    with torch.no_grad():
        ref = model(batch).numpy()
    assert np.abs(onnx_logits(result, batch) - ref).max() <= TOL
    # real windows: sensor messages through decode, synchronizer and window assembly, with a
    # camera frame and an RSSI reading missing (test_window's generator), cache on
    from test_window import CAM, PARTIAL, RSU1, messages

    from mmtok_ros.data import build_windows_from_messages
    msgs = messages(10, skip={(5, CAM), (6, RSU1)})
    real, _, _ = build_windows_from_messages(msgs, model.cfg, **PARTIAL)
    assert len(real) >= 3 and not all(w.arrays['present'].all() for w in real)
    torch_pred, onnx_pred = StreamingPredictor(model), OnnxStreamingPredictor(result.encoder)
    for w in real:
        a, b = torch_pred.predict(w), onnx_pred.predict(w)
        assert abs(a.p_blocked - b.p_blocked) <= TOL
        assert a.frames_tokenized == b.frames_tokenized


def test_bench_compares_both_backends_in_one_run(tmp_path, capsys):
    out = tmp_path / 'b.json'
    assert main(['bench', '--backend', 'torch,onnxruntime', '--preset', 'rsu-mini',
                 '--methods', 'routed,tome', '--gammas', '0.4', '--reps', '1', '--warmup', '1',
                 '--device', 'cpu', '--out', str(out), '--no-progress']) == 0
    rows = json.loads(out.read_text())
    assert [(r['method'], r['backend']) for r in rows] == [('routed', 'torch'),
                                                          ('routed', 'onnxruntime')]
    assert rows[0]['tokens_per_layer'] == rows[1]['tokens_per_layer']
    assert rows[0]['threads'] == rows[1]['threads'] >= 1
    assert all(r['frame_ms_median'] > 0 and r['window_ms_median'] > 0 for r in rows)
    assert 'tome is not exportable' in capsys.readouterr().out
