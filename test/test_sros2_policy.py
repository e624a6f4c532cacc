"""mmtok sros2_policy: the policy grants exactly what running RSU nodes publish, subscribe to
and serve, read from the ROS graph of real processes (no SROS2 plugin here: enforcement
itself is not tested)."""
from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from contextlib import contextmanager

import pytest

from mmtok_ros.cli import main as mmtok
from mmtok_ros.ros.access_policy import multi_rsu_params, read_policy
from mmtok_ros.ros.processes import ros_args
from ros_helpers import NodeProcess, tiny_model


def _policy(tmp_path, *options: str) -> str:
    out = tmp_path / 'policy.xml'
    assert mmtok(['sros2_policy', '--rsus', '2', '--out', str(out), *options]) == 0
    return out.read_text()


def test_policy_document_has_the_sros2_shape(tmp_path):
    root = ET.fromstring(_policy(tmp_path))
    assert root.tag == 'policy' and root.get('version') == '0.2.0'
    assert [c.tag for c in root] == ['enclaves']
    enclaves = root.find('enclaves')
    assert [e.get('path') for e in enclaves] == ['/mmtok/rsu1', '/mmtok/rsu2']
    for enclave in enclaves:
        assert [c.tag for c in enclave] == ['profiles']
        (profile,) = enclave.find('profiles')
        assert profile.tag == 'profile' and profile.get('node') == 'rsu_node'
        for group in profile:
            assert group.tag in ('topics', 'services')
            rules = set(group.attrib) & {'publish', 'subscribe', 'reply', 'request'}
            assert rules and all(group.get(r) == 'ALLOW' for r in rules)
            assert len(group) >= 1 and all(c.tag == group.tag[:-1] for c in group)
    # only RSU k's enclave may publish RSU k's link status and handover trigger
    granted = {p.enclave: p.publish for p in read_policy(ET.tostring(root, 'unicode'))}
    assert '/rsu1/mmtok/handover' in granted['/mmtok/rsu1']
    assert not any('/rsu1/mmtok/' in t for t in granted['/mmtok/rsu2'])


def test_bad_arguments_are_one_line(capsys):
    assert mmtok(['sros2_policy', '--rsus', '1']) == 2
    assert capsys.readouterr().err.strip() == \
        'mmtok sros2_policy: error: --rsus 1: need at least 2 RSUs'


@contextmanager
def _client(name: str):
    """(node, executor) on a context of their own, torn down after."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    from mmtok_ros.ros.node_lifetime import init_rclpy
    ctx = Context()
    init_rclpy([], context=ctx)
    node = rclpy.create_node(name, context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    try:
        yield node, executor
    finally:
        executor.shutdown()
        node.destroy_node()
        ctx.try_shutdown()


def _activate(namespaces: list[str]) -> None:
    """configure + activate each managed node through its lifecycle service."""
    from lifecycle_msgs.srv import ChangeState
    with _client('policy_lifecycle_client') as (node, executor):
        for ns in namespaces:
            client = node.create_client(ChangeState, f'/{ns}/rsu_node/change_state')
            assert client.wait_for_service(timeout_sec=30.0)
            for label in ('configure', 'activate'):
                request = ChangeState.Request()
                request.transition.label = label
                future = client.call_async(request)
                executor.spin_until_future_complete(future, timeout_sec=30.0)
                assert future.result() is not None and future.result().success, (ns, label)


def _graph(namespaces: list[str], expected: dict) -> dict:
    """What the ROS graph says each rsu_node has, once it says as much as the policy."""
    queries = {'publish': 'get_publisher_names_and_types_by_node',
               'subscribe': 'get_subscriber_names_and_types_by_node',
               'reply': 'get_service_names_and_types_by_node',
               'request': 'get_client_names_and_types_by_node'}
    with _client('policy_graph_probe') as (node, executor):
        deadline = time.monotonic() + 30.0
        while True:
            executor.spin_once(timeout_sec=0.1)
            seen = {}
            for ns in namespaces:
                try:
                    seen[ns] = {rule: {name for name, _ in getattr(node, query)('rsu_node',
                                                                                f'/{ns}')}
                                for rule, query in queries.items()}
                except Exception:      # NodeNameNonExistentError: not discovered yet
                    seen[ns] = {}
            if seen == expected or time.monotonic() > deadline:
                return seen


@pytest.mark.parametrize('executable', ['rsu_node', 'rsu_lifecycle_node'])
def test_policy_covers_exactly_what_running_nodes_create(tmp_path, executable):
    lifecycle = executable == 'rsu_lifecycle_node'
    policy = read_policy(_policy(tmp_path, *(['--lifecycle'] if lifecycle else [])))
    expected = {p.namespace.strip('/'): {'publish': p.publish, 'subscribe': p.subscribe,
                                         'reply': p.reply, 'request': p.request}
                for p in policy}
    model = tiny_model(tmp_path / 'tiny.pt')
    procs = []
    try:
        for ns, params in multi_rsu_params(2):
            args = ros_args({'model_path': str(model), 'device': 'cpu', **params})[1:]
            procs.append(NodeProcess(executable, ros_args=('-r', f'__ns:=/{ns}', *args)))
        if lifecycle:
            _activate(list(expected))
        seen = _graph(list(expected), expected)
    finally:
        for proc in procs:
            proc.interrupt()
        outputs = [proc.finish(30) for proc in procs]
    assert all(status == 0 for status, _ in outputs), outputs
    for ns in expected:
        for rule in ('publish', 'subscribe', 'reply', 'request'):
            assert seen[ns][rule] == expected[ns][rule], (ns, rule, 'not granted:',
                                                          seen[ns][rule] - expected[ns][rule],
                                                          'granted but unused:',
                                                          expected[ns][rule] - seen[ns][rule])
