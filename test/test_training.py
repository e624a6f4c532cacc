"""Bags -> windows -> train -> save -> evaluate, on a tiny simulated testbed."""
import json

import numpy as np
import pytest
import torch

from mmtok_ros.cli import main
from mmtok_ros.model import preset
from mmtok_ros.model.checkpoint import load_model
from mmtok_ros.sim.simulate import simulate
from mmtok_ros.train.build import dataset_from_bags
from mmtok_ros.train.crossval import confidence_interval_95
from mmtok_ros.train.dataset import WindowDataset, group_folds


@pytest.fixture(scope='module')
def testbed(tmp_path_factory):
    out = tmp_path_factory.mktemp('testbed')
    simulate(out, n_scenarios=2, seed=3, frames_per_scenario=14, progress=False)
    return out


def test_windows_from_bags_share_frames_and_carry_labels(testbed):
    data, names = dataset_from_bags(testbed, preset('rsu-cpu'), progress=False)
    assert names == ['scenario_00', 'scenario_01']
    assert set(np.unique(data.groups)) == {0, 1}
    assert data.window_frames.shape[1] == 5
    # consecutive windows of a scenario share four frames: frames are stored once
    assert len(data.present) < 5 * len(data)
    assert set(np.unique(data.labels)) <= {0.0, 1.0}
    batch, labels = data.batch(np.arange(3))
    assert batch['image'].shape == (3, 5, 3, 128, 128) and batch['present'].shape == (3, 5, 3)
    # the cache returns the same windows
    again, _ = dataset_from_bags(testbed, preset('rsu-cpu'), progress=False)
    assert np.array_equal(again.window_frames, data.window_frames)
    assert np.array_equal(again.frames['lidar'], data.frames['lidar'])


def test_train_save_and_evaluate_from_the_command_line(testbed, tmp_path, capsys):
    model_path, result_path = tmp_path / 'tiny.pt', tmp_path / 'eval.json'
    assert main(['train', '--data', str(testbed), '--epochs', '1', '--batch-size', '8',
                 '--holdout', 'scenario_01', '--out', str(model_path), '--no-progress']) == 0
    model, meta = load_model(model_path)
    assert meta['holdout_bags'] == ['scenario_01'] and 0 <= meta['holdout']['accuracy'] <= 1
    assert model.cfg.preset == 'rsu-cpu' and model.cfg.target_keep_ratio == 0.4
    assert main(['evaluate', '--model', str(model_path), '--data', str(testbed),
                 '--bags', 'scenario_01', '--out', str(result_path), '--no-progress']) == 0
    result = json.loads(result_path.read_text())
    assert result['accuracy'] == pytest.approx(meta['holdout']['accuracy'])
    assert 'accuracy:' in capsys.readouterr().out
    # threshold 0 calls every window blocked, a threshold above 1 none
    for threshold, expected in ((0.0, result['blocked_fraction']), (1.01, 1 - result['blocked_fraction'])):
        assert main(['evaluate', '--model', str(model_path), '--data', str(testbed), '--bags',
                     'scenario_01', '--threshold', str(threshold), '--out', str(result_path),
                     '--no-progress']) == 0
        swept = json.loads(result_path.read_text())
        assert swept['threshold'] == threshold and swept['accuracy'] == pytest.approx(expected)


def test_a_dropped_modality_is_marked_absent_and_does_not_crash(tmp_path):
    simulate(tmp_path, n_scenarios=1, seed=3, frames_per_scenario=14,
             drop_modality='image:0.5', progress=False)
    data, _ = dataset_from_bags(tmp_path, preset('rsu-cpu'), progress=False)
    assert not data.present[:, 0].all()                 # some camera frames are missing
    from mmtok_ros.model import MultiModalTransformer
    from mmtok_ros.train.evaluation import predict
    logits = predict(MultiModalTransformer(preset('rsu-cpu')), data)
    assert np.isfinite(logits).all()


def test_folds_split_by_scenario():
    groups = np.repeat(np.arange(6), 4)
    folds = group_folds(groups, 3)
    assert len(folds) == 3
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
    assert sorted(np.concatenate([t for _, t in folds]).tolist()) == list(range(24))
    with pytest.raises(ValueError):
        group_folds(groups, 7)


def test_dataset_round_trips_through_npz(tmp_path):
    data = WindowDataset(('rssi',), {'rssi': np.arange(12, dtype=np.float32).reshape(6, 2)},
                         np.ones((6, 1), bool), np.array([[0, 1], [1, 2]]), np.array([0., 1.]),
                         np.array([0, 0]), np.array([5, 6]))
    again = WindowDataset.load(data.save(tmp_path / 'd.npz'))
    batch, labels = again.batch(np.array([1]))
    assert torch.equal(batch['rssi'][0], torch.tensor([[2., 3.], [4., 5.]]))
    assert labels.tolist() == [1.0]


