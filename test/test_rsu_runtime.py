"""RsuRuntime without rclpy: newest window only, handover, time jumps, deadline control, stats.

A fake predictor and stream make each rule visible; one test runs a tiny real model on
windows built by a real ``WindowStream`` from decoded messages.
"""
from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from mmtok_ros.data.sync import TimeJump
from mmtok_ros.runtime.handover import HandoverDecision, HysteresisConfig
from mmtok_ros.runtime.predictor import Prediction
from mmtok_ros.runtime.rsu_runtime import COUNTER_KEYS, RsuRuntime
from mmtok_ros.runtime.runtime_config import MissStreak, RuntimeConfig

P_NS = 300_000_000
NAN = float('nan')


class FakeModel:
    def __init__(self, routed: bool = True) -> None:
        self.routed = routed
        self.keep_overrides: list[float] = []

    def routed_layers(self) -> list[int]:
        return [0, 1] if self.routed else []

    def set_keep_override(self, scale: float) -> None:
        self.keep_overrides.append(scale)

    def tokens_per_layer(self) -> list[int]:
        scale = self.keep_overrides[-1] if self.keep_overrides else 1.0
        return [int(100 * scale)] * 2


class FakePredictor:
    """p_blocked per window from ``p_of(stamp)``; records what it was asked."""

    def __init__(self, p_of=lambda stamp: 0.1, routed: bool = True) -> None:
        self.model = FakeModel(routed)
        self.p_of = p_of
        self.threshold = 0.5
        self.predicted: list[int] = []
        self.clears = 0
        self.cache_hits = self.cache_misses = 0
        self.fail = False

    def predict(self, window) -> Prediction:
        if self.fail:
            raise RuntimeError('boom')
        self.predicted.append(window)
        p = self.p_of(window)
        return Prediction(window, p, p >= self.threshold, 2.0, 1,
                          tuple(self.model.tokens_per_layer()))

    def clear(self) -> None:
        self.clears += 1


class FakeStream:
    """``assemble``: a frame item (stamp, own RSSI) becomes a window named by its stamp."""

    def __init__(self) -> None:
        self.builder = SimpleNamespace(counters=Counter())

    def assemble(self, item):
        if isinstance(item, TimeJump):
            return None
        stamp, rssi = item
        self.builder.counters['windows'] += 1
        return SimpleNamespace(window=stamp, frame=SimpleNamespace(rssi_dbm=[rssi, NAN]))

    def stats(self) -> dict[str, int]:
        return {'sync/no_partner': 1, 'sync/partial': 2, 'window/windows':
                self.builder.counters['windows']}


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, text: str) -> None:
        self.lines.append(('info', text))

    def warning(self, text: str) -> None:
        self.lines.append(('warning', text))

    def error(self, text: str) -> None:
        self.lines.append(('error', text))

    def count(self, level: str, text: str) -> int:
        return sum(1 for lv, t in self.lines if lv == level and text in t)


class Clock:
    """Arrival times are 0; ``latency_ms`` is what the next reading says."""

    def __init__(self, latency_ms: float = 5.0) -> None:
        self.latency_ms = latency_ms

    def __call__(self) -> int:
        return int(self.latency_ms * 1e6)


def make(p_of=lambda stamp: 0.1, *, routed=True, latency_ms=5.0, hysteresis=None,
         model_threshold=0.5, **config):
    predictor = FakePredictor(p_of, routed)
    decision = HandoverDecision('rsu1', 'rsu2', hysteresis or HysteresisConfig())
    log, clock = Log(), Clock(latency_ms)
    runtime = RsuRuntime(predictor, FakeStream(), decision, model_threshold=model_threshold,
                         config=RuntimeConfig(**config), log=log, clock_ns=clock)
    return runtime, log, clock


def frames(ks, rssi=-40.0):
    return [((k * P_NS, rssi), 0) for k in ks]


def run(runtime, batches):
    published = []
    for batch in batches:
        runtime.step(batch, published.append)
    return published


def test_only_the_newest_window_of_a_batch_is_inferred():
    rt, _, _ = make()
    published = run(rt, [frames([1, 2, 3]), frames([4])])
    assert rt.predictor.predicted == [3 * P_NS, 4 * P_NS]
    assert [o.prediction.newest_stamp_ns for o in published] == [3 * P_NS, 4 * P_NS]
    s = rt.stats()
    assert s['windows_skipped'] == 2 and s['windows_published'] == 2
    assert rt.step([], published.append) is None       # nothing taken: nothing published


