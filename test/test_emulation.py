"""Handover decision with hysteresis and the emulation core on the testbed preset (Fig. 5)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mmtok_ros.reports import emulation as report
from mmtok_ros.runtime import emulation as emu
from mmtok_ros.runtime.handover import HandoverDecision, HysteresisConfig

P = 300_000_000
T0 = 1_000 * 1_000_000_000


TESTBED = emu.EmulationOptions.testbed()


def timeline(n=30, blocked=range(12, 18)) -> emu.Timeline:
    """RSU 1 serves at -40 dBm, blocked (-60 dBm) at frames ``blocked``; RSU 2 at -44 dBm."""
    t = T0 + P * np.arange(n, dtype=np.int64)
    home = np.full(n, -40.0)
    home[list(blocked)] = -60.0
    true = {'rsu1': home, 'rsu2': np.full(n, -44.0)}
    intervals = {'rsu1': [(int(t[min(blocked)]), int(t[max(blocked)]))], 'rsu2': []}
    return emu.Timeline(t, true, {r: v.copy() for r, v in true.items()}, intervals, 'rsu1',
                        name='scenario_test')


def run_testbed(tl, proactive):
    policies = {'proactive': proactive, **emu.baseline_switches(tl, TESTBED)}
    return {k: r.metrics for k, r in emu.evaluate(tl, policies, TESTBED).items()}


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
    m = run_testbed(tl, emu.switches_from_triggers([(first - 200_000_000, 'rsu2'),
                                                    (first + 9 * P, 'rsu1')]))
    late = run_testbed(tl, [emu.Switch(first + P + 5, 'rsu2')])['proactive']
    assert m['proactive']['lead_time_ms'] == pytest.approx(200.0)
    assert m['proactive']['time_below_threshold_s'] == 0.0
    assert m['proactive']['handovers'] == 2
    assert m['oracle']['lead_time_ms'] == pytest.approx(300.0)
    assert m['oracle']['time_below_threshold_s'] == 0.0
    # reactive: the frame that reveals the drop is served degraded, then rsu2, and back home
    # after five frames measured clear
    assert m['reactive']['time_below_threshold_s'] == pytest.approx(0.3)
    assert m['reactive']['lead_time_ms'] < 0 and m['reactive']['handovers'] == 2
    assert late['lead_time_ms'] == pytest.approx(-300.0, abs=1e-3)
    assert late['time_below_threshold_s'] == pytest.approx(0.6)
    assert m['proactive']['mean_served_rssi_dbm'] > m['reactive']['mean_served_rssi_dbm']
    assert (late['serving_blockages'], late['handed_over_before_blockage']) == (1, 0)
    assert m['proactive']['blockages'] == [{'rsu': 'rsu1', 'start_s': pytest.approx(3.6),
                                            'lead_ms': pytest.approx(200.0)}]


def test_a_handover_long_before_the_blockage_still_counts_on_a_fixed_home():
    tl = timeline()
    first = tl.blockage_intervals_ns[0][0]
    m = run_testbed(tl, [emu.Switch(first - 3 * P, 'rsu2')])['proactive']
    assert m['lead_time_ms'] == pytest.approx(900.0) and m['handed_over_before_blockage'] == 1


def test_the_node_decision_executes_after_its_latency():
    tl = timeline()
    k0 = 11                                    # a frame before the blockage
    p = {'rsu1': [0.9 if k0 <= k < 18 else 0.0 for k in range(len(tl.t_ns))]}
    windows = {'rsu1': [(int(t) + 7, v) for t, v in zip(tl.t_ns, p['rsu1'])]}
    preds = emu.FramePredictions.from_windows(tl, windows)
    fast = emu.emulate(tl, TESTBED.with_latency(50.0), preds=preds)
    slow = emu.emulate(tl, TESTBED.with_latency(400.0), preds=preds)
    assert fast.records[0].exec_ns == int(tl.t_ns[k0]) + 7 + 50_000_000
    assert (fast.records[0].reason, fast.records[0].target_rsu) == ('predicted_blockage', 'rsu2')
    assert fast.metrics['proactive']['lead_time_ms'] == pytest.approx(250.0 - 7e-6)
    assert slow.metrics['proactive']['lead_time_ms'] == pytest.approx(-100.0 - 7e-6)
    assert fast.check['passed'] and fast.check['before_blockage']


def test_the_floor_hands_over_when_the_model_misses():
    """A model held at "clear": the node's floor hands over at the frame reactive does, one
    latency later, and hands back once the model says clear and the dwell has passed."""
    tl = timeline()
    result = emu.emulate(tl, TESTBED.with_latency(40.0), preds=emu.FramePredictions.constant(
        tl, 0.0, rsus=('rsu1',)))
    reactive = emu.baseline_switches(tl, TESTBED)['reactive']
    first = result.records[0]
    assert (first.frame, first.reason, first.target_rsu) == (12, 'measured_below_threshold',
                                                             'rsu2')
    assert first.exec_ns == reactive[0].time_ns - 1 + 40_000_000
    m = result.metrics
    assert m['proactive']['time_below_threshold_s'] == m['reactive']['time_below_threshold_s']
    assert [r.reason for r in result.records] == ['measured_below_threshold',
                                                  'predicted_clear']
    assert result.records[1].frame >= 18       # not while the home link is measured down


def test_frames_without_a_window_are_not_decided_on_the_testbed():
    tl = timeline()
    preds = emu.FramePredictions.constant(tl, 0.0)
    preds.stamp_ns['rsu1'][12] = -1                         # the first blocked frame: no window
    preds.p_blocked['rsu1'][12] = np.nan
    records = emu.decide(tl, preds, TESTBED.decision)
    assert records[0].frame == 13
    road_like = emu.decide(tl, preds, emu.EmulationOptions.road().decision)
    assert road_like[0].frame == 12                          # the road's floor decides anyway
    assert road_like[0].event.target_rssi_dbm == -44.0       # rsu2 observed as a neighbour


def test_timelines_from_samples_and_truth():
    tl = timeline(n=10, blocked=range(4, 6))
    samples = {'rsu1': [(int(t) + 7, float(v)) for t, v in zip(tl.t_ns, tl.rssi_dbm['rsu1'])],
               'rsu2': [(int(t) - 9, -44.0) for t in tl.t_ns[::2]]}
    measured = emu.timeline_from_samples(samples, home_rsu='rsu1')
    assert len(measured.t_ns) == 10 and np.isnan(measured.rssi_dbm['rsu2'][1])
    assert len(measured.blockage_intervals_ns) == 1
    on = emu.values_on_frames(tl.t_ns, samples['rsu1'], P)
    assert np.array_equal(on, tl.rssi_dbm['rsu1'])
    assert emu.frame_index(tl.t_ns, int(tl.t_ns[3]) + P // 2 + 1, P) == 4
    assert emu.frame_index(tl.t_ns, int(tl.t_ns[-1]) + P, P) is None
    truth = {'scenario': 'scenario_07', 'frame_period_ns': P, 's_th_dbm': -47.0, 'kind': 'k',
             'blockage_intervals_ns': [[int(tl.t_ns[4]), int(tl.t_ns[5])]],
             'frames': [{'t_nominal_ns': int(t), 'true_rssi_dbm': {'rsu1': float(a),
                                                                   'rsu2': -44.0},
                         'measured_rssi_dbm': {'rsu1': None if k == 3 else float(a),
                                               'rsu2': -44.0}}
                        for k, (t, a) in enumerate(zip(tl.t_ns, tl.rssi_dbm['rsu1']))]}
    from_truth = emu.timeline_from_truth(truth)
    assert from_truth.name == 'scenario_07' and from_truth.blockage_intervals_ns == [
        (int(tl.t_ns[4]), int(tl.t_ns[5]))]
    assert from_truth.rsus == ('rsu1', 'rsu2') and from_truth.home_rsu == 'rsu1'
    assert np.isnan(from_truth.measured_dbm['rsu1'][3])
    live = emu.with_measured(from_truth, {'rsu1': samples['rsu1'][:5]})
    assert np.isnan(live.measured_dbm['rsu1'][7]) and live.measured_dbm['rsu1'][3] == -40.0
    assert emu.EmulationOptions.for_truth(truth).preset == 'testbed'


def test_write_outputs(tmp_path):
    tl = timeline()
    result = emu.emulate(tl, TESTBED, proactive=[])
    doc = report.write_outputs(tmp_path, result)
    assert (tmp_path / 'scenario_test.png').stat().st_size > 1000
    rows = (tmp_path / 'scenario_test.csv').read_text().splitlines()
    assert len(rows) == 31 and rows[0].startswith('frame,t_s,true_rsu1_dbm,measured_rsu1_dbm')
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary == json.loads(json.dumps(doc))
    for name in emu.POLICIES:
        assert {'mean_served_rssi_dbm', 'time_below_threshold_s', 'handovers',
                'lead_time_ms', 'blockages'} <= set(summary['policies'][name])
    assert summary['policies']['proactive']['lead_time_ms'] is None
    assert summary['switches']['oracle'][0] == {'t_s': pytest.approx(3.3), 'rsu': 'rsu2'}


def test_checks_and_table_rows_read_the_emulation_metrics():
    tl = timeline()
    late = [emu.Switch(int(tl.t_ns[14]), 'rsu2'), emu.Switch(int(tl.t_ns[23]), 'rsu1')]
    result = emu.emulate(tl, TESTBED, proactive=late)
    check = result.check
    assert not check['before_blockage'] and not check['above_reactive']
    assert not check['passed'] and check['d_time_below_s'] == pytest.approx(0.3)
    rows = report.rows('s', result.metrics, {'proactive': check})
    assert [r['policy'] for r in rows] == ['proactive', 'reactive', 'oracle']
    table = report.markdown(rows)
    assert '| s | proactive | 0/1 | -600 |' in table and 'FAIL' in table
    assert '| s | oracle | 1/1 | 300 |' in table and '| s | reactive | 0/1 | 0 |' in table


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
    printed = capsys.readouterr().out
    assert 'preset testbed' in printed and 'proactive before the blockage in' in printed
    doc = json.loads((out / 'summary.json').read_text())
    assert doc['latency_ms'] == 40 and doc['blocked_scenarios'] == 1 and doc['n_rsus'] == 2
    scenario = doc['scenarios']['scenario_00']
    assert scenario['policies']['oracle']['handed_over_before_blockage'] == 1
    assert set(scenario['windows']) == {'rsu1'} and len(scenario['windows']['rsu1']) > 20
    # the proactive metrics, in total, end with the four targets (stdout and .md)
    pm, mine = doc['proactive_metrics'], scenario['policies']['proactive']
    assert pm['latency_ms'] == 40 and mine['in_time_lead_ms'] == 40
    assert pm['blockages'] == mine['serving_blockages'] == 1
    assert pm['proactive_handovers'] == mine['proactive_handovers'] is not None
    assert [a['target'] for a in pm['acceptance']] == [
        'blockages_in_time', 'spurious_per_hour', 'outage_never_longer',
        'outage_saving_fraction']
    assert 'Acceptance (proactive-handover targets):' in printed
    assert pm['acceptance'][0]['line'] in printed
    md = (out / 'summary.md').read_text()
    assert md.rstrip().endswith(pm['acceptance'][-1]['line'])
    assert '| [scenario_00](fig5_scenario_00.png) | ' in md
    assert (out / 'fig5_scenario_00.png').stat().st_size > 0
    assert main(['emulate', '--model', str(model), '--data', str(data), '--out', str(out),
                 '--rsus', '3', '--no-progress']) == 2
    assert '2 RSUs, --rsus says 3' in capsys.readouterr().err.replace('[2]', '2')
    (data / 'scenario_00.truth.json').unlink()
    assert main(['emulate', '--model', str(model), '--data', str(data), '--out', str(out),
                 '--no-progress']) == 2
    assert 'scenario_00.truth.json' in capsys.readouterr().err
