"""A ROS user's ordinary session, through real processes: parameters typed on the command
line, parameters changed at run time through the node's service, Ctrl-C as ``ros2 launch``
delivers it (two SIGINTs), and the end of a replay."""
from __future__ import annotations

import itertools

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
        from mmtok_ros.ros.runtime import init_rclpy, status_qos
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
        assert client.get('blocked_threshold') == 0.5
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