def test_confidence_interval_contains_the_mean():
    lo, hi = confidence_interval_95([0.9, 0.92, 0.94])
    assert lo < 0.92 < hi


def test_wilson_interval_brackets_the_proportion():
    from mmtok_ros.train.evaluation import wilson_interval
    lo, hi = wilson_interval(90, 100)
    assert lo < 0.9 < hi and hi < 1.0
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_report_writes_table_json_and_plots(testbed, tmp_path):
    from mmtok_ros.train.report import run_report
    from mmtok_ros.train.trainer import TrainConfig
    data, _ = dataset_from_bags(testbed, preset('rsu-mini'), progress=False)
    rows = run_report(data, preset_name='rsu-mini', methods=['mha', 'routed'], gammas=[0.4],
                      folds=2, seeds=[0], tc=TrainConfig(epochs=1, batch_size=8, device='cpu'),
                      out_dir=tmp_path, bench_reps=1, progress=False)
    assert [(r['method'], r['gamma']) for r in rows] == [('mha', None), ('routed', 0.4)]
    assert all(0 <= r['accuracy_mean'] <= 1 and r['latency_ms_median'] > 0 for r in rows)
    assert len(rows[1]['keep_ratios_mean']) == 4
    for name in ('table6.md', 'table6.json', 'keep_ratios.png', 'accuracy_vs_latency.png'):
        assert (tmp_path / name).stat().st_size > 0
    table = (tmp_path / 'table6.md').read_text()
    assert "routed (γ'=0.4)" in table and 'onsets announced' in table
    assert rows[1]['onsets_predicted'] <= rows[1]['onsets']
    # prediction metrics and both baselines in the table
    assert 'AUROC' in table and 'persistence (baseline)' in table and 'always clear (baseline)' in table
    assert 0 <= rows[1]['auroc_mean'] <= 1 or np.isnan(rows[1]['auroc_mean'])


def test_a_report_reuses_its_runs_and_times_ablations_at_their_own_gamma(testbed, tmp_path,
                                                                          monkeypatch):
    import mmtok_ros.train.crossval as crossval
    from mmtok_ros.train.report import run_report
    from mmtok_ros.train.trainer import TrainConfig
    data, _ = dataset_from_bags(testbed, preset('rsu-mini'), progress=False)
    args = dict(preset_name='rsu-mini', methods=['ablation3', 'routed'], gammas=[0.4], folds=2,
                seeds=[0], tc=TrainConfig(epochs=1, batch_size=8, device='cpu',
                                          threshold_windows=0),
                out_dir=tmp_path, progress=False, ablation_gamma=0.3)
    first = run_report(data, bench_reps=0, **args)
    assert [(r['method'], r['gamma']) for r in first] == [('ablation3', 0.3), ('routed', 0.4)]
    table = (tmp_path / 'table6.md').read_text()
    assert 'latency not measured' in table
    # the routed row, its node-decision row, and its gradient statistics, one line per block
    # (ablation 3 learns no r_l)
    assert 'Keep-ratio gradients' in table and table.count("| routed (γ'=0.4) | ") == 6
    assert 'The decision the node acts on' in table and 'proactive definition' in table
    assert len(list((tmp_path / 'runs').glob('*.json'))) == 4
    run = json.loads(next((tmp_path / 'runs').glob('routed*.json')).read_text())['result']
    assert len(run['keep_ratio_grad_rms']) == 1 and len(run['keep_ratio_grad_rms'][0]) == 4

    def no_training(*a, **k):
        raise AssertionError('a stored run was trained again')
    monkeypatch.setattr(crossval, 'train_model', no_training)
    again = run_report(data, bench_reps=1, **args)          # every run reused, now timed
    assert [r['accuracy_mean'] for r in again] == [r['accuracy_mean'] for r in first]
    tokens = {r['method']: r['tokens_per_layer'][0] for r in again}
    assert tokens['ablation3'] < tokens['routed']            # 0.3 of the tokens, not 0.4's
    # the legacy false-alarm definition: the stored runs are scored again, not trained again
    legacy = run_report(data, bench_reps=0, metrics='legacy', **args)
    assert [r['accuracy_mean'] for r in legacy] == [r['accuracy_mean'] for r in first]
    assert 'legacy definition' in (tmp_path / 'table6.md').read_text()
    # other settings are other runs: the stored ones are not taken for them
    with pytest.raises(AssertionError, match='trained again'):
        run_report(data, bench_reps=0, **{**args, 'tc': TrainConfig(epochs=2, batch_size=8,
                                                                    device='cpu')})


