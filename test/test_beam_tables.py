"""Tables II-V: one tiny run writes Markdown, JSON and plots; plans and data helpers."""
import json

import numpy as np
import pytest

from mmtok_ros.beam.command import split_holdout
from mmtok_ros.beam.table_markdown import table_modalities
from mmtok_ros.beam.tables import Run, marked_absent, plan, run_beam_tables, without_modality
from mmtok_ros.cli import main
from mmtok_ros.model import PRESETS, preset
from mmtok_ros.train.dataset import WindowDataset
from mmtok_ros.train.trainer import TrainConfig

CFG = preset('beam-mini')


def random_windows(n_frames=12, groups=3, seed=0):
    rng = np.random.default_rng(seed)
    shapes = {'image': (3, 32, 32), 'lidar': (3, 32, 32), 'radar': (16, 4), 'gps': (2,)}
    frames = {m: rng.random((groups * n_frames, *s), dtype=np.float32) for m, s in shapes.items()}
    last = np.concatenate([g * n_frames + np.arange(4, n_frames - 1) for g in range(groups)])
    return WindowDataset(CFG.modalities, frames, np.ones((groups * n_frames, 4), bool),
                         last[:, None] - np.arange(4, -1, -1), rng.integers(0, 64, len(last)),
                         last // n_frames, last * 100_000_000)


def test_plan_trains_each_model_once():
    runs = plan(('II', 'III', 'IV', 'V'), (0.3, 0.5), CFG.modalities)
    assert len(runs) == len(set(runs))
    assert Run('routed', 0.5) in runs and Run('tome') in runs and Run('ablation3', 0.3) in runs
    assert Run('routed', 0.5, 'gps') in runs
    assert plan(('II',), (0.5,), CFG.modalities) == [Run('mha'), Run('routed', 0.5)]


def test_holdout_keeps_whole_scenes_out_of_training():
    train, test = split_holdout(random_windows(groups=4), 0.25)
    assert set(np.unique(test.groups)) == {3}
    assert not set(np.unique(train.groups)) & {3}


def test_modality_helpers_remove_or_mark_a_modality():
    data = random_windows()
    slim = without_modality(data, 'radar')
    assert slim.modalities == ('image', 'lidar', 'gps') and slim.present.shape[1] == 3
    batch, _ = slim.batch(np.arange(2))
    assert 'radar' not in batch
    absent = marked_absent(data, 'gps')
    assert not absent.present[:, 3].any() and data.present[:, 3].all()


@pytest.fixture
def tiny_preset(monkeypatch):
    """beam-mini with a 2-layer, d=16 transformer and slim tokenizers: the same code, faster."""
    monkeypatch.setitem(PRESETS, 'beam-tiny', CFG.with_(preset='beam-tiny', d_model=16,
                                                          n_layers=2, cnn_widths=(4, 8),
                                                          router_hidden=16))
    return 'beam-tiny'


def test_tiny_run_writes_tables_json_and_plots(tmp_path, tiny_preset):
    train, test = split_holdout(random_windows(), 0.34)
    tc = TrainConfig(epochs=1, batch_size=16, lr=1e-3, device='cpu')
    result = run_beam_tables(train, test, preset_name=tiny_preset, tc=tc, out_dir=tmp_path,
                             data_note='random windows', tables=('II',), gammas=(0.5,),
                             bench_reps=2, scale_overrides=None, measure_memory=False,
                             progress=False)
    text = (tmp_path / 'tables.md').read_text()
    assert "Table II: routed at each γ' vs mha" in text and "| routed (γ'=0.5) |" in text
    stored = json.loads((tmp_path / 'tables.json').read_text())
    assert [r['key'] for r in stored['rows']] == [r['key'] for r in result['rows']]
    assert [r['key'] for r in result['rows']] == ['mha', 'routed-g0.50']
    routed = next(r for r in stored['rows'] if r['key'] == 'routed-g0.50')
    assert 0.0 <= routed['top1'] <= routed['top3'] <= routed['top5'] <= 1.0
    assert routed['gflops'] < next(r for r in stored['rows'] if r['key'] == 'mha')['gflops']
    assert (tmp_path / 'accuracy_vs_latency.png').stat().st_size > 0
    assert (tmp_path / 'keep_ratios.png').stat().st_size > 0
    # a second run loads the cached models instead of training again
    again = run_beam_tables(train, test, preset_name=tiny_preset, tc=tc, out_dir=tmp_path,
                            data_note='random windows', tables=('II',), gammas=(0.5,),
                            bench_reps=2, scale_overrides=None, measure_memory=False,
                            progress=False)
    assert again['rows'][1]['train_seconds'] == routed['train_seconds']


def test_table_v_lists_each_removed_modality_with_its_token_count():
    score = {'top1': 0.5, 'top3': 0.75, 'top5': 0.9}
    rows = [{'removed': None, 'n_tokens': 246, **score, 'dba': 0.8, 'latency_ms_median': 5.0},
            {'removed': 'gps', 'n_tokens': 241, **score, 'dba': 0.7, 'latency_ms_median': 4.9,
             'absent_scores': {'top1': 0.25, 'top3': 0.5}}]
    text = table_modalities(rows, 'Table V')
    assert '| none | 246 | 50.0 | 75.0 | 90.0 | 0.800 | 5.00 | - |' in text
    assert '| gps | 241 | 50.0 | 75.0 | 90.0 | 0.700 | 4.90 | 25.0 / 50.0 |' in text


def test_unknown_table_is_refused(tmp_path):
    with pytest.raises(ValueError, match='unknown tables'):
        run_beam_tables(random_windows(), random_windows(), preset_name='beam-mini',
                        tc=TrainConfig(epochs=1), out_dir=tmp_path, data_note='',
                        tables=('VI',))


def test_handover_evaluate_still_needs_a_model(capsys):
    assert main(['evaluate', '--data', 'somewhere']) == 2
    assert '--task handover needs --model and --data' in capsys.readouterr().err
