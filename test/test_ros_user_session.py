"""A ROS user's ordinary session, through real processes: parameters typed on the command
line, parameters changed at run time through the node's service, Ctrl-C as ``ros2 launch``
delivers it (two SIGINTs), and the end of a replay."""
from __future__ import annotations

import itertools
import time

import pytest

from ros_helpers import NodeProcess, tiny_model, values, wait_until

_names = itertools.count()
MODEL_PARAMS = ('device:=cpu', 'warmup:=false', 'torch_threads:=1')


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp('model') / 'tiny.pt')


def _rsu(model, *params: str) -> tuple[str, NodeProcess]:
    name = f'rsu_session_{next(_names)}'
    return name, NodeProcess('rsu_node', f'model_path:={model}', *MODEL_PARAMS, *params,
                             ros_args=('-r', f'__node:={name}'))


def _assert_one_fatal_line(rc: int, out: str, *expected: str) -> None:
    assert rc == 1, out
    assert 'Traceback' not in out, out
    fatal = [line for line in out.splitlines() if '[FATAL]' in line]
    assert len(fatal) == 1, out
    for text in expected:
        assert text in fatal[0], fatal[0]


# ---------------------------------------------------------------- parameters at start-up
@pytest.mark.parametrize('param,expected', [
    ('window_frames:=0', ('window_frames', 'out of range', '[1, 64]')),
    ('deadline_ms:=fast', ('deadline_ms', 'float', "'fast'")),
    ('deadline_ms:=0.5', ('deadline_ms', 'out of range')),
    ('window_frames:=2.5', ('window_frames', 'integer', '2.5')),
])
def test_a_bad_parameter_is_one_fatal_line_and_exit_1(model, param, expected):
    _, node = _rsu(model, param)
    rc, out = node.finish(timeout_s=60)
    _assert_one_fatal_line(rc, out, *expected)


def test_bag_replay_bad_rate_is_one_fatal_line(tmp_path):
    rc, out = NodeProcess('bag_replay', f'bag:={tmp_path}', 'rate:=1000').finish(60)
    _assert_one_fatal_line(rc, out, 'rate', 'out of range')


# ---------------------------------------------------------------- run-time changes
class _ParamClient:
    """set_parameters / get_parameters of one node, from a private rclpy context."""

    def __init__(self, node_name: str) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rcl_interfaces.srv import GetParameters, SetParameters

        from diagnostic_msgs.msg import DiagnosticArray
        from mmtok_ros.ros.qos import status_qos
        from mmtok_ros.ros.node_lifetime import init_rclpy
        self.context = Context()
        init_rclpy([], context=self.context)
        self.node = rclpy.create_node(f'param_client_{next(_names)}', context=self.context)
        self.set_client = self.node.create_client(SetParameters, f'/{node_name}/set_parameters')
        self.get_client = self.node.create_client(GetParameters, f'/{node_name}/get_parameters')
        self.diagnostics: list[dict[str, str]] = []
        self.node.create_subscription(
            DiagnosticArray, '/diagnostics',
            lambda m: self.diagnostics.append(values(m)) if m.status and
            m.status[0].name.startswith(node_name) and m.status[0].values else None,
            status_qos())
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spin = lambda t: self.executor.spin_once(timeout_sec=t)

    def call(self, client, request, timeout_s: float = 10.0):
        assert client.wait_for_service(timeout_sec=20.0), 'no parameter service'
        future = client.call_async(request)
        ok = wait_until(lambda: (self._spin(0.05), future.done())[1], timeout_s)
        assert ok, 'no reply from the parameter service'
        return future.result()

    def set(self, name: str, value):
        from rclpy.parameter import Parameter
        from rcl_interfaces.srv import SetParameters
        request = SetParameters.Request(parameters=[Parameter(name, value=value)
                                                    .to_parameter_msg()])
        return self.call(self.set_client, request).results[0]

    def get(self, name: str):
        from rclpy.parameter import parameter_value_to_python
        from rcl_interfaces.srv import GetParameters
        reply = self.call(self.get_client, GetParameters.Request(names=[name]))
        return parameter_value_to_python(reply.values[0])

    def diagnostics_show(self, key: str, text: str, timeout_s: float = 10.0) -> bool:
        return wait_until(lambda: (self._spin(0.05), any(
            d.get(key) == text for d in self.diagnostics[-3:]))[1], timeout_s)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def test_run_time_changes_are_validated_applied_and_read_only_refused(model):
    # an integer for a float parameter at start-up, and diagnostics often enough to watch
    name, node = _rsu(model, 'deadline_ms:=100', 'diagnostics_period_s:=0.2')
    client = None
    try:
        assert node.wait_for('ready', 90), node.output
        client = _ParamClient(name)
        assert client.get('deadline_ms') == 100.0
        assert client.diagnostics_show('deadline_ms', '100.0000'), client.diagnostics[-1:]

        accepted = client.set('deadline_ms', 150)          # an integer again: converted
        assert accepted.successful, accepted.reason
        assert client.get('deadline_ms') == 150.0
        assert isinstance(client.get('deadline_ms'), float)
        # the node uses the new value (its diagnostics report the deadline it works to)
        assert client.diagnostics_show('deadline_ms', '150.0000'), client.diagnostics[-1:]

        out_of_range = client.set('blocked_threshold', 1.5)
        assert not out_of_range.successful
        assert 'out of range' in out_of_range.reason and 'blocked_threshold' in \
            out_of_range.reason
        wrong_type = client.set('deadline_ms', 'soon')
        assert not wrong_type.successful and 'float' in wrong_type.reason
        read_only = client.set('window_frames', 3)
        assert not read_only.successful and 'read-only' in read_only.reason
        assert client.get('window_frames') == 5
        assert client.get('deadline_ms') == 150.0
        assert client.get('blocked_threshold') == -1.0      # the default: the model's
    finally:
        if client is not None:
            client.close()
        node.interrupt()
        rc, out = node.finish()
    assert rc == 0, out
    assert 'Traceback' not in out, out
    assert 'rejected parameter change' in out


