"""Handover decision with hysteresis and the ROS-free handover emulation (Fig. 5)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mmtok_ros.reports import emulation as report
from mmtok_ros.runtime import emulation as emu
from mmtok_ros.runtime.handover import HandoverDecision, HysteresisConfig

P = 300_000_000
T0 = 1_000 * 1_000_000_000


def timeline(n=30, blocked=range(12, 18)) -> emu.Timeline:
    t = T0 + P * np.arange(n, dtype=np.int64)
    home = np.full(n, -40.0)
    home[list(blocked)] = -60.0
    target = np.full(n, -44.0)
    intervals = [(int(t[min(blocked)]), int(t[max(blocked)]))]
    return emu.Timeline(t, {'rsu1': home, 'rsu2': target}, intervals, name='scenario_test')


def test_decision_hands_over_once_and_does_not_flap():
    d = HandoverDecision('rsu1', 'rsu2', HysteresisConfig(p_on=0.5, p_off=0.3, on_windows=1,
                                                          off_windows=3, min_dwell_ns=2 * P))
    ps = [0.1, 0.6, 0.9, 0.4, 0.2, 0.6, 0.2, 0.1, 0.1, 0.1, 0.9]
    events = [(k, d.update(T0 + k * P, p)) for k, p in enumerate(ps)]
    fired = [(k, e.target_rsu, e.reason) for k, e in events if e is not None]
    # p in the band (0.3..0.5) or a single low window never hands back: 3 in a row needed
    assert fired == [(1, 'rsu2', 'predicted_blockage'), (8, 'rsu1', 'predicted_clear'),
                     (10, 'rsu2', 'predicted_blockage')]
    assert d.handovers == 3


def test_decision_config_is_validated_and_time_jump_resets_streaks():
    with pytest.raises(ValueError, match='p_off'):
        HysteresisConfig(p_on=0.3, p_off=0.5)
    with pytest.raises(ValueError, match='differ'):
        HandoverDecision('rsu1', 'rsu1')
    d = HandoverDecision('rsu1', 'rsu2', HysteresisConfig(on_windows=2))
    assert d.update(T0 + 5 * P, 0.9) is None
    assert d.update(T0, 0.9) is None            # went back in time: streak starts again
    assert d.update(T0 + P, 0.9) is not None


def test_policies_on_a_blockage():
    tl = timeline()
    first = tl.blockage_intervals_ns[0][0]
    proactive = emu.proactive_switches([(first - 200_000_000, 'rsu2'), (first + 9 * P, 'rsu1')])
    late = emu.proactive_switches([(first + P + 5, 'rsu2')])
    results = emu.emulate(tl, {'proactive': proactive, 'late': late,
                               'reactive': emu.reactive_switches(tl, off_frames=3),
                               'oracle': emu.oracle_switches(tl)})
    m = {k: r.metrics for k, r in results.items()}
    assert m['proactive']['lead_time_ms'] == pytest.approx(200.0)
    assert m['proactive']['time_below_threshold_s'] == 0.0
    assert m['proactive']['handovers'] == 2
    assert m['oracle']['lead_time_ms'] == pytest.approx(300.0)
    assert m['oracle']['time_below_threshold_s'] == 0.0
    # reactive: the frame that reveals the drop is served degraded, then rsu2
    assert m['reactive']['time_below_threshold_s'] == pytest.approx(0.3)
    assert m['reactive']['lead_time_ms'] < 0
    assert m['late']['lead_time_ms'] == pytest.approx(-300.0, abs=1e-3)
    assert m['late']['time_below_threshold_s'] == pytest.approx(0.6)
    assert m['proactive']['mean_served_rssi_dbm'] > m['reactive']['mean_served_rssi_dbm']
    assert m['late']['handed_over_before_blockage'] == [False]


def test_offline_predictions_execute_after_their_latency():
    tl = timeline()
    first = tl.blockage_intervals_ns[0][0]
    preds = [(int(t), 0.9 if t >= first - P else 0.0, 50.0) for t in tl.t_ns]
    fast = emu.switches_from_predictions(preds)
    slow = emu.switches_from_predictions([(s, p, 400.0) for s, p, _ in preds])
    assert fast[0] == emu.Switch(first - P + 50_000_000, 'rsu2')
    lead_fast = emu.lead_times_ms(tl, fast)[0]
    lead_slow = emu.lead_times_ms(tl, slow)[0]
    assert lead_fast == pytest.approx(250.0) and lead_slow == pytest.approx(-100.0)


def test_timelines_from_samples_and_truth(tmp_path):
    tl = timeline(n=10, blocked=range(4, 6))
    samples = {'rsu1': [(int(t) + 7, float(v)) for t, v in zip(tl.t_ns, tl.rssi_dbm['rsu1'])],
               'rsu2': [(int(t) - 9, -44.0) for t in tl.t_ns[::2]]}
    measured = emu.timeline_from_samples(samples)
    assert len(measured.t_ns) == 10 and np.isnan(measured.rssi_dbm['rsu2'][1])
    assert len(measured.blockage_intervals_ns) == 1
    on = emu.measured_on_timeline(tl, samples['rsu1'])
    assert np.array_equal(on, tl.rssi_dbm['rsu1'])
    truth = {'scenario': 'scenario_07', 'frame_period_ns': P, 's_th_dbm': -47.0,
             'blockage_intervals_ns': [[int(tl.t_ns[4]), int(tl.t_ns[5])]],
             'frames': [{'t_nominal_ns': int(t), 'true_rssi_dbm': {'rsu1': float(a),
                                                                   'rsu2': -44.0},
                         'measured_rssi_dbm': {'rsu1': None if k == 3 else float(a),
                                               'rsu2': -44.0}}
                        for k, (t, a) in enumerate(zip(tl.t_ns, tl.rssi_dbm['rsu1']))]}
    from_truth = emu.timeline_from_truth(truth)
    assert from_truth.name == 'scenario_07' and from_truth.blockage_intervals_ns == [
        (int(tl.t_ns[4]), int(tl.t_ns[5]))]
    assert np.isnan(emu.timeline_measured_from_truth(truth)[3])


def test_write_outputs(tmp_path):
    tl = timeline()
    results = emu.emulate(tl, {'proactive': [], 'reactive': emu.reactive_switches(tl),
                               'oracle': emu.oracle_switches(tl)})
    doc = report.write_outputs(tmp_path, tl, results)
    assert (tmp_path / 'scenario_test.png').stat().st_size > 1000
    rows = (tmp_path / 'scenario_test.csv').read_text().splitlines()
    assert len(rows) == 31 and rows[0].startswith('frame,t_s,rssi_rsu1_dbm')
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary == json.loads(json.dumps(doc))
    for name in ('proactive', 'reactive', 'oracle'):
        assert {'mean_served_rssi_dbm', 'time_below_threshold_s', 'handovers',
                'lead_time_ms'} <= set(summary['policies'][name])
    assert summary['policies']['proactive']['lead_time_ms'] is None


def test_checks_and_table_rows_read_the_emulation_metrics():
    tl = timeline()
    late = [emu.Switch(int(tl.t_ns[14]), 'rsu2'), emu.Switch(int(tl.t_ns[23]), 'rsu1')]
    results = emu.emulate(tl, {'proactive': late, 'reactive': emu.reactive_switches(tl),
                               'oracle': emu.oracle_switches(tl)})
    metrics = {p: r.metrics for p, r in results.items()}
    check = report.proactive_check('s', metrics)
    assert check == {'scenario': 's', 'proactive_before_blockage': False,
                     'proactive_above_reactive': False}     # two frames later than reactive
    rows = report.policy_rows('s', metrics)
    assert [r['policy'] for r in rows] == ['proactive', 'reactive', 'oracle']
    assert [r['before'] for r in rows] == [False, False, True]
    table = report.markdown_table(rows)
    assert '| s | oracle | yes | 300 |' in table and '| s | reactive | no | 0 |' in table


def test_emulate_command_runs_a_model_over_recorded_scenarios(tmp_path, capsys):
    from mmtok_ros.cli import main
    from mmtok_ros.model import MultiModalTransformer, preset
    from mmtok_ros.model.checkpoint import save_model
    from mmtok_ros.sim.simulate import simulate
    data = tmp_path / 'bags'
    simulate(data, n_scenarios=1, seed=0, frames_per_scenario=36, progress=False)  # blocks at 9 s
    model = save_model(tmp_path / 'm.pt', MultiModalTransformer(preset('rsu-mini')))
    out = tmp_path / 'emu'
    assert main(['emulate', '--model', str(model), '--data', str(data), '--out', str(out),
                 '--latency-ms', '40', '--no-progress']) == 0
    doc = json.loads((out / 'summary.json').read_text())
    assert doc['latency_ms'] == 40 and doc['blocked_scenarios'] == 1
    oracle = doc['scenarios']['scenario_00']['policies']['oracle']
    assert oracle['handed_over_before_blockage'] == [True]
    assert (out / 'fig5_scenario_00.png').stat().st_size > 0
    assert 'proactive before the blockage in' in capsys.readouterr().out
    (data / 'scenario_00.truth.json').unlink()
    assert main(['emulate', '--model', str(model), '--data', str(data), '--out', str(out),
                 '--no-progress']) == 2
    assert 'scenario_00.truth.json' in capsys.readouterr().err