def test_runs_another_live_process_trains_are_left_to_it(tmp_path, capsys):
    import os
    from mmtok_ros.train.run_store import RunStore
    store = RunStore(tmp_path)
    (tmp_path / 'mha_fold0_seed0.claim').write_text(str(os.getppid()))   # alive: not ours
    assert not store.claim('mha_fold0_seed0')
    (tmp_path / 'mha_fold1_seed0.claim').write_text('999999999')         # gone: taken over
    assert store.claim('mha_fold1_seed0')
    store.save('mha_fold1_seed0', 'k1', {'accuracy': 0.5})
    assert store.load('mha_fold1_seed0', 'k1') == {'accuracy': 0.5}
    assert store.load('mha_fold1_seed0', 'other settings') is None
    assert not (tmp_path / 'mha_fold1_seed0.claim').exists()


def test_onset_recall_counts_only_first_blocked_windows():
    from mmtok_ros.train.evaluation import onset_scores
    labels = np.array([0, 0, 1, 1, 0, 1, 0, 1], dtype=np.float32)
    groups = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    data = WindowDataset(('rssi',), {'rssi': np.zeros((1, 2), np.float32)}, np.ones((1, 1), bool),
                         np.zeros((8, 1), np.int64), labels, groups, np.arange(8))
    pred = np.array([0, 1, 1, 1, 0, 0, 0, 1], dtype=np.float32)
    # onsets: index 2 (predicted), 5 (missed) and 7 (predicted; it follows a clear window of
    # its own scenario); index 6 starts scenario 1, so index 5 -> 6 is no transition
    assert onset_scores(data, pred) == {'onsets': 3, 'onsets_predicted': 2, 'onset_recall': 2 / 3}


def _labelled(labels, groups):
    """A label-only dataset (one RSSI frame per window) for sampling tests."""
    n = len(labels)
    return WindowDataset(('rssi',), {'rssi': np.zeros((n, 2), np.float32)}, np.ones((n, 1), bool),
                         np.arange(n, dtype=np.int64)[:, None], np.asarray(labels, np.float32),
                         np.asarray(groups, np.int64), np.arange(n, dtype=np.int64))


