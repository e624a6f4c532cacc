"""Every node parameter, declared in one place: name, default, range, description.

``config/rsu.yaml`` and ``config/replay.yaml`` hold the same names and defaults (a test keeps
them in step). Nodes call :func:`declare` and read a plain namespace back; the specs
themselves import no rclpy, so tools and tests can read them without ROS.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable

from ..constants import FRAME_PERIOD_MS, S_TH_DBM
from ..data.stream import StreamConfig
from ..model.shipped import SHIPPED_MODEL
from ..runtime.handover import HysteresisConfig

# The offline dataset builder's defaults too (one definition), so a window the node builds
# while a bag plays equals the window built from that bag for training.
_STREAM = StreamConfig()
_HYSTERESIS = HysteresisConfig()   # the node's defaults are the library's


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    min_value: float | None = None
    max_value: float | None = None
    read_only: bool = False


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
    ParamSpec('input_qos_depth', 5, 'depth of the best-effort sensor subscriptions', 1, 100,
              read_only=True),
    ParamSpec('input_reliable', False, 'subscribe to the sensors RELIABLE instead of best '
              'effort: only with reliable publishers (bag_replay); a best-effort 640x480 image '
              'travels as ~15 UDP fragments and is lost whole when one is dropped under load',
              read_only=True),
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
    ParamSpec('torch_threads', 1, 'intra-op threads for inference, torch or onnxruntime '
              '(0: the runtime\'s default, one per core). 1 by default: with two threads on '
              'two cores shared with the sensor drivers, every parallel region waits for a '
              'descheduled thread (measured: 1.1 s instead of 51 ms per window)', 0, 256,
              read_only=True),
    ParamSpec('keep_ratio_scale', 0.0, 'keep-ratio override: every layer keeps scale * r_l of '
              'its tokens, and the deadline controller never goes above it (0: learned r_l)',
              0.0, 1.0),
    ParamSpec('blocked_threshold', -1.0, 'p_blocked at or above which the next frame is '
              'reported blocked; -1: the threshold stored in the model file (chosen on its '
              'training windows; 0.5 for older files)', -1.0, 1.0),
    ParamSpec('warmup', True, 'run a warm-up inference at start-up and log its time',
              read_only=True),
    # synchronization and windows
    ParamSpec('sync_slop_ms', _STREAM.slop_ms,
              'largest stamp spread of one synchronized frame',
              0.0, 1000.0, read_only=True),
    ParamSpec('sync_partial_wait_ms', _STREAM.partial_wait_ms, 'how long a late modality is '
              'waited for before a frame goes on without it (marked absent)', 0.0, 10000.0,
              read_only=True),
    ParamSpec('sync_queue_size', _STREAM.queue_size,
              'messages queued per input in the synchronizer', 1, 1000,
              read_only=True),
    ParamSpec('sync_time_jump_ms', _STREAM.time_jump_ms,
              'a stamp this much older than the newest one seen '
              'on its topic is a time jump back (looped bag, restarted clock): queues and '
              'windows are cleared; smaller steps back are out-of-order messages', 1.0,
              3600000.0, read_only=True),
    ParamSpec('window_frames', 5, 'frames per window (tau); must match the model', 1, 64,
              read_only=True),
    ParamSpec('frame_period_ms', FRAME_PERIOD_MS, 'sensor frame period', 1.0, 10000.0,
              read_only=True),
    ParamSpec('silent_after_periods', 5, 'warn once when an input has been silent this many '
              'frame periods', 1, 1000),
    # handover
    ParamSpec('s_th_dbm', S_TH_DBM, 'S_th of Eq. 8: serving RSSI below it means blocked',
              -150.0, 0.0, read_only=True),
    ParamSpec('rsu_id', 'rsu1', 'this RSU (the home RSU whose link is predicted)',
              read_only=True),
    ParamSpec('target_rsu', 'rsu2', 'RSU to hand over to while no neighbour link status is '
              'fresh (the two-RSU testbed)', read_only=True),
    ParamSpec('neighbours', '', 'comma-separated ids of neighbour RSUs whose link status '
              '(/<id>/<link_status_topic>) this RSU hears; the handover goes to the best of them '
              '(not predicted blocked, best measured RSSI). Empty: target_rsu only',
              read_only=True),
    ParamSpec('hysteresis.floor_windows', _HYSTERESIS.floor_windows, 'reactive floor: hand '
              'over after this many consecutive windows with the own link measured below '
              's_th_dbm, whatever the model says', 1, 100, read_only=True),
    ParamSpec('hysteresis.neighbour_stale_ms', _HYSTERESIS.neighbour_stale_ns / 1e6,
              'a neighbour link status older than this (data time) is ignored', 1.0,
              600000.0, read_only=True),
    ParamSpec('hysteresis.p_on', _HYSTERESIS.p_on, 'p_blocked at or above which a window '
              'counts toward handing over', 0.0, 1.0, read_only=True),
    ParamSpec('hysteresis.p_off', _HYSTERESIS.p_off, 'p_blocked below which a window counts '
              'toward handing back', 0.0, 1.0, read_only=True),
    ParamSpec('hysteresis.on_windows', _HYSTERESIS.on_windows, 'consecutive windows needed to '
              'hand over', 1, 100, read_only=True),
    ParamSpec('hysteresis.off_windows', _HYSTERESIS.off_windows, 'consecutive windows needed '
              'to hand back', 1, 1000, read_only=True),
    ParamSpec('hysteresis.min_dwell_ms', _HYSTERESIS.min_dwell_ns / 1e6, 'earliest hand-back '
              'after a handover', 0.0, 600000.0, read_only=True),
    # deadline
    ParamSpec('deadline_ms', 300.0, 'latency budget from the newest frame\'s arrival to the '
              'status publish', 1.0, 10000.0),
    ParamSpec('deadline_warn_after', 3, 'WARN after this many consecutive deadline misses',
              1, 1000),
    ParamSpec('deadline_min_scale', 0.5, 'lowest keep-ratio scale the deadline controller may '
              'choose', 0.01, 1.0, read_only=True),
    ParamSpec('deadline_patience', 3, 'consecutive windows over (under 0.6 x) the deadline '
              'before the keep ratio is lowered (raised)', 1, 1000, read_only=True),
    ParamSpec('diagnostics_period_s', 1.0, 'period of /diagnostics (wall clock)', 0.05, 60.0,
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
    ParamSpec('reactive_off_frames', 5, 'reactive baseline: frames at or above S_th before '
              'handing back', 1, 1000, read_only=True),
    ParamSpec('exit_after_idle_s', 0.0, 'write the results and exit after this long without '
              'RSSI once some arrived (0: only at shutdown)', 0.0, 3600.0, read_only=True),
)


def defaults(specs: tuple[ParamSpec, ...]) -> dict[str, Any]:
    return {s.name: s.default for s in specs}


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, (list, tuple)):
        return 'string array' if all(isinstance(v, str) for v in value) else 'array'
    return {int: 'integer', float: 'float', str: 'string'}.get(type(value), type(value).__name__)


def check_value(spec: ParamSpec, value: Any) -> tuple[Any, str | None]:
    """(value in the spec's type, None) or (value, reason it is rejected).

    An integer is accepted for a float parameter (``-p deadline_ms:=100``: ROS users type
    integers); any other type mismatch, and a value outside [min_value, max_value], is a reason.
    """
    want = spec.default
    if isinstance(want, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    same_type = (isinstance(value, bool) == isinstance(want, bool)
                 and isinstance(value, type(want)) or
                 (isinstance(want, list) and isinstance(value, (list, tuple))
                  and all(isinstance(v, str) for v in value)))
    if not same_type:
        return value, (f'parameter {spec.name} must be of type {_type_name(want)}, got '
                       f'{_type_name(value)} {value!r}')
    if spec.min_value is not None and not isinstance(value, bool) \
            and isinstance(value, (int, float)) \
            and not spec.min_value <= value <= spec.max_value:
        return value, (f'parameter {spec.name} = {value!r} is out of range '
                       f'[{spec.min_value:g}, {spec.max_value:g}]')
    if isinstance(value, tuple):
        value = list(value)
    return value, None


def _descriptor(s: ParamSpec, *, read_only: bool, typed: bool = True,
                ranged: bool = True) -> Any:
    """``typed=False``: dynamic typing (any type gets through to our own check, which gives
    a reason a user can read); ``ranged=False``: no range either (to read a bad override)."""
    from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                    ParameterType)
    kwargs: dict[str, Any] = {'description': s.description, 'read_only': read_only}
    if not typed:
        kwargs['dynamic_typing'] = True
    elif isinstance(s.default, bool):
        kwargs['type'] = ParameterType.PARAMETER_BOOL
    elif isinstance(s.default, int):
        kwargs['type'] = ParameterType.PARAMETER_INTEGER
    elif isinstance(s.default, float):
        kwargs['type'] = ParameterType.PARAMETER_DOUBLE
    elif isinstance(s.default, list):
        kwargs['type'] = ParameterType.PARAMETER_STRING_ARRAY
    else:
        kwargs['type'] = ParameterType.PARAMETER_STRING
    if not ranged or s.min_value is None or isinstance(s.default, bool):
        pass
    elif isinstance(s.default, int):
        kwargs['integer_range'] = [IntegerRange(from_value=int(s.min_value),
                                                to_value=int(s.max_value), step=1)]
    elif isinstance(s.default, float):
        kwargs['floating_point_range'] = [FloatingPointRange(
            from_value=float(s.min_value), to_value=float(s.max_value), step=0.0)]
    return ParameterDescriptor(**kwargs)


def _declare_one(node: Any, s: ParamSpec) -> Any:
    """Declare ``s``; returns its checked value. Raises StartupError with one clear line.

    Read-only parameters are declared with their type; the others with dynamic typing, so
    that a run-time change of the wrong type reaches :class:`RuntimeParameters` and is
    refused with a readable reason (rclpy's own type check says "expected '3' got '4'").
    """
    from rclpy.exceptions import ParameterException

    from .runtime import StartupError
    typed = s.read_only
    try:
        value = node.declare_parameter(s.name, s.default,
                                       _descriptor(s, read_only=s.read_only, typed=typed)).value
    except ParameterException:
        # The override has another type (an integer for a float, a string for a number) or
        # lies out of range: read it through an unchecked declaration, then check it below.
        value = node.declare_parameter(s.name, s.default, _descriptor(
            s, read_only=False, typed=False, ranged=False)).value
        node.undeclare_parameter(s.name)
    checked, reason = check_value(s, value)
    if reason is not None:
        raise StartupError(f'cannot start: {reason}')
    if not node.has_parameter(s.name) or type(checked) is not type(value):
        # declare again, with the value converted to the parameter's type (100 -> 100.0)
        if node.has_parameter(s.name):
            node.undeclare_parameter(s.name)
        try:
            node.declare_parameter(s.name, checked,
                                   _descriptor(s, read_only=s.read_only, typed=typed),
                                   ignore_override=True)
        except ParameterException as err:
            raise StartupError(f'cannot start: parameter {s.name}: {err}') from None
    return checked


class RuntimeParameters:
    """Run-time changes of declared parameters: validated, then applied to the namespace.

    Registered on the node by :func:`declare`. A set request (``ros2 param set``, the
    ``~/set_parameters`` service) is rejected with a reason when it names a read-only
    parameter, has the wrong type or lies outside the parameter's range; an integer for a
    float parameter is converted first. Accepted values replace the namespace's fields (the
    node reads those) and ``on_change({name: value})`` is called with the changed fields.
    ``validate({name: value})`` may return a reason to reject a combination.
    """

    def __init__(self, node: Any, specs: tuple[ParamSpec, ...], namespace: SimpleNamespace, *,
                 on_change: Callable[[dict[str, Any]], None] | None = None,
                 validate: Callable[[dict[str, Any]], str | None] | None = None) -> None:
        self.specs = {s.name: s for s in specs}
        self.namespace = namespace
        self.on_change = on_change
        self.validate = validate
        self._logger = node.get_logger()
        node.add_pre_set_parameters_callback(self._coerce)
        node.add_on_set_parameters_callback(self._check)
        node.add_post_set_parameters_callback(self._apply)

    def _coerce(self, parameters: list) -> list:
        from rclpy.parameter import Parameter
        out = []
        for param in parameters:
            s = self.specs.get(param.name)
            if s is not None and isinstance(s.default, float) \
                    and param.type_ == Parameter.Type.INTEGER:
                param = Parameter(param.name, Parameter.Type.DOUBLE, float(param.value))
            out.append(param)
        return out

    def _check(self, parameters: list) -> Any:
        from rcl_interfaces.msg import SetParametersResult
        changed = {}
        for param in parameters:
            s = self.specs.get(param.name)
            if s is None:
                continue      # not ours (use_sim_time ...): rclpy's own checks apply
            if s.read_only:
                reason = f'parameter {s.name} is read-only (set it at start-up)'
            else:
                value, reason = check_value(s, param.value)
                changed[s.name] = value
            if reason is not None:
                self._logger.warning(f'rejected parameter change: {reason}')
                return SetParametersResult(successful=False, reason=reason)
        if changed and self.validate is not None:
            reason = self.validate(changed)
            if reason:
                self._logger.warning(f'rejected parameter change: {reason}')
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply(self, parameters: list) -> None:
        changed = {}
        for param in parameters:
            s = self.specs.get(param.name)
            if s is None or s.read_only:
                continue
            value, _ = check_value(s, param.value)
            setattr(self.namespace, s.name.replace('.', '_'), value)
            changed[s.name.replace('.', '_')] = value
        if not changed:
            return
        self._logger.info('parameters changed: '
                          + ', '.join(f'{k}={v!r}' for k, v in changed.items()))
        if self.on_change is not None:
            self.on_change(changed)


def stream_config(p: SimpleNamespace) -> StreamConfig:
    """The rsu_node parameters that configure its ``WindowStream``."""
    return StreamConfig(
        slop_ms=p.sync_slop_ms, partial_wait_ms=p.sync_partial_wait_ms,
        queue_size=p.sync_queue_size, time_jump_ms=p.sync_time_jump_ms,
        period_ms=p.frame_period_ms, n_frames=p.window_frames, s_th_dbm=p.s_th_dbm,
        expected_image_wh=(p.expected_image_width, p.expected_image_height))


def hysteresis_config(p: SimpleNamespace) -> HysteresisConfig:
    """The rsu_node parameters of its handover decision (raises ValueError when inconsistent)."""
    return HysteresisConfig(
        p_on=p.hysteresis_p_on, p_off=p.hysteresis_p_off, on_windows=p.hysteresis_on_windows,
        off_windows=p.hysteresis_off_windows,
        min_dwell_ns=int(p.hysteresis_min_dwell_ms * 1e6),
        floor_windows=p.hysteresis_floor_windows, s_th_dbm=p.s_th_dbm,
        neighbour_stale_ns=int(p.hysteresis_neighbour_stale_ms * 1e6))


def declare(node: Any, specs: tuple[ParamSpec, ...], *,
            on_change: Callable[[dict[str, Any]], None] | None = None,
            validate: Callable[[dict[str, Any]], str | None] | None = None) -> SimpleNamespace:
    """Declare ``specs`` on ``node``; return their values as a namespace (dots -> '_').

    Start-up values are checked (an integer is accepted for a float; a wrong type or an
    out-of-range value raises ``StartupError`` with one line naming the parameter). Run-time
    changes go through :class:`RuntimeParameters`: read-only parameters refuse them with a
    reason; the others update the namespace and call ``on_change`` with the changed fields.
    """
    values = {s.name.replace('.', '_'): _declare_one(node, s) for s in specs}
    namespace = SimpleNamespace(**values)
    RuntimeParameters(node, specs, namespace, on_change=on_change, validate=validate)
    return namespace


__all__ = ['BAG_REPLAY_PARAMS', 'HANDOVER_EMULATOR_PARAMS', 'ParamSpec', 'RSU_NODE_PARAMS',
           'RuntimeParameters', 'SHIPPED_MODEL', 'check_value', 'declare', 'defaults',
           'hysteresis_config', 'stream_config']
