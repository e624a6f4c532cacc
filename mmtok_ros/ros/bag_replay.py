"""bag_replay: play a rosbag2 bag onto its topics with the original timing, and /clock.

The bag is read with ``rosbags`` (no rosbag2_py needed); its messages are already CDR bytes,
which rclpy publishes as they are (``Publisher.publish(bytes)``), so nothing is deserialized
and re-serialized. Timing follows the bag's log times divided by ``rate``; ``/clock`` carries
bag time (every ``clock_period_ms`` while waiting, and at each message), so nodes with
``use_sim_time`` see the recording's time. Playback runs in its own thread; the executor
only serves graph and parameter events.

A damaged bag plays up to where it breaks, then ends with one ERROR line naming the bag and
the place, and exit status 1. An MCAP file cut short (no summary at its end, which rosbags
needs to open it) is read record by record from its start instead (``mcap_scan``).
"""
from __future__ import annotations

import contextlib
import importlib
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from .mcap_scan import ScanBreak, ScannedBag
from .params import BAG_REPLAY_PARAMS, declare
from .node_lifetime import StartupError, end_process, run_node

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

NODE_NAME = 'bag_replay'


def message_class(msgtype: str) -> type | None:
    """rclpy class of 'pkg/msg/Name', or None when that package is not importable here."""
    pkg, _, name = msgtype.partition('/msg/')
    try:
        return getattr(importlib.import_module(f'{pkg}.msg'), name)
    except (ImportError, AttributeError):
        return None