# ---------------------------------------------------------------- Ctrl-C under launch
@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    from mmtok_ros.sim.simulate import simulate
    out = tmp_path_factory.mktemp('session_bags')
    simulate(out, n_scenarios=1, seed=5, frames_per_scenario=12, progress=False)
    return out / 'scenario_00'


def _start(kind: str, model, bag, tmp_path, k: int) -> tuple[NodeProcess, str]:
    """A process of ``kind`` and the log text that says it is up and spinning."""
    if kind == 'rsu_node':
        return _rsu(model)[1], 'ready'
    if kind == 'bag_replay':
        return NodeProcess('bag_replay', f'bag:={bag}', 'publish_clock:=false',
                           ros_args=('-r', f'__node:=replay_session_{k}')), 'playing'
    return NodeProcess('handover_emulator', f'out_dir:={tmp_path / str(k)}',
                       ros_args=('-r', f'__node:=emulator_session_{k}')), 'emulating'


@pytest.mark.parametrize('kind', ['rsu_node', 'bag_replay', 'handover_emulator'])
def test_two_sigints_as_launch_sends_them_exit_quietly_with_0(kind, model, bag, tmp_path):
    gaps_s = (0.05, 0.15, 0.3)
    procs = [_start(kind, model, bag, tmp_path, k) for k in range(len(gaps_s))]
    for gap, (proc, ready) in zip(gaps_s, procs):
        assert proc.wait_for(ready, 90), proc.output
        proc.interrupt(gap)
    for gap, (proc, _) in zip(gaps_s, procs):
        rc, out = proc.finish()
        assert rc == 0, f'gap {gap} s: {out}'
        assert 'Traceback' not in out and 'KeyboardInterrupt' not in out, out
        assert 'Failed to publish log message' not in out, out


# ---------------------------------------------------------------- the end of a replay
def test_replay_launch_ends_when_bag_replay_exits():
    import ast
    from pathlib import Path

    from test_launch_files import calls, keyword
    tree = ast.parse((Path(__file__).resolve().parents[1] / 'launch' /
                      'replay.launch.py').read_text())
    replay_var = next(t.id for n in ast.walk(tree) if isinstance(n, ast.Assign)
                      for t in n.targets if isinstance(n.value, ast.Call)
                      and getattr(n.value.func, 'id', '') == 'Node'
                      and ast.literal_eval(keyword(n.value, 'executable')) == 'bag_replay')
    handlers = [c for c in calls(tree, 'OnProcessExit')
                if getattr(keyword(c, 'target_action'), 'id', None) == replay_var]
    assert len(handlers) == 1, 'no OnProcessExit handler on bag_replay'
    assert calls(handlers[0], 'Shutdown'), 'bag_replay ending does not shut the launch down'
    registered = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign)
                      and handlers[0] in ast.walk(n.value)
                      and getattr(n.value.func, 'id', '') == 'RegisterEventHandler')
    returned = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Return))
    assert registered.targets[0].id in {n.id for n in ast.walk(returned)
                                        if isinstance(n, ast.Name)}, \
        'the event handler is not in the LaunchDescription'
    out_dir = next(c for c in calls(tree, 'DeclareLaunchArgument')
                   if ast.literal_eval(c.args[0]) == 'out_dir')
    assert 'getcwd' in ast.dump(keyword(out_dir, 'default_value')), \
        'out_dir must default to an absolute path under the directory launch runs in'


