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
FADE_AT = 6      # earliest frame from which rsu1's own link is measured at -55 dBm


def neighbour_of(k: int) -> str:
    return IDS[k + 1] if k + 1 < len(IDS) else IDS[k - 1]


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp('model') / 'tiny.pt')


class Peer:
    """Publishes every RSU's sensors and records every RSU's outputs (and /diagnostics), in
    this process."""

    def __init__(self, ids: tuple[str, ...] = IDS) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        from diagnostic_msgs.msg import DiagnosticArray
        from mmtok_msgs.msg import HandoverTrigger, LinkStatus
        from mmtok_ros.ros.qos import handover_qos, status_qos
        from mmtok_ros.ros.node_lifetime import init_rclpy
        from sensor_msgs.msg import Image, PointCloud2, Temperature
        self.context = Context()
        init_rclpy([], context=self.context)
        self.node = rclpy.create_node('multi_rsu_peer', context=self.context)
        self.ids = ids
        self.pub = {}
        for rsu in ids:
            self.pub[f'/{rsu}/camera/image_raw'] = self.node.create_publisher(
                Image, f'/{rsu}/camera/image_raw', 10)
            self.pub[f'/{rsu}/lidar/points'] = self.node.create_publisher(
                PointCloud2, f'/{rsu}/lidar/points', 10)
            self.pub[f'/rssi/{rsu}'] = self.node.create_publisher(Temperature, f'/rssi/{rsu}', 10)
        self.status = {rsu: [] for rsu in ids}
        self.handover = {rsu: [] for rsu in ids}
        self.diagnostics = {rsu: [] for rsu in ids}     # by hardware_id (the RSU id)
        for rsu in ids:
            self.node.create_subscription(LinkStatus, f'/{rsu}/mmtok/link_status',
                                          self.status[rsu].append, status_qos())
            self.node.create_subscription(HandoverTrigger, f'/{rsu}/mmtok/handover',
                                          self.handover[rsu].append, handover_qos(depth=10))
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics,
                                      status_qos())
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.hardware_id in self.diagnostics:
                self.diagnostics[status.hardware_id].append(status)

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def matched(self) -> bool:
        self.spin(0.05)
        return all(p.get_subscription_count() >= 1 for p in self.pub.values())

    def frame(self, k: int, base_ns: int, dbm: dict[str, float]) -> None:
        """Frame k of every RSU; ``dbm``: each RSU's own-link RSSI."""
        stamp = base_ns + k * P_NS
        for rsu in self.ids:
            self.pub[f'/{rsu}/camera/image_raw'].publish(image_msg(stamp + 3_000_000))
            self.pub[f'/{rsu}/lidar/points'].publish(cloud_msg(stamp - 2_000_000))
            self.pub[f'/rssi/{rsu}'].publish(rssi_msg(stamp + 1_000_000, dbm[rsu]))
        self.spin(0.15)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def rsu_process(model, rsu: str, neighbour: str, neighbours: tuple[str, ...],
                *params: str) -> NodeProcess:
    """``rsu_node`` for ``rsu`` in namespace ``/rsu`` (as multi_rsu.launch.py runs it)."""
    return NodeProcess(
        'rsu_node', f'model_path:={model}', 'device:=cpu', 'warmup:=false',
        'torch_threads:=1', f'rsu_id:={rsu}', f'target_rsu:={neighbour}',
        f'neighbours:={",".join(neighbours)}',
        'expected_image_width:=64', 'expected_image_height:=48',
        f'rssi_topics:=[/rssi/{rsu},/rssi/{neighbour}]',
        'hysteresis.p_on:=1.0',              # the model alone never hands over
        *params, ros_args=('-r', f'__ns:=/{rsu}'))


def rsu1_diagnostics(peer: Peer, **expected: str):
    """rsu1's latest /diagnostics status with these key values, or None."""
    peer.spin(0.02)
    for status in reversed(peer.diagnostics['rsu1']):
        values = {kv.key: kv.value for kv in status.values}
        if all(values.get(k) == v for k, v in expected.items()):
            return status
    return None