def test_output_carries_what_the_link_status_needs():
    rt, _, _ = make(latency_ms=12.5, deadline_ms=100.0)
    [out] = run(rt, [frames([1], rssi=-41.0)])
    assert out.serving_rsu == 'rsu1' and out.own_rssi_dbm == -41.0
    assert out.latency_ms == pytest.approx(12.5) and out.deadline_ms == 100.0
    assert out.threshold == 0.5 and out.keep_scale == 1.0 and out.handover is None


def test_a_confident_prediction_hands_over_once_and_is_logged():
    rt, log, _ = make(lambda stamp: 0.9)
    published = run(rt, [frames([k]) for k in range(1, 6)])
    events = [o.handover for o in published if o.handover is not None]
    assert len(events) == 1 and events[0].target_rsu == 'rsu2'
    assert events[0].reason == 'predicted_blockage'
    assert published[-1].serving_rsu == 'rsu2'
    assert rt.stats()['handovers'] == 1
    assert log.count('info', 'handover rsu1 -> rsu2: predicted_blockage') == 1


def test_a_neighbour_state_chooses_the_target():
    rt, _, _ = make(lambda stamp: 0.9)
    rt.decision = HandoverDecision('rsu1', 'rsu2', HysteresisConfig())
    rt.observe_neighbour('rsu3', P_NS, 0.1, -40.0)
    rt.observe_neighbour('rsu2', P_NS, 0.9, -60.0)
    [out] = run(rt, [frames([1])])
    assert out.handover.target_rsu == 'rsu3'


def test_a_time_jump_clears_the_cache_and_the_streaks():
    # two windows over p_on are needed; a jump between them starts the streak over
    rt, _, _ = make(lambda stamp: 0.9, hysteresis=HysteresisConfig(on_windows=2))
    jump = (TimeJump(topic='/camera/image_raw', from_ns=9 * P_NS, to_ns=2 * P_NS), 0)
    published = run(rt, [frames([1]), [frames([9])[0], jump, frames([2])[0]]])
    assert rt.predictor.clears == 1
    assert rt.stats()['stale_after_time_jump'] == 1   # window 9 was never inferred
    assert rt.predictor.predicted == [P_NS, 2 * P_NS]
    assert all(o.handover is None for o in published)  # window 2 started a new streak
    published += run(rt, [frames([3])])
    assert published[-1].handover is not None


def test_deadline_misses_warn_once_and_lower_the_keep_ratio():
    rt, log, clock = make(latency_ms=50.0, deadline_ms=10.0, deadline_warn_after=2,
                          deadline_patience=1, deadline_min_scale=0.8)
    published = run(rt, [frames([k]) for k in range(1, 6)])
    s = rt.stats()
    assert s['deadline_misses'] == 5 and s['deadline_miss_streak'] == 5
    assert log.count('warning', 'deadline missed 2 times in a row') == 1
    assert rt.predictor.model.keep_overrides == [0.9, 0.8]     # bounded by min_scale
    assert s['keep_scale_changes'] == 2 and s['keep_scale'] == 0.8
    # the status carries the scale the window ran with, before the controller moved it
    assert [o.keep_scale for o in published[:3]] == [1.0, 0.9, 0.8]
    assert log.count('info', 'deadline control: keep-ratio scale -> 0.80') == 1
    clock.latency_ms = 1.0                                       # well under: back up
    run(rt, [frames([6])])
    assert rt.stats()['deadline_miss_streak'] == 0 and rt.predictor.model.keep_overrides[-1] == 0.9


def test_a_model_without_routed_layers_only_reports():
    rt, _, _ = make(routed=False, latency_ms=50.0, deadline_ms=10.0, deadline_patience=1)
    run(rt, [frames([k]) for k in range(1, 4)])
    assert rt.controller is None and rt.predictor.model.keep_overrides == []
    assert rt.stats()['deadline_misses'] == 3 and rt.stats()['keep_scale'] == 1.0


def test_an_inference_error_is_counted_and_logged_once():
    rt, log, _ = make()
    rt.predictor.fail = True
    assert run(rt, [frames([1]), frames([2])]) == []
    assert rt.stats()['inference_errors'] == 2
    assert log.count('error', 'inference failed: RuntimeError: boom') == 1
    rt.predictor.fail = False
    assert len(run(rt, [frames([3])])) == 1


