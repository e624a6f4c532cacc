"""rsu_lifecycle_node in a real process, driven through its lifecycle services as a system
manager (``ros2 lifecycle set``, nav2's lifecycle manager) drives it: configure, activate,
deactivate, activate, deactivate, cleanup, shutdown; it publishes nothing while inactive."""
from __future__ import annotations

import time

import pytest

from ros_helpers import IMAGE_WH, P_NS, NodeProcess, cloud_msg, image_msg, rssi_msg, tiny_model

NS = '/lc'


class Manager:
    """A client node: lifecycle service calls, sensor publishers, a link_status subscriber."""

    def __init__(self) -> None:
        import rclpy
        from lifecycle_msgs.srv import ChangeState, GetState
        from mmtok_msgs.msg import LinkStatus
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image, PointCloud2, Temperature

        from mmtok_ros.ros.qos import status_qos
        from mmtok_ros.ros.node_lifetime import init_rclpy
        self.context = Context()
        init_rclpy([], context=self.context)
        self.node = rclpy.create_node('lifecycle_manager_test', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.change = self.node.create_client(ChangeState, f'{NS}/rsu_node/change_state')
        self.get = self.node.create_client(GetState, f'{NS}/rsu_node/get_state')
        self.statuses: list = []
        self.node.create_subscription(LinkStatus, f'{NS}/mmtok/link_status',
                                      self.statuses.append, status_qos())
        self.pub = {'image': self.node.create_publisher(Image, f'{NS}/camera/image_raw', 10),
                    'lidar': self.node.create_publisher(PointCloud2, f'{NS}/lidar/points', 10),
                    'rsu1': self.node.create_publisher(Temperature, f'{NS}/rssi/rsu1', 10),
                    'rsu2': self.node.create_publisher(Temperature, f'{NS}/rssi/rsu2', 10)}
        self.base_ns = (time.time_ns() // 1_000_000_000) * 1_000_000_000
        self.k = 0

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def spin_until(self, predicate, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not predicate():
            self.executor.spin_once(timeout_sec=0.02)
        return predicate()

    def _call(self, client, request):
        assert self.spin_until(lambda: client.service_is_ready(), 30.0), client.srv_name
        future = client.call_async(request)
        assert self.spin_until(future.done, 30.0), f'{client.srv_name}: no reply'
        return future.result()

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState
        return self._call(self.get, GetState.Request()).current_state.label

    def transition(self, label: str) -> bool:
        from lifecycle_msgs.srv import ChangeState
        request = ChangeState.Request()
        request.transition.label = label
        return self._call(self.change, request).success

    def inputs_matched(self) -> bool:
        return all(p.get_subscription_count() >= 1 for p in self.pub.values())

    def feed(self, frames: int) -> None:
        """Publish ``frames`` synchronized frames at ~15 Hz (stamps 300 ms apart)."""
        for _ in range(frames):
            stamp = self.base_ns + self.k * P_NS
            self.k += 1
            self.pub['image'].publish(image_msg(stamp + 3_000_000))
            self.pub['lidar'].publish(cloud_msg(stamp - 2_000_000))
            self.pub['rsu1'].publish(rssi_msg(stamp + 1_000_000, -40.0))
            self.pub['rsu2'].publish(rssi_msg(stamp, -45.0))
            self.spin_for(0.06)

    def feed_until(self, predicate, timeout_s: float = 30.0) -> bool:
        """Feed frames until ``predicate`` holds: the node's subscriptions may match our
        publishers later than ours matched them (a loaded host), losing the first frames."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not predicate():
            self.feed(1)
        return predicate()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture
def manager():
    m = Manager()
    yield m
    m.close()


def test_transitions_through_the_lifecycle_services(tmp_path, manager):
    m = manager
    model = tiny_model(tmp_path / 'tiny.pt')
    proc = NodeProcess('rsu_lifecycle_node', f'model_path:={model}', 'device:=cpu',
                       f'expected_image_width:={IMAGE_WH[0]}',
                       f'expected_image_height:={IMAGE_WH[1]}', 'torch_threads:=1',
                       'diagnostics_period_s:=0.2', ros_args=('-r', f'__ns:={NS}'))
    try:
        assert m.state() == 'unconfigured'
        assert 'warm-up' not in proc.output                  # nothing loaded yet
        assert m.node.count_publishers(f'{NS}/mmtok/link_status') == 0

        assert m.transition('configure') and m.state() == 'inactive'
        assert proc.wait_for('configured (inactive)', 10) and 'warm-up inference' in proc.output
        # inactive: the publisher exists, but no input is subscribed and nothing is published
        assert m.spin_until(lambda: m.node.count_publishers(f'{NS}/mmtok/link_status') == 1,
                            10)
        m.feed(8)
        m.spin_for(1.0)
        assert not m.inputs_matched() and m.statuses == []

        assert m.transition('activate') and m.state() == 'active'
        assert m.spin_until(m.inputs_matched, 30)
        assert m.feed_until(lambda: len(m.statuses) >= 2), proc.output
        assert m.statuses[0].rsu_id == 'rsu1'

        assert m.transition('deactivate') and m.state() == 'inactive'
        assert proc.wait_for('queued frame(s) dropped', 10)
        m.spin_for(0.5)
        published = len(m.statuses)
        m.feed(8)
        m.spin_for(1.0)
        assert len(m.statuses) == published                  # silent while inactive
        assert m.spin_until(lambda: not m.inputs_matched(), 10)   # unmatched once DDS tells

        assert m.transition('activate')                     # windows start afresh
        assert m.spin_until(m.inputs_matched, 30)
        assert m.feed_until(lambda: len(m.statuses) > published), proc.output

        assert m.transition('deactivate') and m.transition('cleanup')
        assert m.state() == 'unconfigured'
        assert m.spin_until(lambda: m.node.count_publishers(f'{NS}/mmtok/link_status') == 0,
                            10)
        assert not m.transition('activate')                 # not from unconfigured
        assert m.transition('configure') and m.state() == 'inactive'   # configurable again
        assert m.transition('shutdown') and m.state() == 'finalized'
    finally:
        proc.interrupt()
        status, out = proc.finish(30)
    assert status == 0, out
    assert 'Traceback' not in out, out


def test_configure_fails_cleanly_on_a_bad_model_file(tmp_path, manager):
    bad = tmp_path / 'broken.pt'
    bad.write_bytes(b'not a model')
    proc = NodeProcess('rsu_lifecycle_node', f'model_path:={bad}', 'device:=cpu',
                       ros_args=('-r', f'__ns:={NS}'))
    try:
        assert manager.state() == 'unconfigured'
        assert not manager.transition('configure')
        assert manager.state() == 'unconfigured'            # a corrected configure may follow
        assert proc.wait_for('configure failed: cannot start', 10)
    finally:
        proc.interrupt()
        status, out = proc.finish(30)
    assert status == 0 and 'Traceback' not in out, out
