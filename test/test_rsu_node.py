"""rsu_node in-process with real rclpy publishers: outputs, handover, time jumps, deadline."""
from __future__ import annotations

import pytest

from ros_helpers import P_NS, Harness, tiny_model, values, wait_until



def stamp_of(msg) -> int:
    """Integer ns of a Header's stamp or of a Time."""
    time = getattr(msg, 'stamp', msg)
    return time.sec * 10**9 + time.nanosec


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp('models') / 'tiny.pt')


@pytest.fixture
def make(model_path):
    made = []

    def factory(**overrides) -> Harness:
        made.append(Harness(model_path, **overrides))
        return made[-1]
    yield factory
    for h in made:
        h.close()


def test_link_status_diagnostics_and_handover(make):
    # any prediction hands over at once
    h = make(**{'hysteresis.p_on': 0.0, 'hysteresis.p_off': 0.0})
    stamps = h.frames(range(7))
    assert h.wait_statuses(3)
    assert h.wait_idle()
    status = h.statuses[0]
    from mmtok_msgs.msg import HandoverTrigger, LinkStatus
    assert isinstance(status, LinkStatus)
    newest = stamp_of(status.header)
    assert newest in {s + 3_000_000 for s in stamps}            # the image is newest
    assert stamp_of(status.predicted_for) == newest + P_NS
    assert status.rsu_id == 'rsu1' and status.serving_rsu in ('rsu1', 'rsu2')
    assert status.status in (LinkStatus.STATUS_CLEAR, LinkStatus.STATUS_BLOCKED)
    assert isinstance(status.p_blocked, float) and 0.0 <= status.p_blocked <= 1.0
    assert status.rssi_dbm == pytest.approx(-40.0)             # own link, measured
    assert status.method == 'routed' and status.latency_ms > 0 and status.inference_ms > 0
    assert len(status.tokens_per_layer) == 4 and status.keep_scale == 1.0
    # first window tokenizes 5 frames, the next ones only their newest frame
    assert [m.frames_tokenized for m in h.statuses[:3]] == [5, 1, 1]
    # handover: one trigger (hysteresis keeps it from repeating), latched for late joiners
    assert wait_until(lambda: len(h.handovers) == 1)
    trigger = h.handovers[0]
    assert isinstance(trigger, HandoverTrigger)
    assert trigger.target_rsu == 'rsu2' and trigger.source_rsu == 'rsu1'
    assert trigger.reason == HandoverTrigger.REASON_PREDICTED_BLOCKAGE
    assert trigger.reason_text == 'predicted_blockage'
    assert trigger.serving_rssi_dbm == pytest.approx(-40.0)
    from mmtok_ros.ros.qos import handover_qos
    late: list = []
    h.peer.create_subscription(HandoverTrigger, h.topics['handover'], late.append,
                               handover_qos())
    assert wait_until(lambda: len(late) == 1)
    assert late[0].target_rsu == 'rsu2'
    # /diagnostics: rates, drops, latency, device, keep ratio
    assert wait_until(lambda: any(values(m).get('windows_published', '0') != '0'
                                  for m in h.diagnostics))
    d = values(h.diagnostics[-1])
    for key in ('device', 'keep_scale', 'latency_p50_ms', 'latency_p99_ms', 'windows_skipped',
                'sync/no_partner', 'sync_misses', 'window/out_of_order', 'rejected_total',
                f'rate_hz/{h.topics["image"]}', 'deadline_misses'):
        assert key in d, key
    assert d['device'] == 'cpu'


def test_time_jump_back_clears_windows_and_cache(make, capfd):
    h = make()
    h.frames(range(6))
    assert h.wait_statuses(2) and h.wait_idle()
    n = len(h.statuses)
    misses = h.node.predictor.cache_misses
    h.frames(range(-200, -194))                   # 60 s back: a looped bag
    assert h.wait_statuses(n + 2) and h.wait_idle()
    s = h.node.stats()
    assert s['sync/time_jump'] == 1
    # cache and windows started over: the first window after the jump tokenized 5 frames
    after = h.statuses[n:]
    assert after[0].frames_tokenized == 5
    assert stamp_of(after[0].header) < h.base_ns
    assert h.node.predictor.cache_misses >= misses + 5
    err = capfd.readouterr().err
    assert err.count('time jumped back') == 1