def _latched_bag(path, n_rssi: int = 20):
    """A bag with a transient-local topic (like /tf_static) and one sensor topic."""
    from rosbags.interfaces import QosDurability, QosReliability
    from rosbags.rosbag2 import StoragePlugin, Writer

    from mmtok_ros.sim import bag_writer as bw
    ts = bw.TYPESTORE
    latched_qos = bw._qos(QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, 1)
    with Writer(path, version=bw.BAG_VERSION, storage_plugin=StoragePlugin.MCAP) as writer:
        latched = writer.add_connection('/session/latched', 'std_msgs/msg/String',
                                        typestore=ts, offered_qos_profiles=[latched_qos])
        rssi = writer.add_connection('/session/rssi', 'sensor_msgs/msg/Temperature',
                                     typestore=ts, offered_qos_profiles=[bw.RELIABLE_QOS])
        t0 = 1_700_000_000_000_000_000
        writer.write(latched, t0, ts.serialize_cdr(ts.types['std_msgs/msg/String'](
            data='static'), 'std_msgs/msg/String'))
        for k in range(n_rssi):
            stamp = t0 + (k + 1) * 100_000_000
            msg = ts.types['sensor_msgs/msg/Temperature'](
                header=bw.header(stamp, 'rsu'), temperature=-40.0, variance=1.0)
            writer.write(rssi, stamp, ts.serialize_cdr(msg, 'sensor_msgs/msg/Temperature'))
    return path


def test_latched_topic_keeps_transient_local_and_is_not_waited_on(tmp_path):
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Temperature
    from std_msgs.msg import String

    from mmtok_ros.ros.qos import status_qos
    from mmtok_ros.ros.node_lifetime import init_rclpy
    bag = _latched_bag(tmp_path / 'latched')
    ctx = Context()
    init_rclpy([], context=ctx)
    node = rclpy.create_node(f'latched_listener_{next(_names)}', context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    rssi, latched = [], []
    # a subscriber on the sensor topic only: the replay must start without one on the latched
    node.create_subscription(Temperature, '/session/rssi', rssi.append, status_qos(50))
    replay = NodeProcess('bag_replay', f'bag:={bag}', 'publish_clock:=false',
                         'wait_for_subscribers:=1', 'wait_timeout_s:=60.0',
                         ros_args=('-r', f'__node:=replay_latched_{next(_names)}'))
    spin = (lambda: (executor.spin_once(timeout_sec=0.05), False)[1])
    try:
        assert wait_until(lambda: spin() or 'playing' in replay.output, 30), replay.output
        assert 'starting anyway' not in replay.output, replay.output
        # a late subscriber, transient local: gets the latched message only if it was
        # republished transient local (a volatile publisher never matches it)
        node.create_subscription(String, '/session/latched', latched.append, QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL))
        assert wait_until(lambda: spin() or bool(latched), 10), replay.output
        assert latched[0].data == 'static'
        infos = node.get_publishers_info_by_topic('/session/latched')
        assert infos and infos[0].qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
        wait_until(lambda: spin() or replay.proc.poll() is not None, 30)
    finally:
        if replay.proc.poll() is None:
            replay.interrupt()
        rc, out = replay.finish()
        executor.shutdown()
        node.destroy_node()
        ctx.try_shutdown()
    assert rc == 0 and 'Traceback' not in out, out
    assert len(rssi) == 20


def test_emulator_writes_results_on_shutdown_under_a_resolved_out_dir(tmp_path):
    import os

    import rclpy
    from rclpy.context import Context
    from sensor_msgs.msg import Temperature

    from mmtok_ros.ros.qos import sensor_qos
    from mmtok_ros.ros.node_lifetime import init_rclpy
    from ros_helpers import rssi_msg
    k = next(_names)
    topics = [f'/session{k}/rssi/rsu1', f'/session{k}/rssi/rsu2']
    cwd = os.getcwd()
    os.chdir(tmp_path)          # the emulator process inherits it: out_dir is relative to it
    try:
        emulator = NodeProcess('handover_emulator', 'out_dir:=rel/out',
                               f'rssi_topics:=["{topics[0]}", "{topics[1]}"]',
                               ros_args=('-r', f'__node:=emulator_out_{k}'))
    finally:
        os.chdir(cwd)
    ctx = Context()
    init_rclpy([], context=ctx)
    node = rclpy.create_node(f'rssi_feeder_{k}', context=ctx)
    pubs = [node.create_publisher(Temperature, t, sensor_qos(10)) for t in topics]
    try:
        assert emulator.wait_for('emulating', 60), emulator.output
        assert str(tmp_path / 'rel' / 'out') in emulator.output   # the absolute path
        assert wait_until(lambda: all(p.get_subscription_count() >= 1 for p in pubs), 20)
        base = 1_700_000_000_000_000_000
        # best effort: until the emulator logs a non-finite reading (left out), its reader may
        # not have matched ours yet (a loaded host) and the frames below would all be lost
        nan = rssi_msg(base - 300_000_000, float('nan'))
        assert wait_until(lambda: (pubs[0].publish(nan), time.sleep(0.05),
                                   'non-finite RSSI' in emulator.output)[2], 30), emulator.output
        for i in range(30):
            for pub, dbm in zip(pubs, (-40.0 - i, -45.0)):
                pub.publish(rssi_msg(base + i * 300_000_000, dbm))
            time.sleep(0.01)
        time.sleep(0.5)
        emulator.interrupt(0.1)
        rc, out = emulator.finish()
    finally:
        node.destroy_node()
        ctx.try_shutdown()
    assert rc == 0 and 'Traceback' not in out, out
    summary = tmp_path / 'rel' / 'out' / 'summary.json'
    assert summary.is_file(), out
    assert f'wrote {summary}' in out
