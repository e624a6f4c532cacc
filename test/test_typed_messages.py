"""The typed interface package mmtok_msgs: fields, constants, CDR round trip, and real processes.

`make test` builds mmtok_msgs into the venv first (`make msgs`); the processes here are started
the way a console script is (no LD_LIBRARY_PATH, no bootstrap marker inherited), so they also
check that the built libraries are found from the venv alone.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

try:
    from mmtok_msgs.msg import HandoverTrigger, LinkStatus
except ImportError as err:  # a bare `mmtok_msgs/` source folder imports as an empty namespace
    raise ImportError(f'mmtok_msgs is not built into this Python ({err}); run `make msgs`') \
        from None

LINK_STATUS_FIELDS = {
    'header': 'std_msgs/Header', 'rsu_id': 'string', 'serving_rsu': 'string',
    'status': 'uint8', 'p_blocked': 'float', 'blocked_threshold': 'float', 'rssi_dbm': 'float',
    'inference_ms': 'float', 'latency_ms': 'float', 'deadline_ms': 'float',
    'deadline_met': 'boolean', 'keep_scale': 'float', 'tokens_per_layer': 'sequence<uint32>',
    'frames_tokenized': 'uint8', 'predicted_for': 'builtin_interfaces/Time', 'method': 'string',
}
HANDOVER_FIELDS = {
    'header': 'std_msgs/Header', 'source_rsu': 'string', 'target_rsu': 'string',
    'reason': 'uint8', 'reason_text': 'string', 'p_blocked': 'float',
    'serving_rssi_dbm': 'float', 'target_rssi_dbm': 'float', 'target_p_blocked': 'float',
    'time_to_blockage_s': 'float', 'latency_ms': 'float',
}


def test_fields_and_constants():
    assert LinkStatus.get_fields_and_field_types() == LINK_STATUS_FIELDS
    assert HandoverTrigger.get_fields_and_field_types() == HANDOVER_FIELDS
    assert (LinkStatus.STATUS_CLEAR, LinkStatus.STATUS_BLOCKED, LinkStatus.STATUS_UNKNOWN) == \
        (0, 1, 2)
    assert (HandoverTrigger.REASON_PREDICTED_BLOCKAGE,
            HandoverTrigger.REASON_MEASURED_BELOW_THRESHOLD,
            HandoverTrigger.REASON_LINK_RECOVERED,
            HandoverTrigger.REASON_TARGET_BLOCKED) == (0, 1, 2, 3)


def test_reason_codes_of_the_decision_match_the_message():
    from mmtok_ros.runtime.handover import REASON_CODES
    assert REASON_CODES == {
        'predicted_blockage': HandoverTrigger.REASON_PREDICTED_BLOCKAGE,
        'measured_below_threshold': HandoverTrigger.REASON_MEASURED_BELOW_THRESHOLD,
        'predicted_clear': HandoverTrigger.REASON_LINK_RECOVERED,
        'measured_clear': HandoverTrigger.REASON_LINK_RECOVERED,   # the hand-back floor
        'target_blocked': HandoverTrigger.REASON_TARGET_BLOCKED}


def test_serialization_round_trip():
    from rclpy.serialization import deserialize_message, serialize_message
    status = LinkStatus(rsu_id='rsu2', serving_rsu='rsu1', status=LinkStatus.STATUS_BLOCKED,
                        p_blocked=0.8125, blocked_threshold=0.7, rssi_dbm=float('nan'),
                        inference_ms=12.5, latency_ms=20.25, deadline_ms=100.0,
                        deadline_met=True, keep_scale=0.75, tokens_per_layer=[49, 33, 17],
                        frames_tokenized=1, method='routed')
    status.header.stamp.sec, status.header.stamp.nanosec = 1000, 300_000_000
    status.header.frame_id = 'rsu2'
    status.predicted_for.sec, status.predicted_for.nanosec = 1000, 600_000_000
    back = deserialize_message(serialize_message(status), LinkStatus)
    assert (back.rsu_id, back.serving_rsu, back.status, back.method) == \
        ('rsu2', 'rsu1', 1, 'routed')
    assert back.p_blocked == 0.8125 and math.isnan(back.rssi_dbm)
    assert list(back.tokens_per_layer) == [49, 33, 17] and back.deadline_met is True
    assert (back.header.stamp.sec, back.header.stamp.nanosec, back.header.frame_id) == \
        (1000, 300_000_000, 'rsu2')
    assert (back.predicted_for.sec, back.predicted_for.nanosec) == (1000, 600_000_000)

    trigger = HandoverTrigger(source_rsu='rsu1', target_rsu='rsu3',
                              reason=HandoverTrigger.REASON_MEASURED_BELOW_THRESHOLD,
                              reason_text='measured_below_threshold', p_blocked=0.0,
                              serving_rssi_dbm=-70.0, target_rssi_dbm=-41.5,
                              target_p_blocked=0.125, time_to_blockage_s=float('nan'),
                              latency_ms=3.5)
    back = deserialize_message(serialize_message(trigger), HandoverTrigger)
    assert (back.source_rsu, back.target_rsu, back.reason, back.reason_text) == \
        ('rsu1', 'rsu3', 1, 'measured_below_threshold')
    assert (back.serving_rssi_dbm, back.target_rssi_dbm, back.target_p_blocked) == \
        (-70.0, -41.5, 0.125)
    assert math.isnan(back.time_to_blockage_s)


# Publisher: both messages, reliable + transient local (the node's handover QoS), repeated
# every 50 ms until killed, so a late DDS match cannot lose them.
_PUBLISHER = textwrap.dedent('''
    import time, rclpy
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
    from mmtok_msgs.msg import HandoverTrigger, LinkStatus
    rclpy.init()
    node = rclpy.create_node('typed_publisher', namespace='rsu1')
    qos = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
    pub_status = node.create_publisher(LinkStatus, 'link_status', qos)
    pub_trigger = node.create_publisher(HandoverTrigger, 'handover', qos)
    status = LinkStatus(rsu_id='rsu1', serving_rsu='rsu1', status=LinkStatus.STATUS_BLOCKED,
                        p_blocked=0.875, blocked_threshold=0.7, rssi_dbm=-52.0,
                        tokens_per_layer=[10, 6], method='routed')
    status.header.stamp.sec = 1234
    trigger = HandoverTrigger(source_rsu='rsu1', target_rsu='rsu3',
                              reason=HandoverTrigger.REASON_PREDICTED_BLOCKAGE,
                              reason_text='predicted_blockage', p_blocked=0.875)
    print('ready', flush=True)
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        pub_status.publish(status)
        pub_trigger.publish(trigger)
        rclpy.spin_once(node, timeout_sec=0.05)
''')

# Subscriber: prints what it read, as JSON, once it has one of each (or gives up after 30 s).
_SUBSCRIBER = textwrap.dedent('''
    import json, time, rclpy
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
    from mmtok_msgs.msg import HandoverTrigger, LinkStatus
    rclpy.init()
    node = rclpy.create_node('typed_subscriber')
    qos = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
    got = {}
    def on_status(msg):
        got['p_blocked'] = msg.p_blocked
        got['status'] = msg.status
        got['rsu_id'] = msg.rsu_id
        got['tokens_per_layer'] = list(msg.tokens_per_layer)
        got['stamp_sec'] = msg.header.stamp.sec
    def on_trigger(msg):
        got['target_rsu'] = msg.target_rsu
        got['reason'] = msg.reason
    node.create_subscription(LinkStatus, '/rsu1/link_status', on_status, qos)
    node.create_subscription(HandoverTrigger, '/rsu1/handover', on_trigger, qos)
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline and not {'p_blocked', 'target_rsu'} <= got.keys():
        rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps(got), flush=True)
''')


def _child_env() -> dict[str, str]:
    """The environment a console script would start with: DDS local, private domain, and no
    library path or bootstrap marker inherited from this (already bootstrapped) process."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('LD_LIBRARY_PATH', '_ROS_WHEELS_BOOTSTRAP_COMPLETE')}
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['ROS_DOMAIN_ID'] = os.environ['ROS_DOMAIN_ID']   # the session's private domain
    return env


