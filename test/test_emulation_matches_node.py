"""``mmtok emulate``'s core and the live node take the same handover decisions on the same bag,
given the same predictions: a bag replayed through ``rsu_node`` (real processes, DDS on
localhost), its link statuses (p_blocked and measured RSSI per window) fed to the core's
decision driver, which must give the node's triggers, in the same order, at the same stamps,
for the same reasons."""
from __future__ import annotations

import math
import os
import time

import pytest

from mmtok_ros.runtime import emulation as emu
from mmtok_ros.runtime.handover import REASON_CODES

FRAMES = 56      # the blocker crosses RSU 1's link at about 9-13 s; then the hand-back


def _settled(collector, timeout_s: float = 20.0) -> None:
    """Until the node reports every window it built as published or skipped and the link
    statuses of every published one have arrived."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        d = collector.data.diagnostics
        built = int(d.get('windows_built', -1)) if d else -1
        done = sum(int(d.get(k, 0)) for k in ('windows_published', 'windows_skipped',
                                             'stale_after_time_jump')) if d else 0
        if built > 0 and done >= built and \
                len(collector.data.statuses) >= int(d.get('windows_published', 0)):
            return
        time.sleep(0.25)


def _replay_through_node(bag, model, log_dir) -> tuple[list[dict], list[dict]]:
    from mmtok_ros.ros.collector import OutputCollector
    from mmtok_ros.ros.processes import NodeProcess

    env = dict(os.environ)
    rsu = NodeProcess('rsu_node', {'model_path': str(model), 'device': 'cpu',
                                   'use_sim_time': True, 'input_reliable': True,
                                   'torch_threads': 1},
                      log_dir / 'rsu_node.log', env)
    procs, collector = [rsu], None
    try:
        assert rsu.wait_for('ready:', 120.0), rsu.text()
        collector = OutputCollector('rsu_node')
        replay = NodeProcess('bag_replay', {'bag': str(bag), 'rate': 1.0,
                                            'wait_for_subscribers': 1, 'wait_timeout_s': 20.0,
                                            'start_delay_s': 1.0},
                             log_dir / 'bag_replay.log', env)
        procs.append(replay)
        assert replay.popen.wait(120.0) == 0, replay.text()
        _settled(collector)
        return list(collector.data.statuses), list(collector.data.handovers)
    finally:
        if collector is not None:
            collector.close()
        for proc in reversed(procs):
            proc.stop()


def test_the_core_decides_what_the_node_decided_on_a_replayed_bag(tmp_path):
    from mmtok_ros.model.shipped import default_model_path
    from mmtok_ros.sim.simulate import simulate

    model = default_model_path()
    if not os.path.isfile(model):
        pytest.skip(f'no shipped model at {model}')
    data = tmp_path / 'bags'
    simulate(data, n_scenarios=1, seed=0, frames_per_scenario=FRAMES, progress=False)
    statuses, triggers = _replay_through_node(data / 'scenario_00', model, tmp_path / 'logs')
    assert len(statuses) > FRAMES // 2, 'the node published too few link statuses'

    # the node's own predictions and measured RSSI per window, on the bag's timeline
    timeline = emu.timeline_from_truth(emu.load_truth(data / 'scenario_00.truth.json'))
    timeline = emu.with_measured(timeline, {'rsu1': [
        (s['stamp_ns'], s['rssi_dbm']) for s in statuses if math.isfinite(s['rssi_dbm'])]})
    preds = emu.FramePredictions.from_windows(
        timeline, {'rsu1': [(s['stamp_ns'], s['p_blocked']) for s in statuses]})
    frames = {emu.frame_index(timeline.t_ns, s['stamp_ns'], timeline.period_ns)
              for s in statuses}
    assert None not in frames and len(frames) == len(statuses)   # one window per frame
    records = emu.decide(timeline, preds, emu.EmulationOptions.testbed().decision)

    ours = [(r.event.stamp_ns, r.event.source_rsu, r.target_rsu, r.event.reason_code)
            for r in records]
    node = [(h['stamp_ns'], h['source_rsu'], h['target_rsu'], h['reason']) for h in triggers]
    assert node, 'the node made no handover on a blocked scenario'
    assert ours == node
    reasons = {r.reason for r in records}
    assert reasons & {'predicted_blockage', 'measured_below_threshold'} and len(records) >= 2
    assert set(REASON_CODES[r] for r in reasons) == {h['reason'] for h in triggers}