def test_near_transition_marks_windows_around_label_changes_within_a_scenario():
    #          0  1  2  3  4  5  6  7 | 8  9
    labels = [0, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    groups = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    near = _labelled(labels, groups).near_transition(radius=2)
    # the change is at window 4: windows 2, 3 (before) and 4, 5 (after) are near it;
    # 7 -> 8 crosses scenarios and is no change
    assert near.tolist() == [False, False, True, True, True, True, False, False, False, False]


def test_lead_in_also_keeps_the_clear_windows_before_a_blockage_but_not_after_it():
    #          0  1  2  3  4  5  6  7  8  9 10 11
    labels = [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    data = _labelled(labels, [0] * 12)
    near = data.near_transition(radius=1, lead_in=4)
    # onset at 6: windows 2..5 before it (lead-in 4) and 6 (radius); the end at 8: 7 and 8 only
    assert np.flatnonzero(near).tolist() == [2, 3, 4, 5, 6, 7, 8]
    assert (data.near_transition(radius=1, lead_in=0) == data.near_transition(radius=1)).all()
    from mmtok_ros.train.config import TrainConfig
    with pytest.raises(ValueError, match='lead-in'):
        TrainConfig(transition_lead_in=-1)


def test_transition_focus_keeps_every_transition_and_a_fraction_of_steady_windows():
    from mmtok_ros.train.trainer import TrainConfig, epoch_rows
    labels = np.zeros(200)
    labels[100:120] = 1
    data = _labelled(labels, np.zeros(200))
    tc = TrainConfig(steady_fraction=0.25, transition_radius=3)
    near = data.near_transition(3)
    rows = epoch_rows(data, tc, np.random.default_rng(0))
    assert set(np.flatnonzero(near)) <= set(rows.tolist())         # all 12 transition windows
    assert len(rows) == near.sum() + round(0.25 * (~near).sum())   # plus a quarter of the rest
    assert len(set(rows.tolist())) == len(rows)                     # no window twice
    everything = epoch_rows(data, TrainConfig(), np.random.default_rng(0))
    assert sorted(everything.tolist()) == list(range(200))
    with pytest.raises(ValueError, match='steady_fraction'):
        TrainConfig(steady_fraction=0.0)


def test_modality_dropout_only_removes_frames_at_about_its_rate():
    from mmtok_ros.train.trainer import drop_modalities
    present = torch.ones(400, 5, 3, dtype=torch.bool)
    present[:, 0, 0] = False                                 # absent stays absent
    out = drop_modalities({'present': present}, 0.2, torch.Generator().manual_seed(0))['present']
    assert not out[:, 0, 0].any()
    assert 0.17 < 1 - out[:, 1:].float().mean().item() < 0.23


def test_training_goes_on_from_a_model_file_and_records_its_history(testbed, tmp_path, capsys):
    first, second = tmp_path / 'first.pt', tmp_path / 'second.pt'
    common = ['--data', str(testbed), '--preset', 'rsu-mini', '--epochs', '1', '--batch-size', '8',
              '--no-progress']
    assert main(['train', *common, '--method', 'mha', '--out', str(first)]) == 0
    assert main(['train', *common, '--init', str(first), '--steady-fraction', '0.5',
                 '--modality-dropout', '0.1', '--out', str(second)]) == 0
    a, _ = load_model(first)
    b, meta = load_model(second)
    assert b.cfg == a.cfg and b.cfg.method == 'mha'            # the file's config, not --method
    assert meta['init']['model'] == str(first) and meta['init']['history']['epoch_loss']
    assert meta['history']['train_config']['steady_fraction'] == 0.5
    changed = [n for n, p in b.state_dict().items()
               if p.dtype.is_floating_point and not torch.equal(p, a.state_dict()[n])]
    assert changed                                              # it did train
    broken = tmp_path / 'broken.pt'
    broken.write_bytes(b'not a model')
    capsys.readouterr()
    assert main(['train', *common, '--init', str(broken), '--out', str(tmp_path / 'x.pt')]) == 2
    assert 'broken.pt' in capsys.readouterr().err


# --- keep ratios that learn (issue 16, item 1) ------------------------------------------------
def _sum_task(n_windows=192, seed=0):
    """RSSI-only windows whose label is the sign of the sum over all five frames: each frame
    is one token, so a layer that keeps more tokens lets the CLS token see more of the sum."""
    rng = np.random.default_rng(seed)
    frames = rng.normal(0, 1, (n_windows * 5, 2)).astype(np.float32)
    window_frames = np.arange(n_windows * 5).reshape(n_windows, 5)
    labels = (frames[window_frames, 0].sum(1) > 0).astype(np.float32)
    return WindowDataset(('rssi',), {'rssi': frames}, np.ones((n_windows * 5, 1), bool),
                         window_frames, labels, np.zeros(n_windows, np.int64),
                         np.arange(n_windows, dtype=np.int64))


def _tiny_routed(**changes):
    """N = 5 frames x 1 RSSI token + CLS = 6 tokens, two routed layers."""
    return preset('rsu-mini', modalities=('rssi',), d_model=16, n_heads=2, router_hidden=16,
                  mlp_ratio=2, n_layers=2, **changes)


def _train_tiny(cfg, **tc):
    from mmtok_ros.train.trainer import TrainConfig, train_model
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                     # tiny ops: one thread is fastest
    try:
        return train_model(cfg, _sum_task(), TrainConfig(epochs=20, batch_size=16, device='cpu',
                                                         **tc), progress=False)
    finally:
        torch.set_num_threads(threads)


def test_keep_ratios_reach_the_target_under_a_large_penalty():
    # Eq. 19 with lambda = 100 pulls r_avg from 0.5 to gamma' = 0.3 within 240 steps because
    # r_l has its own learning rate (default keep_ratio_lr); at the weights' lr it cannot.
    cfg = _tiny_routed(target_keep_ratio=0.3, keep_ratio_init=0.5, keep_ratio_penalty=100.0)
    _, history = _train_tiny(cfg, lr=1e-4)
    assert abs(np.mean(history['keep_ratios'][-1]) - 0.3) <= 0.03, history['keep_ratios'][-1]
    _, control = _train_tiny(cfg, lr=1e-4, keep_ratio_lr=1e-4)   # one lr for everything
    assert np.mean(control['keep_ratios'][-1]) > 0.45


def test_the_gradient_clip_scales_the_weights_and_leaves_the_keep_ratios_alone():
    from mmtok_ros.model import MultiModalTransformer
    from mmtok_ros.train.trainer import TrainConfig, clip_weight_gradients, parameter_groups
    model = MultiModalTransformer(preset('rsu-mini', method='routed'))
    groups = parameter_groups(model, TrainConfig())
    for g in groups:
        for p in g['params']:
            p.grad = torch.full_like(p, 3.0)
    norm = clip_weight_gradients(groups, 1.0)
    weights = [p for g in groups if g['name'] != 'keep_ratios' for p in g['params']]
    assert norm > 1.0
    assert float(torch.sqrt(sum((p.grad ** 2).sum() for p in weights))) == pytest.approx(1.0, rel=1e-4)
    assert [float(l.keep_ratio.grad) for l in model.routed_layers()] == [3.0] * 4


def test_keep_ratios_rise_without_penalty_when_more_tokens_help():
    # lambda = 0: only the task gradient through Eq. 18's two passes moves r_l, and keeping
    # more frames of the sum lowers the loss, so r_avg rises from its initial 0.3
    cfg = _tiny_routed(target_keep_ratio=0.3, keep_ratio_init=0.3, keep_ratio_penalty=0.0)
    model, history = _train_tiny(cfg, lr=5e-4)
    assert np.mean(history['keep_ratios'][-1]) >= 0.35, history['keep_ratios']
    assert len(history['keep_ratio_grad']) == 20 and np.mean(history['keep_ratio_grad']) < 0
    _, control = _train_tiny(cfg, lr=5e-4, keep_ratio_lr=5e-4)
    assert np.mean(control['keep_ratios'][-1]) < 0.35


def test_keep_ratios_are_their_own_optimiser_group_without_weight_decay():
    from mmtok_ros.model import MultiModalTransformer
    from mmtok_ros.train.trainer import TrainConfig, parameter_groups
    model = MultiModalTransformer(_tiny_routed())
    groups = {g['name']: g for g in parameter_groups(model, TrainConfig(keep_ratio_lr=3e-3))}
    ratios = groups['keep_ratios']
    assert ratios['lr'] == 3e-3 and ratios['weight_decay'] == 0.0
    assert {id(p) for p in ratios['params']} == {id(l.keep_ratio) for l in model.routed_layers()}
    everything = [p for g in groups.values() for p in g['params']]
    assert len(everything) == len({id(p) for p in everything}) == len(list(model.parameters()))
    with pytest.raises(ValueError, match='keep_ratio_lr'):
        TrainConfig(keep_ratio_lr=0.0)


def test_adamw_decays_only_weight_matrices():
    from mmtok_ros.model import MultiModalTransformer
    from mmtok_ros.train.trainer import TrainConfig, parameter_groups
    model = MultiModalTransformer(preset('rsu-mini'))
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {g['name']: g for g in parameter_groups(model, TrainConfig(weight_decay=0.05))}
    decayed = {names[id(p)] for p in groups['decay']['params']}
    assert groups['decay']['weight_decay'] == 0.05 and groups['no_decay']['weight_decay'] == 0.0
    assert 'layers.0.block.attn.qkv.weight' in decayed and 'head.weight' in decayed
    assert 'frame_tokenizer.tokenizers.image.stem.0.weight' in decayed           # conv
    for never in ('cls', 'temporal.weight', 'frame_tokenizer.missing', 'layers.0.keep_ratio',
                  'frame_tokenizer.modality_embedding.weight', 'frame_tokenizer.spatial.image',
                  'layers.0.block.ln1.weight', 'head.bias', 'ln_f.weight',
                  'frame_tokenizer.tokenizers.image.stem.1.weight'):                # batch norm
        assert never not in decayed, never
    assert all(p.ndim >= 2 for p in groups['decay']['params'])


def test_accuracy_optimal_threshold_by_hand():
    from mmtok_ros.train.evaluation import accuracy_optimal_threshold
    p = np.array([0.1, 0.3, 0.6, 0.8, 0.9])
    labels = np.array([0, 0, 0, 1, 1])
    # every threshold in (0.6, 0.8] is right on all five: 0.61 ... 0.80, the middle is 0.71
    assert accuracy_optimal_threshold(p, labels) == (0.71, 1.0)
    # weighting the third window down to nothing widens the plateau to (0.3, 0.8]
    t, acc = accuracy_optimal_threshold(p, labels, np.array([1, 1, 0, 1, 1]))
    assert t == 0.56 and acc == 1.0


def test_the_model_file_carries_its_decision_threshold(testbed, tmp_path):
    from mmtok_ros.model import MultiModalTransformer
    from mmtok_ros.model.checkpoint import (DEFAULT_DECISION_THRESHOLD, ModelFileError,
                                            save_model)
    path = tmp_path / 'm.pt'
    assert main(['train', '--data', str(testbed), '--preset', 'rsu-mini', '--epochs', '1',
                 '--batch-size', '8', '--out', str(path), '--no-progress']) == 0
    model, meta = load_model(path)
    chosen = meta['history']['decision_threshold']
    assert 0 < meta['decision_threshold'] == chosen['value'] == model.decision_threshold <= 1
    assert chosen['n_windows'] == chosen['of_windows'] == len(
        dataset_from_bags(testbed, preset('rsu-mini'), progress=False)[0])
    # an old file without one loads with 0.5; a broken one is refused
    old = save_model(tmp_path / 'old.pt', MultiModalTransformer(preset('rsu-mini')))
    assert load_model(old)[0].decision_threshold == DEFAULT_DECISION_THRESHOLD == 0.5
    bad = save_model(tmp_path / 'bad.pt', model, meta={'decision_threshold': 1.5})
    with pytest.raises(ModelFileError, match='decision_threshold'):
        load_model(bad)


def test_the_down_pass_without_autograd_keeps_eq18_output_and_keep_ratio_gradient():
    from mmtok_ros.model import MultiModalTransformer
    torch.manual_seed(0)
    model = MultiModalTransformer(_tiny_routed(keep_ratio_init=0.45)).train()
    batch, _ = _sum_task(8).batch(np.arange(8))
    results = []
    for down_pass_grad in (True, False):
        for layer in model.routed_layers():
            layer.down_pass_grad = down_pass_grad
        model.zero_grad()
        out = model(batch)
        out.sum().backward()
        grads = torch.stack([layer.keep_ratio.grad for layer in model.routed_layers()])
        results.append((out.detach(), grads))
    (out_full, grad_full), (out_fast, grad_fast) = results
    assert torch.allclose(out_full, out_fast, atol=1e-6)
    # the last layer's dL/dr is exact; earlier layers' differ by the one-token difference of
    # the gradient that flows back through later layers
    assert torch.allclose(grad_full[-1], grad_fast[-1], rtol=1e-4, atol=1e-7)
    assert torch.allclose(grad_full, grad_fast, rtol=0.05) and grad_full.abs().min() > 0


# --- metrics that test prediction (issue 16, item 4), checked by hand --------------------------
def test_auroc_by_hand():
    from mmtok_ros.train.metrics import auroc
    # positives 0.8, 0.4; negatives 0.6, 0.2, 0.4: pairs (pos > neg) 0.8: 3, 0.4: 1 + a tie (0.5)
    assert auroc(np.array([0.8, 0.4, 0.6, 0.2, 0.4]), np.array([1, 1, 0, 0, 0])) == pytest.approx(
        4.5 / 6)
    assert auroc(np.array([0.9, 0.1]), np.array([1, 0])) == 1.0
    assert np.isnan(auroc(np.array([0.3, 0.4]), np.array([0, 0])))


def test_horizon_labels_look_ahead_within_a_scenario():
    from mmtok_ros.train.metrics import horizon_labels
    labels = np.array([0, 0, 0, 1, 1, 0, 0, 0, 1], np.float32)
    groups = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1])
    assert horizon_labels(labels, groups, 1).tolist() == labels.tolist()
    # H = 3: windows 1 and 2 see the blockage at 3; window 6 must not see scenario 1's
    assert horizon_labels(labels, groups, 3).tolist() == [0, 1, 1, 1, 1, 0, 0, 1, 1]
    with pytest.raises(ValueError, match='horizon'):
        horizon_labels(labels, groups, 0)