def test_separate_processes_read_typed_fields(tmp_path):
    env = _child_env()
    publisher = subprocess.Popen([sys.executable, '-c', _PUBLISHER], env=env, cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert publisher.stdout.readline().strip() == 'ready', publisher.stderr.read()
        sub = subprocess.run([sys.executable, '-c', _SUBSCRIBER], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
    finally:
        publisher.kill()
        publisher.communicate(timeout=10)
    assert sub.returncode == 0, sub.stderr
    got = json.loads(sub.stdout.strip().splitlines()[-1])
    assert isinstance(got.get('p_blocked'), float), got
    assert got['p_blocked'] == 0.875
    assert got['status'] == LinkStatus.STATUS_BLOCKED and got['rsu_id'] == 'rsu1'
    assert got['tokens_per_layer'] == [10, 6] and got['stamp_sec'] == 1234
    assert isinstance(got.get('target_rsu'), str) and got['target_rsu'] == 'rsu3'
    assert got['reason'] == HandoverTrigger.REASON_PREDICTED_BLOCKAGE


def test_wheel_cmake_fix_rewrites_both_include_dirs_once(tmp_path):
    """tools/fix_ros_wheel_cmake.py (run by `make msgs`): both strings, idempotent."""
    import importlib.util
    import sysconfig
    from pathlib import Path

    import numpy
    tool = Path(__file__).resolve().parents[1] / 'tools' / 'fix_ros_wheel_cmake.py'
    spec = importlib.util.spec_from_file_location('fix_ros_wheel_cmake', tool)
    fix = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fix)
    exported = tmp_path / 'share' / 'std_msgs' / 'cmake' / 'export_x__pyExport.cmake'
    exported.parent.mkdir(parents=True)
    container = '/opt/python/cp311-cp311'
    exported.write_text(f'INTERFACE_INCLUDE_DIRECTORIES "{container}/include/python3.11;'
                        f'{container}/lib/python3.11/site-packages/numpy/_core/include"\n')
    assert fix.main([str(tmp_path)]) == 0
    text = exported.read_text()
    assert text == (f'INTERFACE_INCLUDE_DIRECTORIES "{sysconfig.get_paths()["include"]};'
                    f'{numpy.get_include()}"\n')
    assert fix.main([str(tmp_path)]) == 0 and exported.read_text() == text
