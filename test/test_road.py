"""N RSUs along a road: the simulator, and the emulation core on the road preset."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmtok_ros.constants import S_TH_DBM
from mmtok_ros.reports import emulation as report
from mmtok_ros.runtime import emulation as emu
from mmtok_ros.runtime.emulation import Switch
from mmtok_ros.sim import road as sim

P = 300_000_000
T0 = 2_000 * 1_000_000_000
N_FRAMES = 8


@pytest.fixture(scope='module')
def road_run(tmp_path_factory) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp('road') / 'run'
    return out, sim.simulate_road(out, n_rsus=3, n_scenarios=1, seed=5,
                                  frames_per_scenario=N_FRAMES, progress=False)


# ----------------------------------------------------------------------------- simulator
def test_topic_maps_read_own_link_first_and_the_neighbour_ahead():
    assert sim.window_topic_map(1, 3) == {
        '/rsu1/camera/image_raw': 'image', '/rsu1/lidar/points': 'lidar',
        '/rssi/rsu1': 'rssi/rsu1', '/rssi/rsu2': 'rssi/rsu2'}
    assert sim.window_topic_map(2, 4)['/rssi/rsu3'] == 'rssi/rsu2'
    last = sim.window_topic_map(3, 3)          # nothing ahead: the nearest behind
    assert last['/rssi/rsu3'] == 'rssi/rsu1' and last['/rssi/rsu2'] == 'rssi/rsu2'
    with pytest.raises(ValueError, match='at least 3'):
        sim.make_road_scenario(0, 0, 2)


def test_simulator_writes_every_rsu_topic_and_is_deterministic(road_run, tmp_path):
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    out, infos = road_run
    info = infos[0]
    expected = {'/tf_static'} | {f'/{r}/camera/image_raw' for r in ('rsu1', 'rsu2', 'rsu3')} \
        | {f'/{r}/lidar/points' for r in ('rsu1', 'rsu2', 'rsu3')} \
        | {f'/rssi/{r}' for r in ('rsu1', 'rsu2', 'rsu3')}
    with AnyReader([Path(info.bag_path)],
                   default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        assert {c.topic for c in reader.connections} == expected
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types['/rssi/rsu3'] == 'sensor_msgs/msg/Temperature'
        truth = json.loads(Path(info.truth_path).read_text())
        rssi = [(c.topic, reader.deserialize(raw, c.msgtype))
                for c, _, raw in reader.messages([c for c in reader.connections
                                                  if c.topic == '/rssi/rsu2'])]
    assert all(n >= N_FRAMES - 2 for t, n in info.message_counts.items() if t != '/tf_static')
    # RSSI is header-stamped at measurement time: the sidecar's stamp and measured value
    by_stamp = {f['stamp_ns']['rsu2/rssi']: f['measured_rssi_dbm']['rsu2']
                for f in truth['frames'] if f['stamp_ns']['rsu2/rssi'] is not None}
    for _, msg in rssi:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        assert msg.header.frame_id == 'rsu2'
        assert msg.temperature == pytest.approx(by_stamp[stamp])
    assert truth['rsus'] == ['rsu1', 'rsu2', 'rsu3'] and truth['n_rsus'] == 3
    assert set(truth['link_blockage_intervals_ns']) == {'rsu1', 'rsu2', 'rsu3'}
    assert truth['window_topic_maps']['rsu3'] == sim.window_topic_map(3, 3)
    again = sim.simulate_road(tmp_path / 'again', n_rsus=3, n_scenarios=1, seed=5,
                              frames_per_scenario=N_FRAMES, progress=False)[0]
    assert again.payload_sha256 == info.payload_sha256
    assert Path(again.truth_path).read_bytes() == Path(info.truth_path).read_bytes()
    with pytest.raises(FileExistsError):
        sim.simulate_road(out, n_rsus=3, n_scenarios=1, seed=5, frames_per_scenario=2,
                          progress=False)


def test_each_rsu_sees_the_scene_from_its_own_pole():
    sc = sim.make_road_scenario(0, 0, 3)
    car_world = sc.boxes_at(4.0)[0]
    for k in (1, 2, 3):
        car_k = sc.boxes_for_rsu(k, 4.0)[0]
        assert car_k[0][0] == pytest.approx(car_world[0][0] - (k - 1) * sim.ROAD_SPACING_M)
        poles = [b for b in sc.boxes_for_rsu(k, 4.0) if b[2].kind == 'pole']
        assert len(poles) == 2 and all(abs(p[0][0]) > 1.0 for p in poles)   # not its own


def test_blockers_cross_different_links_at_different_times():
    t_s = np.arange(sim.DEFAULT_ROAD_FRAMES) * 0.3
    onsets_differ = 0
    for i, kind in enumerate(sim.ROAD_KINDS):
        sc = sim.make_road_scenario(i, 0, 3)
        ch = sim.road_channel(sc, t_s, {r: np.zeros(len(t_s)) for r in sc.rsus})
        blocked = {r: ch['rssi'][r] < S_TH_DBM for r in sc.rsus}
        by_vehicle = {r: ch['loss'][r] > 10.0 for r in sc.rsus}
        if kind.name.endswith('_clear'):
            assert not any(b.any() for b in blocked.values()), kind.name
            continue
        hit = [r for r in sc.rsus if by_vehicle[r].any()]
        assert len(hit) >= 2, kind.name                  # more than one link is crossed
        onsets = {int(np.argmax(by_vehicle[r])) for r in hit}
        onsets_differ += len(onsets) == len(hit)
        assert len({blocked[r].tobytes() for r in sc.rsus}) > 1, kind.name
    assert onsets_differ >= 3


# ----------------------------------------------------------------------------- emulation
ROAD = emu.EmulationOptions.road(latency_ms=40.0)


def scripted(n: int = 30) -> emu.Timeline:
    """rsu1 serves (-36 dBm); rsu1 blocked at frames 10-15, rsu2 at 11-18; rsu3 weaker
    (-42 dBm) but never blocked; rsu2 beats rsu3 when both are clear."""
    t = T0 + P * np.arange(n, dtype=np.int64)
    true = {'rsu1': np.full(n, -36.0), 'rsu2': np.full(n, -38.0), 'rsu3': np.full(n, -42.0)}
    true['rsu1'][10:16] = -60.0
    true['rsu2'][11:19] = -62.0
    measured = {r: v + 0.2 for r, v in true.items()}
    measured['rsu3'][[3, 12]] = np.nan          # dropped reports
    links = {'rsu1': [(int(t[10]), int(t[15]))], 'rsu2': [(int(t[11]), int(t[18]))],
             'rsu3': []}
    return emu.Timeline(t, true, measured, links, 'rsu1', P, S_TH_DBM, 'scripted')


def proactive_and_reactive(tl, preds, options=ROAD):
    records = emu.decide(tl, preds, options.decision)
    return records, emu.baseline_switches(tl, options)['reactive']


def test_model_held_at_clear_makes_exactly_the_reactive_switches():
    tl = scripted()
    records, reactive = proactive_and_reactive(tl, emu.FramePredictions.constant(tl, 0.0))
    assert emu.proactive_switches(records) == reactive
    # rsu1 drops at 10 -> rsu2 (best measured); rsu2 drops at 11 -> rsu3 (rsu1 still low)
    assert [s.rsu for s in reactive] == ['rsu2', 'rsu3']
    assert reactive[0] == Switch(int(tl.t_ns[10]) + 40_000_000, 'rsu2')
    assert {r.reason for r in records} == {'measured_below_threshold'}


def test_model_held_at_clear_equals_reactive_on_a_simulated_scenario(road_run):
    truth = json.loads(Path(road_run[1][0].truth_path).read_text())
    tl = emu.timeline_from_truth(truth)
    assert emu.EmulationOptions.for_truth(truth).preset == 'road' and len(tl.rsus) == 3
    fade = np.linspace(0, 30, len(tl.t_ns))     # rsu1 fades first, then rsu2: two floors
    tl.measured_dbm['rsu1'] = tl.measured_dbm['rsu1'] - fade
    tl.measured_dbm['rsu2'] = tl.measured_dbm['rsu2'] - np.clip(2 * fade - 25, 0, None)
    records, reactive = proactive_and_reactive(tl, emu.FramePredictions.constant(tl, 0.0))
    assert emu.proactive_switches(records) == reactive and reactive


def test_proactive_is_never_worse_than_reactive_on_a_scripted_case():
    tl = scripted()
    p = {r: np.full(len(tl.t_ns), 0.05) for r in tl.rsus}
    p['rsu1'][9:16] = 0.9          # announces its blockage a frame ahead
    p['rsu2'][9:18] = 0.9          # so does rsu2: the best-measured neighbour is no target
    result = emu.emulate(tl, ROAD, preds=emu.FramePredictions(
        p, {r: tl.t_ns.copy() for r in tl.rsus}))
    m = result.metrics
    assert [(r.frame, r.target_rsu, r.reason) for r in result.records] == [
        (9, 'rsu3', 'predicted_blockage')]
    assert m['proactive']['time_below_threshold_s'] == 0.0
    assert m['reactive']['time_below_threshold_s'] == pytest.approx(0.6)   # frames 10, 11
    assert m['oracle']['time_below_threshold_s'] == 0.0
    assert m['proactive']['blockages'] == [{'rsu': 'rsu1', 'start_s': 3.0,
                                            'lead_ms': pytest.approx(260.0)}]
    assert m['reactive']['blockages'][0]['lead_ms'] == pytest.approx(-40.0)
    assert result.check['passed'] and result.check['d_mean_rssi_db'] > 0


def test_the_floor_follows_the_measurements_when_every_neighbour_model_says_blocked():
    tl = scripted()
    p = {r: np.full(len(tl.t_ns), 0.9) for r in tl.rsus}   # every model says blocked
    p['rsu1'][:] = 0.0                                       # the serving one says clear
    result = emu.emulate(tl, ROAD, preds=emu.FramePredictions(
        p, {r: tl.t_ns.copy() for r in tl.rsus}))
    m = result.metrics
    # the serving link is measured down: the floor hands over where reactive does, to the
    # best measured neighbour, although that neighbour's model says blocked
    assert result.records and result.records[0].reason == 'measured_below_threshold'
    assert result.results['proactive'].switches[:2] == result.results['reactive'].switches
    assert m['proactive']['time_below_threshold_s'] <= m['reactive']['time_below_threshold_s']
    assert result.check['passed']


def test_never_worse_check_fails_on_a_false_alarm():
    tl = scripted()
    tl.link_intervals_ns = {r: [] for r in tl.rsus}
    for r in tl.rsus:                                 # nobody blocked at all
        tl.rssi_dbm[r][:] = {'rsu1': -36.0, 'rsu2': -38.0, 'rsu3': -42.0}[r]
        tl.measured_dbm[r][:] = tl.rssi_dbm[r]
    p = {r: np.zeros(len(tl.t_ns)) for r in tl.rsus}
    p['rsu1'][5] = 0.95                                # a false alarm
    check = emu.emulate(tl, ROAD, preds=emu.FramePredictions(
        p, {r: tl.t_ns.copy() for r in tl.rsus})).check
    assert check['time_below_ok'] and not check['mean_rssi_ok'] and not check['passed']


def test_lead_times_count_blockages_of_a_link_served_shortly_before():
    tl = scripted()
    early = [Switch(int(tl.t_ns[10]) - 3 * P, 'rsu3')]     # left rsu1 three periods ahead
    on_time = [Switch(int(tl.t_ns[10]) - P, 'rsu3')]
    lookback = emu.LEAD_LOOKBACK_PERIODS * P
    assert emu.blockage_leads(tl, early, lookback) == []
    assert emu.blockage_leads(tl, early, None)[0]['lead_ms'] == pytest.approx(900.0)
    assert emu.blockage_leads(tl, on_time, lookback) == [
        {'rsu': 'rsu1', 'start_s': 3.0, 'lead_ms': pytest.approx(300.0)}]


def test_oracle_follows_the_best_true_rssi_and_predictions_map_to_frames():
    tl = scripted()
    oracle = emu.emulate(tl, ROAD, preds=emu.FramePredictions.constant(tl, 0.0)
                         ).results['oracle']
    best = [max(tl.rsus, key=lambda r: tl.rssi_dbm[r][k]) for k in range(len(tl.t_ns))]
    assert oracle.serving == best
    windows = {'rsu1': [(int(tl.t_ns[4]) + 30_000_000, 0.8), (int(tl.t_ns[5]) - 20_000_000, 0.1)]}
    preds = emu.FramePredictions.from_windows(tl, windows)
    assert preds.p_blocked['rsu1'][4] == 0.8 and preds.p_blocked['rsu1'][5] == 0.1
    assert np.isnan(preds.p_blocked['rsu1'][6]) and preds.stamp_ns['rsu2'][4] == -1


def test_plot_and_csv_are_written(tmp_path):
    tl = scripted()
    result = emu.emulate(tl, ROAD, preds=emu.FramePredictions.constant(tl, 0.0))
    png = report.plot(tmp_path / 'fig5.png', tl, result.results, records=result.records)
    assert png.stat().st_size > 5000
    rows = tmp_path / 'x.csv'
    report.write_csv(rows, tl, result.results)
    lines = rows.read_text().splitlines()
    assert len(lines) == 31 and 'measured_rsu3_dbm' in lines[0] and 'serving_oracle' in lines[0]
    table = report.markdown(report.rows('scripted', result.metrics,
                                        {'proactive': result.check}))
    assert '| scripted | proactive |' in table and 'PASS' in table


# ----------------------------------------------------------------------------- commands
def test_simulate_and_emulate_commands_with_a_tiny_model(road_run, tmp_path, capsys):
    from mmtok_ros.cli import main
    from mmtok_ros.model import MultiModalTransformer, preset
    from mmtok_ros.model.checkpoint import save_model

    assert main(['simulate', '--rsus', '1', '--out', str(tmp_path / 'x')]) == 2
    assert 'a road needs 3' in capsys.readouterr().err
    assert main(['simulate', '--rsus', '3', '--drop-modality', 'image', '--out',
                 str(tmp_path / 'x')]) == 2
    assert main(['simulate', '--rsus', '4', '--scenarios', '1', '--frames', '1', '--out',
                 str(tmp_path / 'four'), '--no-progress']) == 0
    assert 'rsu4:' in capsys.readouterr().out
    index = json.loads((tmp_path / 'four' / 'index.json').read_text())
    assert index['n_rsus'] == 4 and index['window_topic_maps']['rsu4']['/rssi/rsu3'] == 'rssi/rsu2'
    cfg = preset('rsu-cpu', image_hw=(32, 32), bev_hw=(32, 32), n_frames=2, n_layers=1,
                 d_model=32, n_heads=2, router_hidden=8, cnn_widths=(8, 8))
    model_path = save_model(tmp_path / 'tiny.pt', MultiModalTransformer(cfg))
    out = tmp_path / 'em'
    args = {'--model': model_path, '--data': road_run[0], '--out': out, '--latency-ms': 40}
    assert main(['emulate', '--no-progress', *(str(v) for kv in args.items() for v in kv)]) == 0
    printed = capsys.readouterr().out
    assert 'never worse than reactive in' in printed and 'preset road' in printed
    doc = json.loads((out / 'summary.json').read_text())
    assert doc['n_rsus'] == 3 and doc['topic_maps']['rsu2'] == sim.window_topic_map(2, 3)
    assert doc['presets'] == ['road'] and doc['latency_ms'] == 40
    s = doc['scenarios']['scenario_00']
    assert set(s['policies']) == {'proactive', 'reactive', 'oracle'}
    # every RSU's own stream gave windows (a few frames are lost to the 50 ms slop, as live)
    assert all(v['windows'] >= N_FRAMES // 2 for v in s['predictions'].values())
    assert (out / 'fig5_scenario_00.png').stat().st_size > 5000
    assert (out / 'summary.md').read_text().count('| scenario_00 |') == 3


def test_the_testbed_preset_on_a_road_needs_its_home_serving_first():
    tl = scripted()
    with pytest.raises(ValueError, match='fixed home rsu2'):
        emu.emulate(tl, emu.EmulationOptions.testbed(home_rsu='rsu2'), proactive=[])
    fixed = emu.emulate(tl, emu.EmulationOptions.testbed(), proactive=[])
    # a fixed home on three RSUs: reactive to the best measured neighbour and back home
    assert [s.rsu for s in fixed.results['reactive'].switches] == ['rsu2', 'rsu3', 'rsu1']