def test_lead_times_false_alarms_and_onset_recall_ahead_by_hand():
    from mmtok_ros.train.metrics import alarm_scores, lead_frames, recall_at_false_alarm_rate
    #          0  1  2  3  4  5  6  7  8  9 | 10 11 12 13
    labels = np.array([0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0], np.float32)
    groups = np.array([0] * 10 + [1] * 4)
    alarm = np.array([0, 1, 0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 1], bool)
    # onsets: 4 (alarms at 3, 4: lead 2) and 12 (missed: lead 0)
    assert lead_frames(alarm, labels, groups).tolist() == [2, 0]
    scores = alarm_scores(alarm, labels, groups, definition='legacy')
    # legacy false alarms: window 1 (isolated), windows 7-8 (one run), window 13; the run at
    # 3 leads into the onset and is an early warning
    assert scores['false_alarms'] == 3
    # proactive: window 13 starts while the link is blocked (the tail of the blockage at 12):
    # a late all-clear, not a false alarm
    proactive = alarm_scores(alarm, labels, groups)
    assert proactive['false_alarms'] == 2 and proactive['late_all_clears'] == 1
    assert scores['clear_minutes'] == pytest.approx(11 * 0.3 / 60)
    assert scores['false_alarms_per_min'] == pytest.approx(3 / (11 * 0.3 / 60))
    assert scores['onset_recall_ahead'] == {'1': 0.5, '2': 0.5, '3': 0.0, '5': 0.0}
    assert scores['median_lead_ms'] == pytest.approx(300.0)
    # at <= 20 false alarms per minute (0.055 min of clear link: at most 1 false alarm) the
    # lowest threshold that qualifies is 0.61 (window 7's 0.6 and 13's 0.5 no longer alarm)
    p = np.array([0.1, 0.7, 0.1, 0.2, 0.9, 0.9, 0.1, 0.6, 0.3, 0.1, 0.1, 0.1, 0.3, 0.5])
    at = recall_at_false_alarm_rate(p, labels, groups, max_per_min=20.0, definition='legacy')
    assert at['threshold'] == 0.61 and at['onset_recall'] == 0.5
    assert at['false_alarms_per_min'] == pytest.approx(1 / (11 * 0.3 / 60))