def test_a_failing_publish_counts_as_an_inference_error():
    rt, _, _ = make()

    def publish(out):
        raise OSError('publisher gone')
    assert rt.step(frames([1]), publish) is None
    assert rt.stats()['inference_errors'] == 1 and rt.stats()['windows_published'] == 0


def test_threshold_from_the_model_file_unless_set_and_reconfigured_at_run_time():
    rt, _, _ = make(model_threshold=0.83)
    assert rt.predictor.threshold == 0.83
    rt.reconfigure(blocked_threshold=0.2)
    assert rt.predictor.threshold == 0.2
    rt.reconfigure(blocked_threshold=-1.0)
    assert rt.predictor.threshold == 0.83
    assert make(model_threshold=0.83, blocked_threshold=0.6)[0].predictor.threshold == 0.6


def test_keep_ratio_scale_caps_the_controller_also_at_run_time():
    rt, _, _ = make(keep_ratio_scale=0.7, deadline_min_scale=0.9)
    assert rt.predictor.model.keep_overrides == [0.7]
    assert (rt.controller.min_scale, rt.controller.max_scale, rt.controller.scale) == \
        (0.7, 0.7, 0.7)
    rt.reconfigure(keep_ratio_scale=0.0)                # back to the learned r_l: cap 1
    assert rt.controller.max_scale == 1.0 and rt.controller.scale == 0.7
    rt.reconfigure(keep_ratio_scale=0.5)
    assert rt.controller.scale == 0.5 and rt.predictor.model.keep_overrides[-1] == 0.5
    rt.reconfigure(deadline_ms=42.0)
    assert rt.controller.deadline_ms == 42.0 and rt.stats()['deadline_ms'] == 42.0


def test_stats_keys_and_order():
    rt, _, _ = make()
    run(rt, [frames([1, 2])])
    s = rt.stats({'frames_pending': 0, 'frames_dropped_backlog': 3})
    keys = list(s)
    assert keys[:8] == ['keep_scale', 'tokens_per_layer', 'deadline_ms', 'latency_p50_ms',
                        'latency_p99_ms', 'inference_p50_ms', 'inference_p99_ms',
                        'windows_built']
    assert keys[8:13] == ['frames_pending', 'frames_dropped_backlog', 'cache_hits',
                          'cache_misses', 'deadline_miss_streak']
    assert keys[13:13 + len(COUNTER_KEYS)] == list(COUNTER_KEYS)
    assert s['sync_misses'] == 3 and s['windows_built'] == 2 and s['tokens_per_layer'] == '100,100'
    assert s['latency_p50_ms'] == pytest.approx(5.0) and s['inference_p99_ms'] == 2.0


def test_miss_streak_warns_once_per_streak():
    m = MissStreak()
    assert [m.update(False, 2) for _ in range(3)] == [False, True, False]
    assert not m.update(True, 2) and m.streak == 0
    assert [m.update(False, 2) for _ in range(2)] == [False, True]


def test_the_runtime_imports_no_ros():
    code = ('import sys, mmtok_ros.runtime.rsu_runtime, mmtok_ros.ros.params; '
            'bad = [m for m in sys.modules if m.split(".")[0] in '
            '("rclpy", "rcl_interfaces", "mmtok_msgs", "sensor_msgs")]; '
            'assert not bad, bad')
    subprocess.run([sys.executable, '-c', code], check=True)


