"""An MCAP file read record by record from its start, up to where it breaks.

rosbags opens an MCAP file through the summary and footer at its end. A recording cut short
(the recorder killed, the disk full, a copy that stopped) has neither, and rosbags refuses the
whole file although every record before the cut is intact. ``McapScan`` reads those records in
file order (chunks decompressed with rosbags' own ``decompress``) and raises ``ScanBreak`` with
the byte offset and the number of messages read where the data ends or stops making sense.
``bag_replay`` plays a bag this way when rosbags cannot open it for want of its end. ROS-free.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

MAGIC = b'\x89MCAP0\r\n'
OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 0x02, 0x03, 0x04, 0x05, 0x06
OP_DATA_END = 0x0F


class ScanBreak(Exception):
    """The file breaks at ``offset`` (bytes from its start) after ``messages`` messages."""

    def __init__(self, offset: int, messages: int, reason: str) -> None:
        super().__init__(f'{reason} at byte offset {offset} (after message {messages})')
        self.offset, self.messages, self.reason = offset, messages, reason


@dataclass
class ScanConnection:
    """What bag_replay needs of a channel (the attributes of a rosbags ``Connection``)."""

    id: int
    topic: str
    msgtype: str
    ext: Any             # .offered_qos_profiles: rosbags Qos list
    msgcount: int = 0    # unknown before the end: latched topics get depth 1


class _Ext:
    def __init__(self, offered_qos_profiles: list) -> None:
        self.offered_qos_profiles = offered_qos_profiles


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from('<I', buf, pos)
    if pos + 4 + n > len(buf):
        raise ValueError('string runs past its record')
    return bytes(buf[pos + 4:pos + 4 + n]).decode(), pos + 4 + n


def _file_records(f: Any) -> Iterator[tuple[int, int, bytes]]:
    """(op, offset, body) of the records of an open MCAP file, read one at a time."""
    while True:
        at = f.tell()
        head = f.read(9)
        if not head:
            return
        if len(head) < 9:
            raise ScanBreak(at, -1, 'record header cut off')
        op, size = head[0], struct.unpack_from('<Q', head, 1)[0]
        body = f.read(min(size, 1 << 34))
        if len(body) != size:
            raise ScanBreak(at, -1, f'record (op 0x{op:02x}) of {size} bytes cut off after '
                            f'{len(body)}')
        yield op, at, body


def _buffer_records(buf: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(op, offset in ``buf``, body) of the records of a decompressed chunk."""
    pos = 0
    while pos < len(buf):
        if len(buf) - pos < 9:
            raise ScanBreak(pos, -1, 'record header cut off')
        op, size = buf[pos], struct.unpack_from('<Q', buf, pos + 1)[0]
        if pos + 9 + size > len(buf):
            raise ScanBreak(pos, -1, f'record (op 0x{op:02x}) of {size} bytes runs past its '
                            'chunk')
        yield op, pos, buf[pos + 9:pos + 9 + size]
        pos += 9 + size


class McapScan:
    """``messages()``: (connection, log time ns, CDR bytes) in file order (see module doc)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.schemas: dict[int, str] = {}
        self.connections: dict[int, ScanConnection] = {}
        self.read = 0          # messages read so far
        self.complete = False  # the data section ended properly (DataEnd or Footer)

    def messages(self) -> Iterator[tuple[ScanConnection, int, bytes]]:
        with self.path.open('rb') as f:
            if f.read(8) != MAGIC:
                raise ScanBreak(0, 0, 'not an MCAP file (bad magic)')
            yield from self._records(_file_records(f), 0)

    def _records(self, records: Iterator[tuple[int, int, bytes]], base: int) -> Iterator[Any]:
        """Handle (op, offset, body) ``records``; ``base``: offset of their container."""
        while True:
            try:
                op, at, body = next(records)
            except StopIteration:
                return
            except ScanBreak as err:    # offsets of the reader are its container's
                raise ScanBreak(base + err.offset, self.read, err.reason) from None
            try:
                yield from self._record(op, body, base + at + 9)
            except ScanBreak:
                raise
            except Exception as err:    # a length or an id that makes no sense; a bad chunk
                raise ScanBreak(base + at, self.read, f'bad record (op 0x{op:02x}): {err}') \
                    from None
            if op in (OP_DATA_END, OP_FOOTER):
                self.complete = True
                return

    def _record(self, op: int, body: bytes, at: int) -> Iterator[Any]:
        if op == OP_MESSAGE:
            channel, _, log_ns, _ = struct.unpack_from('<HIQQ', body, 0)
            self.read += 1
            conn = self.connections[channel]
            conn.msgcount += 1
            yield conn, log_ns, bytes(body[22:])
        elif op == OP_SCHEMA:
            (sid,) = struct.unpack_from('<H', body, 0)
            self.schemas[sid], _ = _string(body, 2)
        elif op == OP_CHANNEL:
            from rosbags.rosbag2.storage_mcap import get_qos
            cid, sid = struct.unpack_from('<HH', body, 0)
            topic, pos = _string(body, 4)
            _, pos = _string(body, pos)                       # message encoding
            (n,) = struct.unpack_from('<I', body, pos)
            qos = get_qos(bytes(body[pos + 4:pos + 4 + n]))
            self.connections[cid] = ScanConnection(cid, topic, self.schemas[sid], _Ext(qos))
        elif op == OP_CHUNK:
            from rosbags.rosbag2.storage_mcap import decompress
            _, _, size, crc = struct.unpack_from('<QQQI', body, 0)
            compression, pos = _string(body, 28)
            (n,) = struct.unpack_from('<Q', body, pos)
            if pos + 8 + n > len(body):
                raise ValueError('chunk data runs past its record')
            raw = decompress(bytes(body[pos + 8:pos + 8 + n]), compression, size, crc)
            try:
                yield from self._records(_buffer_records(raw), at + pos + 8)
            except ScanBreak as err:      # offsets inside a compressed chunk: the chunk's
                if compression:
                    raise ScanBreak(at, err.messages, f'in the {compression} chunk at byte '
                                    f'offset {at}: {err.reason}') from None
                raise


class ScannedBag:
    """A damaged MCAP file as bag_replay reads a bag: ``connections`` and ``messages()``.

    One pass at opening finds the channels, counts the messages and where the file breaks
    (``broken``: a ``ScanBreak``, or None when its data section is whole); ``messages``
    reads the same records again, for playback, and stops before the break.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        first = McapScan(self.path)
        self.broken: ScanBreak | None = None
        try:
            for _ in first.messages():
                pass
        except ScanBreak as err:
            self.broken = err
        if self.broken is None and not first.complete:
            self.broken = ScanBreak(self.path.stat().st_size, first.read, 'data ends')
        self.connections = list(first.connections.values())
        self.total = first.read

    def messages(self, connections: list) -> Iterator[tuple[ScanConnection, int, bytes]]:
        wanted = {c.id: c for c in connections}
        try:
            for conn, log_ns, raw in McapScan(self.path).messages():
                if conn.id in wanted:
                    yield wanted[conn.id], log_ns, raw
        except ScanBreak:
            return            # found at opening: ``broken``

    def close(self) -> None:
        pass


__all__ = ['McapScan', 'ScanBreak', 'ScanConnection', 'ScannedBag']
