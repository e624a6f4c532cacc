"""Every node parameter in one table: name, default, description (meaning, unit, range), range.

``config/rsu.yaml`` and ``config/replay.yaml`` hold the same names and defaults (a test keeps
them in step). Defaults that belong to a core object are read from it (the stream's
``StreamConfig``, the handover's ``HysteresisConfig``, the runtime's ``RuntimeConfig``) or from
``constants``. Nodes declare a table with :func:`~.param_declaration.declare` and read a plain
namespace back; this module imports no rclpy, so tools and tests read the table without ROS.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ..constants import (DEFAULT_DECISION_THRESHOLD, FRAME_PERIOD_MS, NS_PER_MS,
                         REACTIVE_OFF_FRAMES, S_TH_DBM)
from ..data.stream import StreamConfig
from ..model.config import ModelConfig
from ..model.shipped import SHIPPED_MODEL
from ..runtime.handover import HysteresisConfig
from ..runtime.runtime_config import CONTROLLER_DEFAULTS, RUNTIME_FIELDS, RuntimeConfig
from .param_declaration import ParamSpec, RuntimeParameters, check_value, declare

# The offline dataset builder's defaults too (one definition), so a window the node builds
# while a bag plays equals the window built from that bag for training.
_STREAM = StreamConfig()
_HYSTERESIS = HysteresisConfig()
_RUNTIME = RuntimeConfig()

RSU_NODE_PARAMS: tuple[ParamSpec, ...] = (
    # inputs and outputs
    # Topic names are relative: in a namespace per RSU (rsu.launch.py namespace:=rsu2) they
    # resolve under it; without one they are the testbed's /camera/image_raw etc.
    ParamSpec('image_topic', 'camera/image_raw',
              'camera input, sensor_msgs/Image (rgb8/bgr8/mono8/rgba8/bgra8)', read_only=True),
    ParamSpec('lidar_topic', 'lidar/points', 'LiDAR input, sensor_msgs/PointCloud2 with x, y, '
              'z (intensity, ring optional)', read_only=True),
    ParamSpec('rssi_topics', ['rssi/rsu1', 'rssi/rsu2'],
              'RSSI inputs, sensor_msgs/Temperature (temperature = dBm, header stamped at '
              'measurement), this RSU\'s own link first, then the neighbour the model reads; '
              'as many as the model\'s rssi_dim', read_only=True),
    ParamSpec('link_status_topic', 'mmtok/link_status',
              'output: predicted link status (mmtok_msgs/LinkStatus)', read_only=True),
    ParamSpec('handover_topic', 'mmtok/handover',
              'output: handover trigger (mmtok_msgs/HandoverTrigger, transient local)',
              read_only=True),
    ParamSpec('input_qos_depth', 5, 'depth (messages) of the sensor subscriptions', 1, 100,
              read_only=True),
    ParamSpec('input_reliable', False, 'subscribe to the sensors RELIABLE instead of best '
              'effort: only with reliable publishers (bag_replay), which then resend a large '
              'image instead of losing it whole when one fragment is dropped', read_only=True),
    ParamSpec('expected_image_width', 640, 'camera width in pixels; other widths are rejected '
              '(0: accept any)', 0, 100000, read_only=True),
    ParamSpec('expected_image_height', 480, 'camera height in pixels; other heights are '
              'rejected (0: accept any)', 0, 100000, read_only=True),
    # model and device
    ParamSpec('model_path', '', 'model file; empty: the shipped models/' + SHIPPED_MODEL +
              ' (package share dir, else the source tree)', read_only=True),
    ParamSpec('device', 'cuda', "cpu, cuda or cuda:N; cuda falls back to cpu with a WARN "
              'when no GPU is usable', read_only=True),
    ParamSpec('backend', 'torch', 'torch (model_path: a .pt model file) or onnxruntime '
              '(model_path: the FILE.onnx of mmtok export; fixed K per layer, the deadline '
              'controller switches between the exported keep scales)', read_only=True),
    ParamSpec('torch_threads', 1, 'intra-op threads for inference, torch or onnxruntime. '
              '0: auto; torch on the CPU: one intra-op thread plus a work-sharing helper thread '
              'per further core (at most 3) that takes chunks of each window while its core '
              'is free and is not waited on for long when it is busy, outputs as with one '
              'thread; onnxruntime: its default, one per core. N >= 2 threads split every '
              'operator in N parts and wait for the slowest', 0, 256, read_only=True),
    ParamSpec('keep_ratio_scale', _RUNTIME.keep_ratio_scale, 'keep-ratio override, a '
              'fraction: every routed layer keeps scale * r_l of its tokens, and the deadline '
              'controller never goes above it (0: the learned r_l)', 0.0, 1.0),
    ParamSpec('blocked_threshold', _RUNTIME.blocked_threshold, 'p_blocked (a probability) at '
              'or above which the next frame is reported blocked; -1: the threshold stored in '
              f'the model file ({DEFAULT_DECISION_THRESHOLD} for a file that stores none)',
              -1.0, 1.0),
    ParamSpec('warmup', True, 'run a warm-up inference at start-up and log its time',
              read_only=True),
    # synchronization and windows
    ParamSpec('sync_slop_ms', _STREAM.slop_ms,
              'largest stamp spread of one synchronized frame, ms',
              0.0, 1000.0, read_only=True),
    ParamSpec('sync_partial_wait_ms', _STREAM.partial_wait_ms, 'how long (ms) a late modality '
              'is waited for before a frame goes on without it (marked absent)', 0.0, 10000.0,
              read_only=True),
    ParamSpec('sync_queue_size', _STREAM.queue_size,
              'messages queued per input in the synchronizer', 1, 1000,
              read_only=True),
    ParamSpec('sync_time_jump_ms', _STREAM.time_jump_ms,
              'a stamp this much (ms) older than the newest one seen '
              'on its topic is a time jump back (looped bag, restarted clock): queues and '
              'windows are cleared; smaller steps back are out-of-order messages', 1.0,
              3600000.0, read_only=True),
    ParamSpec('window_frames', ModelConfig.n_frames, 'frames per window (tau); must match '
              'the model', 1, 64,
              read_only=True),
    ParamSpec('frame_period_ms', FRAME_PERIOD_MS, 'sensor frame period, ms', 1.0, 10000.0,
              read_only=True),
    ParamSpec('silent_after_periods', 5, 'warn once when an input has been silent this many '
              'frame periods', 1, 1000),
    # handover
    ParamSpec('s_th_dbm', S_TH_DBM, 'S_th of Eq. 8, dBm: serving RSSI below it means '
              'blocked', -150.0, 0.0, read_only=True),
    ParamSpec('rsu_id', 'rsu1', 'this RSU (the home RSU whose link is predicted)',
              read_only=True),
    ParamSpec('target_rsu', 'rsu2', 'RSU to hand over to when neighbours is empty and no '
              'neighbour link status is fresh (the two-RSU testbed)', read_only=True),
    ParamSpec('neighbours', '', 'comma-separated ids of neighbour RSUs whose link status '
              '(/<id>/<link_status_topic>) this RSU hears; the handover goes to the best of them '
              '(not predicted blocked, best measured RSSI). Empty: target_rsu only',
              read_only=True),
    ParamSpec('hysteresis.floor_windows', _HYSTERESIS.floor_windows, 'reactive floor: hand '
              'over after this many consecutive windows with the own link measured below '
              's_th_dbm, whatever the model says', 1, 100, read_only=True),
    ParamSpec('hysteresis.neighbour_stale_ms', _HYSTERESIS.neighbour_stale_ns / NS_PER_MS,
              'a neighbour link status older than this (ms, data time) is ignored', 1.0,
              600000.0, read_only=True),
    ParamSpec('hysteresis.p_on', -1.0, 'p_blocked at or above which a window counts toward '
              'handing over; negative: the decision threshold in use at start-up '
              '(blocked_threshold, else the model file\'s)', -1.0, 1.0, read_only=True),
    ParamSpec('hysteresis.p_off', _HYSTERESIS.p_off, 'p_blocked below which a window counts '
              'toward handing back', 0.0, 1.0, read_only=True),
    ParamSpec('hysteresis.on_windows', _HYSTERESIS.on_windows, 'consecutive windows needed to '
              'hand over', 1, 100, read_only=True),
    ParamSpec('hysteresis.off_windows', _HYSTERESIS.off_windows, 'consecutive windows needed '
              'to hand back', 1, 1000, read_only=True),
    ParamSpec('hysteresis.clear_windows', _HYSTERESIS.clear_windows, 'hand-back floor: once '
              'the own link was measured below s_th_dbm while a neighbour serves, hand back '
              'after this many consecutive windows measured clear with p_blocked < p_on, dwell '
              'or not (the reactive hand-back); 0: off', 0, 1000, read_only=True),
    ParamSpec('hysteresis.min_dwell_ms', _HYSTERESIS.min_dwell_ns / NS_PER_MS, 'earliest '
              'hand-back (or further proactive handover) after a handover, ms', 0.0, 600000.0,
              read_only=True),
    # deadline
    ParamSpec('deadline_ms', _RUNTIME.deadline_ms, 'latency budget, ms, from the newest '
              'frame\'s arrival to the status publish', 1.0, 10000.0),
    ParamSpec('deadline_warn_after', _RUNTIME.deadline_warn_after, 'WARN after this many '
              'consecutive deadline misses', 1, 1000),
    ParamSpec('deadline_min_scale', _RUNTIME.deadline_min_scale, 'lowest keep-ratio scale (a '
              'fraction) the deadline controller may choose', 0.01, 1.0, read_only=True),
    ParamSpec('deadline_patience', _RUNTIME.deadline_patience, 'consecutive windows over '
              f'(under {CONTROLLER_DEFAULTS["headroom"]} x) the deadline before the keep ratio '
              'is lowered (raised)', 1, 1000, read_only=True),
    ParamSpec('diagnostics_period_s', 1.0, 'period of /diagnostics, s (wall clock)', 0.05, 60.0,
              read_only=True),
)

BAG_REPLAY_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec('bag', '', 'rosbag2 directory to play (required)', read_only=True),
    ParamSpec('rate', 1.0, 'playback speed factor (1.0: original timing)', 0.01, 100.0,
              read_only=True),
    ParamSpec('loop', False, 'start over at the end (time jumps back)', read_only=True),
    ParamSpec('topics', '', 'comma-separated topics to play (empty: every topic whose type '
              'is importable here)', read_only=True),
    ParamSpec('publish_clock', True, 'publish /clock (rosgraph_msgs/Clock) with bag time',
              read_only=True),
    ParamSpec('clock_period_ms', 10.0, '/clock period while waiting between messages',
              1.0, 1000.0, read_only=True),
    ParamSpec('qos_depth', 10, 'depth of the reliable publishers', 1, 1000, read_only=True),
    ParamSpec('wait_for_subscribers', 0, 'wait until every played topic has this many '
              'subscribers before starting (0: start at once); latched topics recorded '
              'transient local (/tf_static) are not waited on', 0, 100, read_only=True),
    ParamSpec('wait_timeout_s', 10.0, 'longest wait for subscribers, then start anyway',
              0.0, 3600.0, read_only=True),
    ParamSpec('start_delay_s', 0.0, 'pause after the wait, before the first message',
              0.0, 3600.0, read_only=True),
    ParamSpec('exit_when_done', True, 'shut down after the last message (when not looping)',
              read_only=True),
)

HANDOVER_EMULATOR_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec('handover_topic', 'mmtok/handover', 'handover triggers to emulate '
              '(mmtok_msgs/HandoverTrigger)', read_only=True),
    ParamSpec('rssi_topics', ['/rssi/rsu1', '/rssi/rsu2'], 'measured RSSI of RSU 1 and 2',
              read_only=True),
    ParamSpec('home_rsu', 'rsu1', 'RSU serving at the start', read_only=True),
    ParamSpec('target_rsu', 'rsu2', 'RSU handed over to', read_only=True),
    ParamSpec('truth_path', '', 'truth sidecar (scenario_XX.truth.json) for the true RSSI and '
              'the oracle; empty: measured RSSI only', read_only=True),
    ParamSpec('out_dir', 'results/emulation', 'directory for PNG, CSV and summary.json; '
              'a relative path is taken from the working directory the node was started in '
              '(replay.launch.py: where ros2 launch ran); the absolute path is logged',
              read_only=True),
    ParamSpec('stem', '', 'file name stem of the PNG/CSV (empty: scenario name)',
              read_only=True),
    ParamSpec('s_th_dbm', S_TH_DBM, 'S_th: the reactive baseline hands over below it',
              -150.0, 0.0, read_only=True),
    ParamSpec('frame_period_ms', FRAME_PERIOD_MS, 'frame period', 1.0, 10000.0, read_only=True),
    ParamSpec('reactive_off_frames', REACTIVE_OFF_FRAMES, 'reactive baseline: frames at or '
              'above S_th before handing back', 1, 1000, read_only=True),
    ParamSpec('exit_after_idle_s', 0.0, 'write the results and exit after this long without '
              'RSSI once some arrived (0: only at shutdown)', 0.0, 3600.0, read_only=True),
)


def defaults(specs: tuple[ParamSpec, ...]) -> dict[str, Any]:
    return {s.name: s.default for s in specs}


def stream_config(p: SimpleNamespace) -> StreamConfig:
    """The rsu_node parameters that configure its ``WindowStream``."""
    return StreamConfig(
        slop_ms=p.sync_slop_ms, partial_wait_ms=p.sync_partial_wait_ms,
        queue_size=p.sync_queue_size, time_jump_ms=p.sync_time_jump_ms,
        period_ms=p.frame_period_ms, n_frames=p.window_frames, s_th_dbm=p.s_th_dbm,
        expected_image_wh=(p.expected_image_width, p.expected_image_height))


def hysteresis_config(p: SimpleNamespace, threshold: float) -> HysteresisConfig:
    """The rsu_node parameters of its handover decision (raises ValueError when inconsistent).

    ``threshold``: the decision threshold in use (``blocked_threshold``, else the model
    file's); a negative ``hysteresis.p_on`` follows it, and then ``p_off`` is at most it."""
    p_on, p_off = p.hysteresis_p_on, p.hysteresis_p_off
    if p_on < 0:
        p_on, p_off = threshold, min(p_off, threshold)
    return HysteresisConfig(
        p_on=p_on, p_off=p_off, on_windows=p.hysteresis_on_windows,
        off_windows=p.hysteresis_off_windows,
        min_dwell_ns=int(p.hysteresis_min_dwell_ms * NS_PER_MS),
        floor_windows=p.hysteresis_floor_windows, clear_windows=p.hysteresis_clear_windows,
        s_th_dbm=p.s_th_dbm,
        neighbour_stale_ns=int(p.hysteresis_neighbour_stale_ms * NS_PER_MS))


def runtime_config(p: SimpleNamespace) -> RuntimeConfig:
    """The rsu_node parameters of its ``RsuRuntime``."""
    return RuntimeConfig(**{name: getattr(p, name) for name in RUNTIME_FIELDS})


__all__ = ['BAG_REPLAY_PARAMS', 'HANDOVER_EMULATOR_PARAMS', 'ParamSpec', 'RSU_NODE_PARAMS',
           'RuntimeParameters', 'SHIPPED_MODEL', 'check_value', 'declare', 'defaults',
           'hysteresis_config', 'runtime_config', 'stream_config']