def test_time_jump_threshold_is_a_parameter(make):
    h = make(sync_time_jump_ms=3_600_000.0)          # only an hour back is a jump
    assert h.node.stream.sync.jump_back_ns == 3_600_000_000_000
    h.frames(range(6))
    assert h.wait_statuses(2) and h.wait_idle()
    h.frames(range(-200, -194))                   # 60 s back: old messages, not a jump
    assert h.wait_idle()
    assert h.node.stats()['sync/time_jump'] == 0

def test_deadline_misses_warn_and_lower_keep_ratio(make, capfd):
    h = make(deadline_ms=1.0, deadline_warn_after=2, deadline_patience=1,
             deadline_min_scale=0.5)
    h.frames(range(8))
    assert h.wait_statuses(3) and h.wait_idle()
    assert wait_until(lambda: h.statuses[-1].keep_scale < 1.0)
    s = h.node.stats()
    assert s['deadline_misses'] >= 2 and s['keep_scale_changes'] >= 1
    assert 0.5 <= s['keep_scale'] < 1.0
    assert wait_until(lambda: any(m.status[0].level == m.status[0].WARN and
                                  'deadline' in m.status[0].message for m in h.diagnostics))
    err = capfd.readouterr().err
    assert err.count('deadline missed') == 1 and 'deadline_warn_after=2' in err
    assert 'deadline control: keep-ratio scale' in err


def test_cuda_requested_without_gpu_warns_and_uses_cpu(make, capfd):
    import torch
    if torch.cuda.is_available():
        pytest.skip('a GPU is present')
    h = make(device='cuda')
    assert h.node.device == 'cpu'
    err = capfd.readouterr().err
    assert "device 'cuda' requested but" in err and 'falling back to cpu' in err
    assert 'warm-up inference' in err


def test_parameters_changed_at_run_time_change_the_behaviour(make):
    from rclpy.parameter import Parameter
    h = make(blocked_threshold=1.0)                 # nothing is ever blocked
    h.frames(range(6))
    assert h.wait_statuses(2) and h.wait_idle()
    assert all(m.status == m.STATUS_CLEAR for m in h.statuses)
    result = h.node.set_parameters([Parameter('blocked_threshold', value=0)])[0]  # an int
    assert result.successful, result.reason
    n = len(h.statuses)
    h.frames(range(6, 9))
    assert h.wait_statuses(n + 2)
    assert all(m.status == m.STATUS_BLOCKED for m in h.statuses[n:])
    # out of range and read-only: refused with a reason, nothing changes
    bad = h.node.set_parameters([Parameter('blocked_threshold', value=1.5)])[0]
    assert not bad.successful and 'blocked_threshold' in bad.reason
    ro = h.node.set_parameters([Parameter('window_frames', value=3)])[0]
    assert not ro.successful and 'read-only' in ro.reason
    assert h.node.predictor.threshold == 0.0


def test_the_decision_threshold_comes_from_the_model_file(model_path, tmp_path):
    from mmtok_ros.model.checkpoint import load_model, save_model
    model, _ = load_model(model_path)
    path = save_model(tmp_path / 'with_threshold.pt', model, meta={'decision_threshold': 0.83})
    h = Harness(path)                               # blocked_threshold left at -1
    try:
        assert h.node.predictor.threshold == pytest.approx(0.83)
        # hysteresis.p_on left at -1 follows it, so the handover and the status agree
        assert h.node.runtime.decision.config.p_on == pytest.approx(0.83)
        h.frames(range(6))
        assert h.wait_statuses(2)
        assert h.statuses[0].blocked_threshold == pytest.approx(0.83)
    finally:
        h.close()
    explicit = Harness(path, blocked_threshold=0.6)  # a parameter overrides
    try:
        assert explicit.node.predictor.threshold == pytest.approx(0.6)
        assert explicit.node.runtime.decision.config.p_on == pytest.approx(0.6)
    finally:
        explicit.close()
    own = Harness(path, **{'hysteresis.p_on': 0.7, 'hysteresis.p_off': 0.2})
    try:                                            # an explicit p_on is kept as given
        assert own.node.runtime.decision.config.p_on == pytest.approx(0.7)
        assert own.node.predictor.threshold == pytest.approx(0.83)
    finally:
        own.close()