def test_three_rsus_in_namespaces_hand_over_to_the_right_neighbour(model):
    nodes = [rsu_process(model, rsu, neighbour_of(k), tuple(i for i in IDS if i != rsu),
                         'diagnostics_period_s:=0.2')
             for k, rsu in enumerate(IDS)]
    peer = Peer()
    base_ns = (time.time_ns() // 10**9) * 10**9
    fade_at = FADE_AT
    try:
        for node in nodes:
            assert node.wait_for('ready:', 90), node.output
        assert wait_until(peer.matched, 30), 'sensor subscriptions never matched'
        assert wait_until(lambda: (peer.spin(0.05) or True) and all(
            peer.node.count_publishers(f'/{r}/mmtok/link_status') for r in IDS), 30)
        # rsu1's link clear until rsu1 hears both neighbours: its subscriptions to their
        # status may match after ours did (a loaded host)
        for k in range(60):
            peer.frame(k, base_ns, RSSI_DBM)
            if k + 1 >= FADE_AT and rsu1_diagnostics(peer, **{'neighbours/live': 'rsu2,rsu3'}):
                break
        fade_at = k + 1
        faded = {**RSSI_DBM, 'rsu1': -55.0}
        for k in range(fade_at, fade_at + 4):
            peer.frame(k, base_ns, faded)
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
    assert base_ns + fade_at * P_NS < stamp_ns < base_ns + (fade_at + 1) * P_NS
    # the others' own links never faded: they hand nothing over
    assert peer.handover['rsu3'] == []


def test_a_third_rssi_topic_is_refused_at_start_up_with_one_line(model):
    rc, out = NodeProcess('rsu_node', f'model_path:={model}', 'device:=cpu', 'warmup:=false',
                          'rssi_topics:=[/rssi/rsu1,/rssi/rsu2,/rssi/rsu3]').finish(60)
    assert rc == 1 and 'Traceback' not in out, out
    fatal = [line for line in out.splitlines() if '[FATAL]' in line]
    assert len(fatal) == 1 and '/rssi/rsu3' in fatal[0] and 'rssi_dim=2' in fatal[0], out


# ---------------------------------------------------------------- a neighbour killed
def stamp_of(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def test_a_killed_neighbour_gets_no_trigger_and_is_eligible_again_after_a_restart(model):
    """rsu1 hears rsu2 and rsu3 (never started); rsu2 is SIGKILLed mid-run, then rsu1's own
    link fades below S_th: no trigger to a dead RSU, ONE WARN, /diagnostics says so; rsu2
    restarted: its first link status makes it the floor's target within two frame periods."""
    ids = ('rsu1', 'rsu2')
    diag = 'diagnostics_period_s:=0.2'
    home = rsu_process(model, 'rsu1', 'rsu2', ('rsu2', 'rsu3'), diag)
    neighbour = rsu_process(model, 'rsu2', 'rsu1', ('rsu1',), diag)
    restarted = None
    clear, faded = {'rsu1': -40.0, 'rsu2': -42.0}, {'rsu1': -55.0, 'rsu2': -42.0}
    peer = Peer(ids)
    base_ns = (time.time_ns() // 10**9) * 10**9

    def published(rsu: str, k: int) -> bool:
        peer.spin(0.02)
        return any(0 <= stamp_of(m) - (base_ns + k * P_NS) < P_NS for m in peer.status[rsu])

    try:
        for node in (home, neighbour):
            assert node.wait_for('ready:', 90), node.output
        assert wait_until(peer.matched, 30), 'sensor subscriptions never matched'
        assert wait_until(lambda: (peer.spin(0.05) or True) and all(
            peer.node.count_publishers(f'/{r}/mmtok/link_status') for r in ids), 30)
        # both alive, rsu1's link clear: rsu1 hears rsu2, nothing is handed over. rsu1's own
        # subscription to rsu2's status may match later than ours (a loaded host), so clear
        # frames go on until rsu1 reports rsu2 live
        k = 0
        for k in range(60):
            peer.frame(k, base_ns, clear)
            if k >= 6 and rsu1_diagnostics(peer, **{'neighbours/live': 'rsu2'}):
                break
        assert wait_until(lambda: published('rsu2', k) and published('rsu1', k), 20), \
            neighbour.output
        assert wait_until(lambda: rsu1_diagnostics(peer, **{'neighbours/live': 'rsu2'}), 10), \
            home.output
        # rsu2's node is killed; once its last status is stale (> 1 s of data time),
        # rsu1's own link fades below S_th: the floor wants to hand over, nobody is live
        neighbour.proc.kill()
        assert neighbour.finish(10)[0] == -9
        for k in range(k + 1, k + 4):
            peer.frame(k, base_ns, clear)
        for k in range(k + 1, k + 7):
            peer.frame(k, base_ns, faded)
        assert wait_until(lambda: published('rsu1', k), 20), home.output
        wanted = {'neighbours/live': '', 'neighbours/stale': 'rsu2,rsu3',
                  'handover/no_live_target': 'measured_below_threshold'}
        assert wait_until(lambda: rsu1_diagnostics(peer, **wanted) is not None, 10), home.output
        status = rsu1_diagnostics(peer, **wanted)
        assert status.level == status.WARN and 'no neighbour live' in status.message, status
        assert peer.handover['rsu1'] == [], [m.target_rsu for m in peer.handover['rsu1']]
        assert home.count('but no neighbour is live') == 1, home.output
        # rsu2 restarted: eligible again from its first link status
        restarted = rsu_process(model, 'rsu2', 'rsu1', ('rsu1',), diag)
        assert restarted.wait_for('ready:', 90), restarted.output
        assert wait_until(peer.matched, 30), 'the restarted rsu2 never subscribed'
        assert wait_until(lambda: (peer.spin(0.05) or True) and
                          peer.node.count_publishers('/rsu2/mmtok/link_status') >= 1, 30)
        peer.spin(1.0)          # its link status publisher matched by rsu1 and by us
        first_restart_k = k + 1
        # the killed process's subscriptions may still count as matched until DDS notices it
        # is gone, so frames go on until the new rsu2 hears them and the trigger comes
        for k in range(first_restart_k, first_restart_k + 80):
            peer.frame(k, base_ns, faded)
            if peer.handover['rsu1']:
                break
        assert wait_until(lambda: (peer.spin(0.05) or True) and peer.handover['rsu1'], 20), \
            home.output + restarted.output
        peer.spin(0.5)
    finally:
        peer.close()
        for node in (home, neighbour, restarted):
            if node is not None and node.proc.poll() is None:
                node.interrupt()
        results = {name: node.finish(30) for name, node in
                   (('rsu1', home), ('rsu2 (killed)', neighbour), ('rsu2', restarted))
                   if node is not None}
    for name, (rc, out) in results.items():
        assert 'Traceback' not in out, f'{name}: {out}'
        assert rc == (-9 if name == 'rsu2 (killed)' else 0), f'{name}: {out}'
    first_status = min(stamp_of(m) for m in peer.status['rsu2']
                       if stamp_of(m) >= base_ns + first_restart_k * P_NS)
    triggers = peer.handover['rsu1']
    assert [(m.target_rsu, m.reason_text) for m in triggers[:1]] == \
        [('rsu2', 'measured_below_threshold')]
    # never a trigger to rsu2 while it was dead; after its restart, within two frame periods
    # of its first link status
    assert stamp_of(triggers[0]) >= base_ns + first_restart_k * P_NS
    assert stamp_of(triggers[0]) <= first_status + 2 * P_NS, \
        (stamp_of(triggers[0]) - first_status) / P_NS
    rsu1_out = results['rsu1'][1]
    assert rsu1_out.count('but no neighbour is live') == 1, rsu1_out
    assert 'neighbour(s) live again: rsu2' in rsu1_out, rsu1_out
