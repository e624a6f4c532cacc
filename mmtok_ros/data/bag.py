"""rosbag2 directories -> decoded (topic, stamp, item) messages, read directly with rosbags.

Reading the bag directly (not ``ros2 bag play``, which drops and reorders under load) makes
offline evaluation deterministic. Messages are decoded with the live node's policy
(``decode_input``); what it rejects is counted and skipped.
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Sequence

from .decode import decode_input
from .errors import BagReadError
from .topics import DEFAULT_TOPICS, MSG_TYPES

_log = logging.getLogger(__name__)


def read_bag_messages(bag_dir: str | Path, topics: Sequence[str] | None = None, *,
                      counters: Counter[str] | None = None, decode: bool = True,
                      ) -> Iterator[tuple[str, int, Any]]:
    """(topic, header stamp_ns, decoded item) from a rosbag2 directory, in log-time order.

    Malformed messages are skipped, counted in ``counters['malformed']`` and logged once per
    topic; a missing or corrupt bag raises ``BagReadError``. ``decode=False`` yields
    (topic, log time ns, message) instead, for ``WindowStream.accept`` to decode and count
    exactly as the live node does.
    """
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    path = Path(bag_dir)
    wanted = list(DEFAULT_TOPICS.values()) if topics is None else list(topics)
    counters = Counter() if counters is None else counters
    if not path.exists():
        raise BagReadError(f'bag {path} does not exist; expected a rosbag2 directory')
    try:
        reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_KILTED))
        reader.open()
    except Exception as err:  # rosbags raises several types for unreadable metadata/storage
        raise BagReadError(f'cannot open bag {path} (corrupt or not a rosbag2 directory): '
                           f'{err}') from err
    try:
        kinds = {v: k for k, v in MSG_TYPES.items()}
        connections = [c for c in reader.connections if c.topic in wanted]
        for c in connections:
            if c.msgtype not in kinds:
                raise BagReadError(f'bag {path}: topic {c.topic} has type {c.msgtype}; '
                                   f'expected one of {sorted(kinds)}')
        absent = sorted(set(wanted) - {c.topic for c in connections})
        if absent:
            _log.warning('bag %s has no messages on %s', path, ', '.join(absent))
        messages = reader.messages(connections=connections)
        while True:
            try:
                conn, log_ns, raw = next(messages)
            except StopIteration:
                return
            except Exception as err:
                raise BagReadError(f'bag {path} is corrupt: {err}') from err
            try:
                msg = reader.deserialize(raw, conn.msgtype)
                if not decode:
                    counters['read'] += 1
                    yield conn.topic, log_ns, msg
                    continue
                stamp, item = decode_input(kinds[conn.msgtype], msg)
            except Exception as err:  # DataError or a deserializer error: skip, never stop
                counters['malformed'] += 1
                counters[f'malformed{conn.topic}'] += 1
                if counters[f'malformed{conn.topic}'] == 1:
                    _log.warning('bag %s: skipping malformed message on %s: %s (further ones '
                                 'on this topic are only counted)', path, conn.topic, err)
                continue
            counters['read'] += 1
            yield conn.topic, stamp, item
    finally:
        reader.close()


__all__ = ['read_bag_messages']
