"""Three RSUs through real processes, each in its own namespace as multi_rsu.launch.py runs
them: each publishes its typed link status on its own topics, and the serving RSU hands over
to the right neighbour, by the reactive floor while its model says clear."""
from __future__ import annotations

import time

import numpy as np
import pytest

from ros_helpers import NodeProcess, cloud_msg, image_msg, rssi_msg, tiny_model, wait_until

IDS = ('rsu1', 'rsu2', 'rsu3')
P_NS = 300_000_000
# measured own-link RSSI: rsu1 (serving) fades below S_th, rsu2 is blocked too, rsu3 is clear
RSSI_DBM = {'rsu1': -40.0, 'rsu2': -60.0, 'rsu3': -42.0}
FADE_AT = 6      # frame from which rsu1's own link is measured at -55 dBm


def neighbour_of(k: int) -> str:
    return IDS[k + 1] if k + 1 < len(IDS) else IDS[k - 1]


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp('model') / 'tiny.pt')


class Peer:
    """Publishes every RSU's sensors and records every RSU's outputs, in this process."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        from mmtok_msgs.msg import HandoverTrigger, LinkStatus
        from mmtok_ros.ros.qos import handover_qos, status_qos
        from mmtok_ros.ros.node_lifetime import init_rclpy
        from sensor_msgs.msg import Image, PointCloud2, Temperature
        self.context = Context()
        init_rclpy([], context=self.context)
        self.node = rclpy.create_node('multi_rsu_peer', context=self.context)
        self.pub = {}
        for rsu in IDS:
            self.pub[f'/{rsu}/camera/image_raw'] = self.node.create_publisher(
                Image, f'/{rsu}/camera/image_raw', 10)
            self.pub[f'/{rsu}/lidar/points'] = self.node.create_publisher(
                PointCloud2, f'/{rsu}/lidar/points', 10)
            self.pub[f'/rssi/{rsu}'] = self.node.create_publisher(Temperature, f'/rssi/{rsu}', 10)
        self.status = {rsu: [] for rsu in IDS}
        self.handover = {rsu: [] for rsu in IDS}
        for rsu in IDS:
            self.node.create_subscription(LinkStatus, f'/{rsu}/mmtok/link_status',
                                          self.status[rsu].append, status_qos())
            self.node.create_subscription(HandoverTrigger, f'/{rsu}/mmtok/handover',
                                          self.handover[rsu].append, handover_qos(depth=10))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def matched(self) -> bool:
        self.spin(0.05)
        return all(p.get_subscription_count() >= 1 for p in self.pub.values())

    def frame(self, k: int, base_ns: int) -> None:
        stamp = base_ns + k * P_NS
        for rsu in IDS:
            self.pub[f'/{rsu}/camera/image_raw'].publish(image_msg(stamp + 3_000_000))
            self.pub[f'/{rsu}/lidar/points'].publish(cloud_msg(stamp - 2_000_000))
            dbm = -55.0 if rsu == 'rsu1' and k >= FADE_AT else RSSI_DBM[rsu]
            self.pub[f'/rssi/{rsu}'].publish(rssi_msg(stamp + 1_000_000, dbm))
        self.spin(0.15)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def test_three_rsus_in_namespaces_hand_over_to_the_right_neighbour(model):
    nodes = []
    for k, rsu in enumerate(IDS):
        neighbour = neighbour_of(k)
        nodes.append(NodeProcess(
            'rsu_node', f'model_path:={model}', 'device:=cpu', 'warmup:=false',
            'torch_threads:=1', f'rsu_id:={rsu}', f'target_rsu:={neighbour}',
            f'neighbours:={",".join(i for i in IDS if i != rsu)}',
            'expected_image_width:=64', 'expected_image_height:=48',
            f'rssi_topics:=[/rssi/{rsu},/rssi/{neighbour}]',
            'hysteresis.p_on:=1.0',              # the model alone never hands over
            ros_args=('-r', f'__ns:=/{rsu}')))
    peer = Peer()
    base_ns = (time.time_ns() // 10**9) * 10**9
    try:
        for node in nodes:
            assert node.wait_for('ready:', 90), node.output
        assert wait_until(peer.matched, 30), 'sensor subscriptions never matched'
        assert wait_until(lambda: (peer.spin(0.05) or True) and all(
            peer.node.count_publishers(f'/{r}/mmtok/link_status') for r in IDS), 30)
        for k in range(FADE_AT + 4):
            peer.frame(k, base_ns)
        assert wait_until(lambda: (peer.spin(0.05) or True) and
                          len(peer.handover['rsu1']) >= 1, 20), nodes[0].output
        peer.spin(0.5)
    finally:
        peer.close()
        for node in nodes:
            node.interrupt()
        results = [node.finish(30) for node in nodes]
    for rc, out in results:
        assert rc == 0 and 'Traceback' not in out, out
    # each RSU's typed status on its own namespaced topic, for its own link
    for rsu in IDS:
        assert peer.status[rsu], f'no link status from {rsu}'
        assert {m.rsu_id for m in peer.status[rsu]} == {rsu}
    assert any(np.isclose(m.rssi_dbm, RSSI_DBM['rsu3']) for m in peer.status['rsu3'])
    # rsu1's own link faded while its model said clear: the floor handed over to rsu3, the
    # neighbour whose link is clear (rsu2 is measured below S_th), not to its target_rsu
    trigger = peer.handover['rsu1'][0]
    assert trigger.source_rsu == 'rsu1' and trigger.target_rsu == 'rsu3'
    assert trigger.reason == trigger.REASON_MEASURED_BELOW_THRESHOLD
    assert trigger.reason_text == 'measured_below_threshold'
    assert trigger.p_blocked < 1.0 and np.isclose(trigger.serving_rssi_dbm, -55.0)
    assert np.isclose(trigger.target_rssi_dbm, RSSI_DBM['rsu3'])
    stamp_ns = trigger.header.stamp.sec * 10**9 + trigger.header.stamp.nanosec
    # stamped with the newest frame of the first window whose own link was below S_th
    assert base_ns + FADE_AT * P_NS < stamp_ns < base_ns + (FADE_AT + 1) * P_NS
    # the others' own links never faded: they hand nothing over
    assert peer.handover['rsu3'] == []


def test_a_third_rssi_topic_is_refused_at_start_up_with_one_line(model):
    rc, out = NodeProcess('rsu_node', f'model_path:={model}', 'device:=cpu', 'warmup:=false',
                          'rssi_topics:=[/rssi/rsu1,/rssi/rsu2,/rssi/rsu3]').finish(60)
    assert rc == 1 and 'Traceback' not in out, out
    fatal = [line for line in out.splitlines() if '[FATAL]' in line]
    assert len(fatal) == 1 and '/rssi/rsu3' in fatal[0] and 'rssi_dim=2' in fatal[0], out
