"""A small reader for the PLY point clouds of DeepSense 6G's LiDAR (``unit1_lidar_*.ply``).

Written here rather than taken from a library because no PLY reader is in requirements.txt and
DeepSense's files use only the simple part of the format: one ``vertex`` element of scalar
properties, in ``ascii`` or ``binary_little_endian`` (big endian is read too). Other elements
after the vertices (faces) are ignored; list properties on vertices are refused.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import BeamDataNotFoundError, PlyError

_TYPES = {'char': 'i1', 'int8': 'i1', 'uchar': 'u1', 'uint8': 'u1', 'short': 'i2',
          'int16': 'i2', 'ushort': 'u2', 'uint16': 'u2', 'int': 'i4', 'int32': 'i4',
          'uint': 'u4', 'uint32': 'u4', 'float': 'f4', 'float32': 'f4', 'double': 'f8',
          'float64': 'f8'}
_INTENSITY = ('intensity', 'reflectivity', 'scalar_intensity', 'scalar_reflectivity')


def _header(path: Path, blob: bytes) -> tuple[str, int, list[tuple[str, str]], int]:
    """(format, vertex count, [(name, numpy type)], offset of the body)."""
    end = blob.find(b'end_header')
    if not blob.startswith(b'ply') or end < 0:
        raise PlyError(f'{path}: not a PLY file (no "ply" magic or no "end_header")')
    body = blob.index(b'\n', end) + 1
    fmt, count, props, element = None, None, [], None
    for raw in blob[:end].decode('ascii', 'replace').splitlines()[1:]:
        words = raw.split()
        if not words or words[0] in ('comment', 'obj_info'):
            continue
        if words[0] == 'format':
            fmt = words[1]
        elif words[0] == 'element':
            element = words[1]
            if element == 'vertex':
                count = int(words[2])
            elif count is None:
                raise PlyError(f'{path}: element {element!r} before the vertices is not supported')
        elif words[0] == 'property' and element == 'vertex':
            if words[1] == 'list':
                raise PlyError(f'{path}: list property {words[-1]!r} on vertices is not supported')
            if words[1] not in _TYPES:
                raise PlyError(f'{path}: unknown property type {words[1]!r}')
            props.append((words[2], _TYPES[words[1]]))
    if fmt not in ('ascii', 'binary_little_endian', 'binary_big_endian'):
        raise PlyError(f'{path}: unsupported PLY format {fmt!r}')
    if count is None:
        raise PlyError(f'{path}: no "element vertex" in the header')
    return fmt, count, props, body


def read_ply(path: str | Path) -> np.ndarray:
    """(P, 4) float32 [x, y, z, intensity] (intensity 0 where the file has none)."""
    path = Path(path)
    if not path.is_file():
        raise BeamDataNotFoundError(f'LiDAR file not found: {path}')
    blob = path.read_bytes()
    fmt, count, props, body = _header(path, blob)
    names = [n for n, _ in props]
    missing = [c for c in 'xyz' if c not in names]
    if missing:
        raise PlyError(f'{path}: vertex properties {names} lack {missing}')
    if fmt == 'ascii':
        lines = blob[body:].decode('ascii', 'replace').split('\n')
        rows = [ln.split() for ln in lines[:count]]
        if len(rows) < count or any(len(r) < len(props) for r in rows):
            raise PlyError(f'{path}: expected {count} vertex lines of {len(props)} values')
        table = np.array([r[:len(props)] for r in rows], dtype=np.float64).reshape(count, -1)
        column = {n: table[:, i] for i, n in enumerate(names)}
    else:
        order = '<' if fmt == 'binary_little_endian' else '>'
        dtype = np.dtype([(n, order + t) for n, t in props])
        if len(blob) - body < count * dtype.itemsize:
            raise PlyError(f'{path}: {count} vertices need {count * dtype.itemsize} bytes, '
                           f'the file has {len(blob) - body} after the header')
        rec = np.frombuffer(blob, dtype=dtype, count=count, offset=body)
        column = {n: rec[n].astype(np.float64) for n in names}
    inten = next((column[n] for n in _INTENSITY if n in column), np.zeros(count))
    return np.column_stack([column['x'], column['y'], column['z'], inten]).astype(np.float32)
