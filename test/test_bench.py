"""mmtok bench runs end to end and writes the documented JSON rows (no timing assertions)."""
import json

import pytest

from mmtok_ros.cli import main


def test_bench_writes_rows_for_every_method_and_gamma(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    assert main(['bench', '--preset', 'rsu-cpu', '--device', 'cpu', '--methods', 'mha,routed,tome',
                 '--gammas', '0.3,0.6', '--reps', '1', '--warmup', '1', '--out', str(out),
                 '--no-progress']) == 0
    rows = json.loads(out.read_text())
    assert [(r['method'], r['gamma']) for r in rows] == [
        ('mha', None), ('routed', 0.3), ('routed', 0.6), ('tome', None)]
    for r in rows:
        for key in ('latency_ms_median', 'latency_ms_p90', 'peak_mem_mb', 'gflops',
                    'tokens_per_layer'):
            assert key in r
        assert r['latency_ms_median'] > 0 and r['latency_ms_p90'] >= r['latency_ms_median']
    by = {(r['method'], r['gamma']): r for r in rows}
    assert by[('routed', 0.3)]['gflops'] < by[('routed', 0.6)]['gflops'] < by[('mha', None)]['gflops']
    assert '| routed | 0.30 |' in capsys.readouterr().out


def test_bench_rejects_unknown_method(tmp_path, capsys):
    assert main(['bench', '--methods', 'nope', '--out', str(tmp_path / 'x.json')]) == 2
    assert 'unknown methods' in capsys.readouterr().err


def _tiny_heldout(tmp_path, cfg, windows_per_group=4, groups=2):
    """A held-out windows file with ``cfg``'s shapes: runs of consecutive windows."""
    import numpy as np

    from mmtok_ros.bench.heldout import HeldoutWindows, save
    from mmtok_ros.model.preprocess import frame_shapes
    rng = np.random.default_rng(0)
    per = windows_per_group + cfg.n_frames - 1
    F = per * groups
    frames = {m: rng.random((F, *s), dtype=np.float32) for m, s in frame_shapes(cfg).items()}
    rows = np.array([[g * per + k + t for t in range(cfg.n_frames)]
                     for g in range(groups) for k in range(windows_per_group)])
    labels = (rng.random(len(rows)) < 0.5).astype(np.float32)
    data = HeldoutWindows(tuple(cfg.modalities), frames, np.ones((F, len(cfg.modalities)), bool),
                          np.tile((np.arange(per, dtype=np.int64) + 1) * 300_000_000, groups),
                          rows, labels, labels, np.repeat(np.arange(groups), windows_per_group))
    return save(tmp_path / 'heldout.npz', data)


def test_bench_heldout_compares_the_node_paths(tmp_path, capsys):
    """mmtok bench --heldout: accuracy of every path against the first, and their times."""
    import torch
    from model_helpers import tiny

    from mmtok_ros.model import MultiModalTransformer
    from mmtok_ros.model.checkpoint import save_model
    torch.manual_seed(0)
    model = MultiModalTransformer(tiny('routed')).eval()
    path = save_model(tmp_path / 'tiny.pt', model, meta={'decision_threshold': 0.5})
    out = tmp_path / 'heldout.json'
    before = torch.get_num_threads()
    try:
        assert main(['bench', '--heldout', '--model', str(path), '--windows',
                     str(_tiny_heldout(tmp_path, model.cfg)), '--backend', 'torch',
                     '--threads', '1,0', '--frame-reps', '2', '--out', str(out)]) == 0
        assert main(['bench', '--heldout', '--model', str(path), '--windows',
                     str(tmp_path / 'heldout.npz'), '--backend', 'torch,torch-int8',
                     '--threads', '1', '--frame-reps', '0', '--out',
                     str(tmp_path / 'int8.json')]) == 0
    finally:
        torch.set_num_threads(before)
    result = json.loads(out.read_text())
    acc = {r['path']: r for r in result['accuracy']}
    assert list(acc) == ['torch, 1 thread', 'torch, auto threads']
    ref = acc['torch, 1 thread']
    assert ref['windows'] == 8 and ref['max_abs_p_diff'] == 0 and ref['decisions_changed'] == 0
    assert acc['torch, auto threads']['max_abs_p_diff'] <= 1e-5
    for r in result['accuracy']:
        assert r['accuracy_diff_points'] == pytest.approx(100 * (r['accuracy'] - ref['accuracy']))
        assert r['decisions_changed'] == 0
    times = result['offline_one_frame']
    assert [t['path'] for t in times] == list(acc) and times[0]['speedup_vs_first'] == 1.0
    assert all(t['median_ms'] > 0 and len(t['load_average_before']) == 3 for t in times)
    assert times[1]['runs_as'].endswith('work-sharing helper(s)') or times[1]['runs_as'] == \
        '1 intra-op thread(s)'                                    # a one-core machine
    int8 = json.loads((tmp_path / 'int8.json').read_text())
    assert int8['offline_one_frame'] == []
    assert 0 < int8['accuracy'][1]['max_abs_p_diff'] < 0.05
    assert '| torch, auto threads |' in capsys.readouterr().out


def test_bench_heldout_refuses_onnxruntime_and_int8_auto(tmp_path, capsys):
    assert main(['bench', '--heldout', '--backend', 'torch,onnxruntime',
                 '--out', str(tmp_path / 'x.json')]) == 2
    assert 'torch paths' in capsys.readouterr().err
    assert main(['bench', '--heldout', '--backend', 'torch-int8', '--threads', '0',
                 '--out', str(tmp_path / 'x.json')]) == 2
    assert 'fixed thread counts' in capsys.readouterr().err


def test_e2e_run_labels():
    from mmtok_ros.bench.e2e import run_label
    assert run_label('proposed', 'torch', 1, several_threads=False) == 'proposed'
    assert run_label('proposed', 'onnxruntime', 1, several_threads=False) == \
        'proposed (onnxruntime)'
    assert run_label('mha', 'torch', 0, several_threads=True) == 'mha (torch, auto threads)'