def test_persistence_baseline_announces_no_onset_and_always_clear_has_chance_auroc():
    from mmtok_ros.train.metrics import baseline_scores, persistence_alarm
    labels = np.array([0, 0, 1, 1, 0, 1, 1], np.float32)
    groups = np.array([0, 0, 0, 0, 0, 1, 1])
    assert persistence_alarm(labels, groups).tolist() == [0, 0, 0, 1, 1, 0, 1]
    base = baseline_scores(labels, groups)
    assert base['persistence']['onset_recall_ahead']['1'] == 0.0
    assert base['persistence']['accuracy'] == pytest.approx(4 / 7)
    assert base['always_clear']['auroc'] == 0.5
    assert base['always_clear']['accuracy'] == pytest.approx(3 / 7)


def test_training_benchmark_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / 'bench_train.json'
    assert main(['bench_train', '--preset', 'rsu-mini', '--methods', 'routed,ablation3',
                 '--steps', '1', '--batch-size', '4', '--threads', '1', '--recipe-windows', '400',
                 '--threshold-windows', '40', '--out', str(out)]) == 0
    rows = json.loads(out.read_text())['rows']
    assert [(r['method'], r['eq18_down_pass']) for r in rows] == [
        ('routed', 'grad'), ('routed', 'no-grad'), ('ablation3', 'grad')]
    for r in rows:
        assert r['threads'] == 1 and r['train_windows_per_s'] > 0 and r['infer_windows_per_s'] > 0
        assert r['recipe_minutes'] == pytest.approx(
            (400 / r['train_windows_per_s'] + 40 / r['infer_windows_per_s']) / 60)
    assert '| routed | no-grad | 1 |' in capsys.readouterr().out


