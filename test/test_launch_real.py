"""The README's ``ros2 launch`` commands under a real ``launch.LaunchService``.

The package is built once per test run in a colcon workspace and each launch file runs from
``install/share/mmtok_ros/launch`` with ``install/setup.bash`` sourced, as a ROS user runs it
(``test/launch_helpers.py``). What a user meets is checked where they meet it: the node's
parameters through its parameter services, its topics in the ROS graph, typed messages over
DDS, the emulator's files on disk, and Ctrl-C (one SIGINT to launch, or the terminal's SIGINT
to the whole process group, twice) ending every process of ours within 2 s with status 0 and
no error line.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from launch_helpers import LaunchProcess, Workspace, build_workspace, group_alive

CTRL_C_LIMIT_S = 2.0
ERROR_MARKS = ('Traceback', 'failed to terminate', '[ERROR]', 'RCLError', 'has died')


@pytest.fixture(scope='module')
def ws(tmp_path_factory) -> Workspace:
    return build_workspace(tmp_path_factory.mktemp('colcon_ws'))


@pytest.fixture(scope='module')
def probe():
    """A node of the test's own that reads parameters, the graph and link status over DDS."""
    p = GraphProbe()
    yield p
    p.close()


class GraphProbe:
    def __init__(self) -> None:
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        from mmtok_ros.ros.node_lifetime import init_rclpy
        self.context = Context()
        rclpy = init_rclpy([], context=self.context)
        self.node = rclpy.create_node('launch_test_probe', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.statuses: dict[str, list] = {}
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:   # the context ends at close()
            pass

    def parameters(self, node: str, names: list[str], timeout_s: float = 20.0) -> dict:
        """``ros2 param get``: the values through ``NODE/get_parameters``."""
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python
        client = self.node.create_client(GetParameters, f'{node}/get_parameters')
        try:
            assert client.wait_for_service(timeout_sec=timeout_s), f'no {node}/get_parameters'
            future = client.call_async(GetParameters.Request(names=names))
            deadline = time.monotonic() + timeout_s
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert future.done(), f'{node}/get_parameters did not answer'
            return {n: parameter_value_to_python(v)
                    for n, v in zip(names, future.result().values)}
        finally:
            self.node.destroy_client(client)

    def endpoints(self, name: str, namespace: str) -> tuple[set[str], set[str]]:
        """(topics the node publishes, topics it subscribes), as ``ros2 node info`` shows.
        The node's name can be in the graph a moment before its endpoints' owner is, which
        the queries report as a nonexistent node: asked again for up to 10 s."""
        from rclpy._rclpy_pybind11 import NodeNameNonExistentError
        deadline = time.monotonic() + 10.0
        while True:
            try:
                pubs = self.node.get_publisher_names_and_types_by_node(name, namespace)
                subs = self.node.get_subscriber_names_and_types_by_node(name, namespace)
                return {t for t, _ in pubs}, {t for t, _ in subs}
            except NodeNameNonExistentError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def wait_for_node(self, name: str, namespace: str, timeout_s: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (name, namespace) in self.node.get_node_names_and_namespaces():
                return True
            time.sleep(0.1)
        return False

    def listen(self, topic: str) -> list:
        """Typed ``LinkStatus`` messages on ``topic`` from now on."""
        from mmtok_msgs.msg import LinkStatus

        from mmtok_ros.ros.qos import status_qos
        received = self.statuses.setdefault(topic, [])
        self.node.create_subscription(LinkStatus, topic, received.append, status_qos())
        return received

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def assert_quiet_end(launch: LaunchProcess, seconds: float) -> None:
    """Every process of ours ended within the limit, status 0, no error line."""
    out = launch.output
    assert seconds <= CTRL_C_LIMIT_S, f'Ctrl-C took {seconds:.2f} s:\n{out[-3000:]}'
    assert launch.proc.returncode == 0, out[-3000:]
    assert not group_alive(launch.proc.pid), 'a process of the launch outlived it'
    for mark in ERROR_MARKS:
        assert mark not in out, f'{mark!r} in the launch output:\n{out[-3000:]}'


def mmtok(ws: Workspace, *args: str) -> subprocess.CompletedProcess:
    """``ros2 run mmtok_ros mmtok ARGS``: the executable under install/lib/mmtok_ros."""
    command = ' '.join([str(ws.lib / 'mmtok'), *args])
    return subprocess.run(ws.shell(command), env=ws.env(), capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope='module')
def bags(ws, tmp_path_factory) -> dict[str, Path]:
    """A short testbed scenario and a 3-RSU road, written by the installed ``mmtok``."""
    root = tmp_path_factory.mktemp('bags')
    for name, extra in (('testbed', ''), ('road', '--rsus 3')):
        done = mmtok(ws, 'simulate', '--out', str(root / name), '--scenarios', '1',
                     '--frames', '20', '--seed', '3', '--no-progress', extra)
        assert done.returncode == 0, done.stdout + done.stderr
    return {'testbed': root / 'testbed', 'road': root / 'road'}


def test_mmtok_runs_from_the_colcon_install(ws):
    done = mmtok(ws, '--help')
    assert done.returncode == 0, done.stderr
    assert 'simulate' in done.stdout and 'emulate' in done.stdout
    # run by the interpreter that has torch and rclpy (colcon's own venv has neither)
    assert (ws.lib / 'mmtok').read_text().splitlines()[0] == f'#!{sys.prefix}/bin/python'


def test_rsu_launch_defaults_start_the_node_and_one_sigint_ends_it(ws, probe, tmp_path):
    # the README's first command as it is: device cuda, which falls back to cpu with a WARN
    # on a machine without CUDA (on one with CUDA the node runs there)
    import torch
    launch = LaunchProcess(ws, 'rsu.launch.py', cwd=tmp_path)
    try:
        assert launch.wait_for('ready:', timeout_s=90), launch.output[-3000:]
        if not torch.cuda.is_available():
            assert '[WARN]' in launch.output and 'cpu' in launch.output
        values = probe.parameters('/rsu_node', ['device', 'rssi_topics', 'rsu_id', 'neighbours',
                                                'target_rsu', 'image_topic', 'lidar_topic',
                                                'use_sim_time'])
        assert values == {'device': 'cuda', 'rssi_topics': ['rssi/rsu1', 'rssi/rsu2'],
                          'rsu_id': 'rsu1', 'neighbours': '', 'target_rsu': 'rsu2',
                          'image_topic': 'camera/image_raw', 'lidar_topic': 'lidar/points',
                          'use_sim_time': False}
        pubs, subs = probe.endpoints('rsu_node', '/')
        assert {'/mmtok/link_status', '/mmtok/handover', '/diagnostics'} <= pubs
        assert {'/camera/image_raw', '/lidar/points', '/rssi/rsu1', '/rssi/rsu2'} <= subs
        assert_quiet_end(launch, launch.ctrl_c(whole_group=False))
    finally:
        launch.kill()


def test_rsu_launch_in_a_namespace_with_neighbours_and_a_terminal_ctrl_c(ws, probe, tmp_path):
    launch = LaunchProcess(ws, 'rsu.launch.py', 'device:=cpu', 'namespace:=rsu2',
                           'rsu_id:=rsu2', 'neighbours:=rsu1,rsu3', cwd=tmp_path)
    try:
        assert launch.wait_for('ready:', timeout_s=90), launch.output[-3000:]
        values = probe.parameters('/rsu2/rsu_node', ['rsu_id', 'neighbours', 'rssi_topics'])
        assert values == {'rsu_id': 'rsu2', 'neighbours': 'rsu1,rsu3',
                          'rssi_topics': ['rssi/rsu1', 'rssi/rsu2']}
        pubs, subs = probe.endpoints('rsu_node', '/rsu2')
        assert {'/rsu2/mmtok/link_status', '/rsu2/mmtok/handover'} <= pubs
        assert {'/rsu2/camera/image_raw', '/rsu2/lidar/points', '/rsu2/rssi/rsu1',
                '/rsu1/mmtok/link_status', '/rsu3/mmtok/link_status'} <= subs
        assert not any(t.startswith('/mmtok/') for t in pubs), pubs
        assert_quiet_end(launch, launch.ctrl_c(whole_group=True))
    finally:
        launch.kill()


def test_replay_launch_ends_with_its_bag_and_writes_the_emulation(ws, bags, tmp_path):
    bag = bags['testbed'] / 'scenario_00'
    out_dir = tmp_path / 'emulation'
    launch = LaunchProcess(ws, 'replay.launch.py', f'bag:={bag}',
                           f'truth:={bag}.truth.json', 'device:=cpu', 'rate:=2.0',
                           f'out_dir:={out_dir}', cwd=tmp_path)
    try:
        assert launch.finish(timeout_s=120) == 0, launch.output[-3000:]
        for mark in ERROR_MARKS:
            assert mark not in launch.output, launch.output[-3000:]
        summary = json.loads((out_dir / 'summary.json').read_text())
        assert summary, 'empty emulation summary'
        assert 'played' in launch.output
    finally:
        launch.kill()


def test_replay_launch_ctrl_c_mid_bag_ends_every_process_quietly(ws, bags, tmp_path):
    bag = bags['testbed'] / 'scenario_00'
    launch = LaunchProcess(ws, 'replay.launch.py', f'bag:={bag}', 'device:=cpu', 'loop:=true',
                           f'out_dir:={tmp_path / "emulation"}', cwd=tmp_path)
    try:
        assert launch.wait_for('[bag_replay]: playing ', timeout_s=90), launch.output[-3000:]
        time.sleep(1.0)
        assert_quiet_end(launch, launch.ctrl_c(whole_group=False))
    finally:
        launch.kill()


def test_multi_rsu_launch_beside_a_road_bag_publishes_link_status_of_every_rsu(
        ws, bags, probe, tmp_path):
    topics = {f'rsu{k}': probe.listen(f'/rsu{k}/mmtok/link_status') for k in (1, 2, 3)}
    launch = LaunchProcess(ws, 'multi_rsu.launch.py', 'rsus:=3', 'device:=cpu', cwd=tmp_path)
    replay = None
    try:
        assert launch.wait_for('ready:', times=3, timeout_s=120), launch.output[-3000:]
        command = (f'exec {ws.lib / "bag_replay"} --ros-args -p bag:={bags["road"] / "scenario_00"}'
                   ' -p loop:=true -p wait_for_subscribers:=1')
        replay = subprocess.Popen(ws.shell(command), env=ws.env(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(topics.values()):
            time.sleep(0.2)
        assert all(topics.values()), {k: len(v) for k, v in topics.items()}
        from mmtok_msgs.msg import LinkStatus
        assert all(isinstance(m, LinkStatus) for v in topics.values() for m in v)
        assert_quiet_end(launch, launch.ctrl_c(whole_group=True))
    finally:
        if replay is not None:
            replay.send_signal(2)
            replay.wait(timeout=10)
        launch.kill()


def test_ros2_run_rsu_node_with_the_installed_parameter_file(ws, tmp_path):
    """``ros2 run mmtok_ros rsu_node --ros-args --params-file config/rsu.yaml -p device:=cpu``."""
    params = ws.root / 'install' / 'mmtok_ros' / 'share' / 'mmtok_ros' / 'config' / 'rsu.yaml'
    command = f'exec {ws.lib / "rsu_node"} --ros-args --params-file {params} -p device:=cpu'
    node = subprocess.Popen(ws.shell(command), env=ws.env(), cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        lines = []
        for line in node.stdout:
            lines.append(line)
            if 'ready:' in line:
                break
        assert any('ready:' in line for line in lines), ''.join(lines)
        node.send_signal(2)
        assert node.wait(timeout=CTRL_C_LIMIT_S + 1) == 0
        rest = node.stdout.read()
        assert 'Traceback' not in rest and '[ERROR]' not in rest, rest
    finally:
        node.kill()
        node.wait()