def test_a_tiny_model_on_windows_of_a_real_stream():
    """Real ``StreamingPredictor`` and ``WindowStream``: one window per frame once five are
    held, each new frame tokenized once."""
    from mmtok_ros.data.decode import DecodedCloud
    from mmtok_ros.data.stream import StreamConfig, WindowStream
    from mmtok_ros.data.topics import DEFAULT_TOPICS
    from mmtok_ros.model import MultiModalTransformer, preset
    from mmtok_ros.runtime.predictor import StreamingPredictor

    model = MultiModalTransformer(preset('rsu-cpu', image_hw=(32, 32), bev_hw=(32, 32),
                                         method='routed')).eval()
    stream = WindowStream(model.cfg, config=StreamConfig())
    predictor = StreamingPredictor(model)
    decision = HandoverDecision('rsu1', 'rsu2', HysteresisConfig(p_on=0.0, p_off=0.0))
    rt = RsuRuntime(predictor, stream, decision, model_threshold=0.5,
                    config=RuntimeConfig(deadline_ms=10_000.0))
    rng = np.random.default_rng(0)
    published = []
    for k in range(1, 8):
        t = 10 * 10**9 + k * P_NS
        cloud = DecodedCloud(rng.uniform(-1, 1, (50, 5)).astype(np.float32), 0, ())
        messages = [(DEFAULT_TOPICS['image'], t, rng.integers(0, 255, (48, 64, 3), np.uint8)),
                    (DEFAULT_TOPICS['lidar'], t, cloud)]
        messages += [(DEFAULT_TOPICS[f'rssi/rsu{i}'], t, (t, -40.0 - i)) for i in (1, 2)]
        taken = []
        for topic, stamp, item in messages:
            taken += [(synced, 0) for synced in stream.accept_decoded(topic, stamp, item)[0]]
        rt.step(taken, published.append)
    assert len(published) >= 2
    assert [o.prediction.frames_tokenized for o in published[:2]] == [5, 1]
    assert all(0.0 <= o.prediction.p_blocked <= 1.0 and o.own_rssi_dbm == -41.0
               for o in published)
    assert published[0].handover is not None and published[0].handover.target_rsu == 'rsu2'
    s = rt.stats()
    assert s['windows_published'] == len(published) and s['inference_errors'] == 0
    assert not math.isnan(s['latency_p50_ms'])


# ---------------------------------------------------------------- dead neighbours
def with_neighbours(**kw):
    rt, log, clock = make(**kw)
    rt.decision = HandoverDecision('rsu1', 'rsu2', HysteresisConfig(neighbour_stale_ns=2 * P_NS),
                                   neighbours=('rsu2', 'rsu3'))
    return rt, log, clock


def test_no_live_neighbour_warns_once_reports_and_re_arms_when_one_is_back():
    rt, log, _ = with_neighbours()
    rt.observe_neighbour('rsu2', P_NS, 0.1, -42.0)
    run(rt, [frames([1])])                                   # clear: nothing wanted
    s = rt.stats()
    assert (s['neighbours/configured'], s['neighbours/live'], s['neighbours/stale']) == \
        ('rsu2,rsu3', 'rsu2', 'rsu3')
    assert s['handover/no_live_target'] == '' and s['handover/no_live_target_windows'] == 0
    # rsu2's node is killed: its state goes stale; the own link is measured below S_th
    published = run(rt, [frames([k], rssi=-60.0) for k in range(4, 10)])
    assert all(o.handover is None and o.serving_rsu == 'rsu1' for o in published)
    assert log.count('warning', 'but no neighbour is live') == 1          # once, not 6 times
    assert log.count('warning', 'measured_below_threshold') == 1
    s = rt.stats()
    assert (s['neighbours/live'], s['neighbours/stale']) == ('', 'rsu2,rsu3')
    assert s['handover/no_live_target'] == 'measured_below_threshold'
    assert s['handover/no_live_target_windows'] == 6
    # rsu2 restarted: its first status makes it the target at the next window
    rt.observe_neighbour('rsu2', 10 * P_NS, 0.2, -41.0)
    [out] = run(rt, [frames([10], rssi=-60.0)])
    assert out.handover.target_rsu == 'rsu2'
    assert log.count('info', 'neighbour(s) live again: rsu2') == 1
    assert rt.stats()['handover/no_live_target'] == ''
    # the vehicle is at rsu2 now: the home link wants no handover, so no WARN
    run(rt, [frames([k], rssi=-60.0) for k in range(20, 24)])
    assert log.count('warning', 'but no neighbour is live') == 1


def test_without_neighbours_there_is_nothing_to_report():
    rt, log, _ = make(lambda stamp: 0.9)
    run(rt, [frames([1])])
    assert not any(k.startswith(('neighbours/', 'handover/')) for k in rt.stats())
    assert log.count('warning', 'no neighbour is live') == 0


def test_a_faulty_neighbour_status_is_counted_and_warned_once_never_raised():
    rt, log, _ = with_neighbours()
    rt.observe_neighbour('rsu2', P_NS, 1.5, -42.0)          # p_blocked outside [0, 1]
    rt.observe_neighbour('rsu1', P_NS, 0.1, -42.0)          # the home RSU's own id
    rt.observe_neighbour('rsu9', P_NS, 0.1, -42.0)          # not a configured neighbour
    assert rt.stats()['rejected_neighbour_status'] == 3
    assert log.count('warning', 'neighbour link status left out') == 1
    assert rt.decision.neighbours == {}