def test_kind_folds_hold_out_whole_kinds(tmp_path):
    from mmtok_ros.train.crossval import kind_folds, scenario_kinds
    groups = np.repeat(np.arange(6), 3)
    kinds = ['truck', 'van', 'bus', 'truck', 'van', 'bus']     # kind of each scenario
    folds = kind_folds(groups, kinds, 3)
    for train, test in folds:
        assert len({kinds[g] for g in groups[test]}) == 1
        assert not {kinds[g] for g in groups[train]} & {kinds[g] for g in groups[test]}
    with pytest.raises(ValueError, match='by kind'):
        kind_folds(groups, kinds, 4)
    (tmp_path / 'index.json').write_text(json.dumps({'scenarios': [{'name': 'a', 'kind': 'k1'}]}))
    (tmp_path / 'b.truth.json').write_text(json.dumps({'kind': 'k2'}))
    assert scenario_kinds(tmp_path, ['a', 'b']) == ['k1', 'k2']
    with pytest.raises(ValueError, match='no scenario kind'):
        scenario_kinds(tmp_path, ['c'])


def test_keep_ratios_of_model_files_are_printed_and_plotted(tmp_path, capsys):
    from mmtok_ros.model import MultiModalTransformer
    from mmtok_ros.model.checkpoint import save_model
    model = MultiModalTransformer(preset('rsu-mini', keep_ratio_init=0.35))
    path = save_model(tmp_path / 'r.pt', model)
    assert main(['report', '--data', 'unused', '--plot-keep-ratios', str(path),
                 '--out', str(tmp_path)]) == 0
    assert (tmp_path / 'keep_ratios_models.png').stat().st_size > 0
    assert 'r_1..r_4 = 0.350, 0.350, 0.350, 0.350' in capsys.readouterr().out
    mha = save_model(tmp_path / 'm.pt', MultiModalTransformer(preset('rsu-mini', method='mha')))
    assert main(['report', '--data', 'unused', '--plot-keep-ratios', str(mha),
                 '--out', str(tmp_path)]) == 2