def latched_qos(conn: Any, reader: Any) -> QoSProfile | None:
    """Reliable transient-local QoS for a topic recorded transient local (``/tf_static``);
    None for every other topic.

    The depth is the recorded one, but at least the number of messages on the topic (up to
    1000): each static broadcaster sends its own message, and a late subscriber must get
    every one of them, not the last.
    """
    from rosbags.interfaces import QosDurability
    profiles = getattr(getattr(conn, 'ext', None), 'offered_qos_profiles', None) or []
    durable = any(q.durability == QosDurability.TRANSIENT_LOCAL for q in profiles)
    if not durable and not (conn.topic == '/tf_static' and not profiles):
        return None
    recorded = max((int(q.depth) for q in profiles), default=1)
    count = sum(c.msgcount for c in reader.connections if c.topic == conn.topic)
    return QoSProfile(depth=max(1, recorded, min(count, 1000)),
                      history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


class BagReplayNode(Node):
    """Publishes a bag's messages at their recorded pace (see module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.p = declare(self, BAG_REPLAY_PARAMS)
        p = self.p
        if not p.bag:
            raise StartupError('cannot start: parameter bag is empty; pass bag:=PATH')
        self.bag = Path(p.bag)
        if not (self.bag / 'metadata.yaml').is_file():
            raise StartupError(f'cannot start: {self.bag} is not a rosbag2 directory '
                               '(no metadata.yaml)')
        wanted = [t.strip() for t in p.topics.split(',') if t.strip()]
        self._reader = self._open()
        qos = QoSProfile(depth=p.qos_depth, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
        self.publishers_by_topic: dict[str, Any] = {}
        self.latched_topics: set[str] = set()
        self.connections = []
        for conn in self._reader.connections:
            if wanted and conn.topic not in wanted:
                continue
            cls = message_class(conn.msgtype)
            if cls is None:
                self.get_logger().warning(f'skipping {conn.topic}: type {conn.msgtype} is not '
                                          'importable here')
                continue
            if conn.topic not in self.publishers_by_topic:
                latched = latched_qos(conn, self._reader)
                if latched is not None:
                    self.latched_topics.add(conn.topic)
                self.publishers_by_topic[conn.topic] = self.create_publisher(
                    cls, conn.topic, latched or qos)
            self.connections.append(conn)
        missing = sorted(set(wanted) - set(self.publishers_by_topic))
        if missing:
            self.get_logger().warning(f'bag {self.bag} has no playable messages on '
                                      f'{", ".join(missing)}')
        if not self.connections:
            raise StartupError(f'cannot start: nothing to play in {self.bag}')
        self.clock_pub = self.create_publisher(Clock, '/clock', 10) if p.publish_clock else None
        self.published = 0
        self.loops = 0
        self.failure: str | None = None    # why playback broke: exit status 1
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, name='bag-replay', daemon=True)
        self._thread.start()

    def _open(self) -> Any:
        """rosbags' reader; a ``ScannedBag`` for an MCAP file that lacks its end."""
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore
        try:
            reader = AnyReader([self.bag], default_typestore=get_typestore(Stores.ROS2_KILTED))
            reader.open()
        except Exception as err:  # rosbags raises several types for unreadable bags
            files = sorted(self.bag.glob('*.mcap'))
            if len(files) != 1 or 'end magic' not in str(err) and 'footer' not in str(err):
                raise StartupError(f'cannot start: cannot open bag {self.bag}: {err}') from None
            try:
                reader = ScannedBag(files[0])     # cut short: read it from its start
            except (OSError, ScanBreak) as scan_err:
                raise StartupError(f'cannot start: cannot open bag {self.bag}: {err} '
                                   f'({scan_err})') from None
            if not reader.total:
                raise StartupError(f'cannot start: cannot open bag {self.bag}: {err}; read '
                                   f'from its start, {reader.broken}') from None
        return reader

    def _broken_at(self) -> str:
        """Where a ``ScannedBag`` breaks, for the playing line; '' for a whole bag."""
        broken = getattr(self._reader, 'broken', None)
        return '' if broken is None else (f' (damaged: {broken.reason} at byte offset '
                                          f'{broken.offset}; playing its first '
                                          f'{self._reader.total} messages)')

    # ------------------------------------------------------------------ playback thread
    def _wait_for_subscribers(self) -> None:
        need, timeout = self.p.wait_for_subscribers, self.p.wait_timeout_s
        if need <= 0:
            return
        deadline = time.monotonic() + timeout
        while not self._stop.is_set():
            # latched topics (/tf_static) reach late subscribers anyway: not waited on
            counts = {t: pub.get_subscription_count()
                      for t, pub in self.publishers_by_topic.items()
                      if t not in self.latched_topics}
            if all(c >= need for c in counts.values()):
                self.get_logger().info(f'{need} subscriber(s) on every topic; starting')
                return
            if time.monotonic() >= deadline:
                short = [t for t, c in counts.items() if c < need]
                self.get_logger().warning(f'waited {timeout:.1f} s for subscribers on '
                                          f'{", ".join(short)}; starting anyway')
                return
            time.sleep(0.05)

    def _messages(self) -> Iterator[tuple[str, int, bytes]]:
        for conn, log_ns, raw in self._reader.messages(connections=self.connections):
            yield conn.topic, int(log_ns), bytes(raw)
        broken = getattr(self._reader, 'broken', None)
        if broken is not None:
            self.failure = (f'bag {self.bag} is damaged: {self._reader.path.name} breaks at '
                            f'byte offset {broken.offset} after message {broken.messages} '
                            f'({broken.reason}); played the {self.published} messages before '
                            'the break')

    def _publish_clock(self, bag_ns: int) -> None:
        if self.clock_pub is not None:
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
            self.clock_pub.publish(msg)

    def _play_once(self) -> bool:
        """One pass over the bag; False when stopped."""
        rate = self.p.rate
        clock_s = self.p.clock_period_ms / 1e3
        start_wall = start_bag = None
        for topic, log_ns, raw in self._messages():
            if start_wall is None:
                start_wall, start_bag = time.monotonic(), log_ns
            due = start_wall + (log_ns - start_bag) / 1e9 / rate
            while True:
                if self._stopping():
                    return False
                now = time.monotonic()
                if now >= due:
                    break
                self._publish_clock(start_bag + int((now - start_wall) * rate * 1e9))
                time.sleep(min(clock_s, due - now))
            self._publish_clock(log_ns)
            self.publishers_by_topic[topic].publish(raw)
            self.published += 1
        return True

    def _play(self) -> None:
        try:
            self._wait_for_subscribers()
            if self.p.start_delay_s > 0:
                self._stop.wait(self.p.start_delay_s)
            self.get_logger().info(f'playing {self.bag} at {self.p.rate:g}x'
                                   f'{" (loop)" if self.p.loop else ""}{self._broken_at()}: '
                                   f'{", ".join(sorted(self.publishers_by_topic))}')
            while self._play_once():
                self.loops += 1
                if not self.p.loop or self.failure:
                    break
                self.get_logger().info(f'loop {self.loops} done; starting over (time jumps '
                                       'back)')
        except Exception as err:  # a corrupt chunk mid-bag: one line (_finish), then stop
            if self._stopping():   # a publish racing the shutdown is no playback error
                return
            total = sum(c.msgcount for c in self.connections)
            self.failure = (f'bag {self.bag} is damaged: playback broke at message '
                            f'{self.published + 1} of {total} ({type(err).__name__}: {err}); '
                            f'played the {self.published} messages before the break')
        finally:
            if not self._stopping():   # Ctrl-C or shutdown: no tail to wait for, no error
                self._finish()
            self.done.set()
            if self.p.exit_when_done and not self._stop.is_set():
                self.context.try_shutdown()

    def _finish(self) -> None:
        """Reliable readers get the tail; then one line: what was played, or the break."""
        for pub in self.publishers_by_topic.values():
            with contextlib.suppress(Exception):    # best effort: a shutdown may race it
                pub.wait_for_all_acked(Duration(seconds=2))
        if self.failure:
            self.get_logger().error(self.failure)
        else:
            self.get_logger().info(f'played {self.published} messages from {self.bag}')

    def _stopping(self) -> bool:
        """Asked to stop, or the context is gone (SIGTERM, an external shutdown)."""
        return self._stop.is_set() or not self.context.ok()

    def destroy_node(self) -> None:
        thread = getattr(self, '_thread', None)
        if thread is not None:
            self._stop.set()
            if thread is not threading.current_thread():
                thread.join(timeout=5.0)
        reader, self._reader = getattr(self, '_reader', None), None
        if reader is not None:
            reader.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Exit status 1 also when playback broke on a damaged bag."""
    made: list[BagReplayNode] = []

    def build() -> BagReplayNode:
        made.append(BagReplayNode())
        return made[-1]

    status = run_node(build, args, logger_name=NODE_NAME, end=False)
    if status == 0 and made and made[0].failure:
        status = 1
    end_process(status)


if __name__ == '__main__':
    raise SystemExit(main())