# --- onset weight: the windows a proactive handover is decided on ------------------
def test_onset_weight_marks_clear_now_blocked_soon_windows_only():
    from mmtok_ros.train.trainer import onset_window_weights
    #                 0  1  2  3  4  5  6 | 7  8
    next_frame = [0, 0, 0, 1, 1, 1, 0, 0, 1]
    groups = [0, 0, 0, 0, 0, 0, 0, 1, 1]
    data = _labelled(next_frame, groups).with_horizon(2)
    # H = 2: window i is blocked within 2 frames if next_frame[i] or next_frame[i + 1] is;
    # its link is blocked now if next_frame[i - 1] is (a scenario's first window: clear).
    # Clear now and blocked soon: 2 and 3 (before the blockage), 7 and 8 (scenario 1's first
    # windows); 4, 5 and 6 are blocked now
    assert data.labels.tolist() == [0, 0, 1, 1, 1, 1, 0, 1, 1]
    weights = onset_window_weights(data, 4.0)
    assert weights.tolist() == [1, 1, 4, 4, 1, 1, 1, 4, 4]
    assert onset_window_weights(data, 1.0) is None
    with pytest.raises(ValueError, match='onset_weight'):
        from mmtok_ros.train.trainer import TrainConfig
        TrainConfig(onset_weight=0)


def test_batch_weights_have_mean_one_over_the_global_batch_and_slice_per_rank():
    from mmtok_ros.train.trainer import batch_weights
    window_weight = np.array([1, 4, 1, 1, 4, 1], np.float32)
    rows = np.array([1, 0, 2, 3])
    whole = batch_weights(window_weight, rows, (0, 4), 'cpu')
    assert whole.tolist() == pytest.approx([4 / 1.75, 1 / 1.75, 1 / 1.75, 1 / 1.75])
    assert float(whole.mean()) == pytest.approx(1.0)
    halves = [batch_weights(window_weight, rows, b, 'cpu') for b in ((0, 2), (2, 4))]
    assert torch.cat(halves).tolist() == pytest.approx(whole.tolist())
    assert batch_weights(window_weight, rows, (2, 2), 'cpu') is None
    assert batch_weights(None, rows, (0, 4), 'cpu') is None


def test_weighted_windows_pull_the_model_towards_their_label():
    # the same windows, one copy labelled 1 and one 0: weight 9 on the first copy pushes
    # p towards 0.9 (1:9 odds of a weighted mean), unweighted it stays near 0.5
    from mmtok_ros.train.trainer import task_loss
    logit = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([logit], lr=0.5)
    labels = torch.tensor([1.0, 0.0])
    weight = torch.tensor([9.0, 1.0]) / 5.0
    for _ in range(300):
        opt.zero_grad()
        task_loss(logit.expand(2, 1), labels, None, weight).backward()
        opt.step()
    assert torch.sigmoid(logit).item() == pytest.approx(0.9, abs=0.01)


def test_calibrate_writes_the_lowest_threshold_within_the_false_alarm_budget(testbed, tmp_path,
                                                                               capsys):
    from mmtok_ros.model import MultiModalTransformer
    from mmtok_ros.model.checkpoint import save_model
    from mmtok_ros.train.evaluation import evaluate
    torch.manual_seed(0)
    path = save_model(tmp_path / 'm.pt', MultiModalTransformer(preset('rsu-mini')).eval(),
                      meta={'decision_threshold': 0.6, 'label_horizon_frames': 1})
    data, _ = dataset_from_bags(testbed, preset('rsu-mini'), progress=False)
    model, _ = load_model(path)
    for budget in (0.0, 1e9):
        out = tmp_path / f'cal_{budget:g}.pt'
        code = main(['calibrate', '--model', str(path), '--data', str(testbed), '--out', str(out),
                     '--max-false-alarms-per-min', str(budget), '--no-progress'])
        if code != 0:       # an untrained model may alarm at every threshold: said, no file
            assert budget == 0.0 and 'no threshold' in capsys.readouterr().err
            assert not out.exists()
            continue
        calibrated, meta = load_model(out)
        rates = {t: evaluate(model, data, threshold=t, max_false_alarms_per_min=budget)
                 ['false_alarms_per_min'] for t in (calibrated.decision_threshold,
                                                    calibrated.decision_threshold - 0.01)}
        assert rates[calibrated.decision_threshold] <= budget
        if calibrated.decision_threshold > 0.01:       # the lowest such threshold
            assert rates[calibrated.decision_threshold - 0.01] > budget
        assert meta['calibration']['previous_threshold'] == 0.6
        assert meta['calibration']['bags'] == ['scenario_00', 'scenario_01']
        for a, b in zip(calibrated.state_dict().values(), model.state_dict().values()):
            assert torch.equal(a, b)                   # the same weights
    assert calibrated.decision_threshold == 0.01       # no budget: the lowest grid threshold
    assert main(['calibrate', '--model', str(path), '--data', str(testbed), '--out',
                 str(path)]) == 2                      # never overwrites its input
