"""The held-out windows file: what it holds (:class:`HeldoutWindows`), ``load`` (numpy
alone, so the device path needs nothing else) and ``save``. The camera input (float32 in
[0, 1] after an area resize) is stored as uint8 (round(255 x)) and compressed with lzma; the
LiDAR BEV, RSSI and ``present`` are stored exactly. The sidecar ``.json`` carries the file's
sha256, so ``load`` notices a file that is not the one described.
"""
from __future__ import annotations

import hashlib
import json
import lzma
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = 'mmtok_ros.heldout_windows/1'
DATA_DIR = Path(__file__).resolve().parents[1] / 'data'
DEFAULT_PATH = DATA_DIR / 'heldout_windows_rsu_cpu.npz'


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix('.json')


@dataclass
class HeldoutWindows:
    """Frames stored once: ``frames[m]`` (F, ...) float32, ``present`` (F, M) bool,
    ``stamps_ns`` (F,); ``window_frames`` (W, T) rows of the frames, oldest first;
    ``labels`` (W,) next-frame label, ``labels_h3`` (W,) blocked within 3 frames;
    ``groups`` (W,) scenario index; ``meta``: the sidecar."""

    modalities: tuple[str, ...]
    frames: dict[str, np.ndarray]
    present: np.ndarray
    stamps_ns: np.ndarray
    window_frames: np.ndarray
    labels: np.ndarray
    labels_h3: np.ndarray
    groups: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, rows, device='cpu') -> dict:
        """Model input (B, T, ...) per modality plus ``present`` (B, T, M), as torch tensors."""
        import torch
        idx = self.window_frames[np.asarray(rows)]
        out = {m: torch.from_numpy(np.ascontiguousarray(self.frames[m][idx])).to(device)
               for m in self.modalities}
        out['present'] = torch.from_numpy(np.ascontiguousarray(self.present[idx])).to(device)
        return out

    def window(self, row: int):
        """Window ``row`` as the node's ``data.window.Window`` (for the streaming predictors)."""
        from ...data.window import Window
        idx = self.window_frames[row]
        arrays = {m: self.frames[m][idx] for m in self.modalities}
        arrays['present'] = self.present[idx]
        stamps = self.stamps_ns[idx]
        return Window(arrays, stamps, int(stamps[-1]))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def load(path: str | Path = DEFAULT_PATH, *, check: bool = True) -> HeldoutWindows:
    """Read the windows (numpy only). ``check``: the file's sha256 must match its sidecar."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'held-out windows not found: {path} (make them with '
                                '`python -m mmtok_ros.bench.heldout`)')
    meta = {}
    side = sidecar_path(path)
    if side.is_file():
        meta = json.loads(side.read_text())
        if check and meta.get('npz_sha256') not in (None, _sha256(path)):
            raise ValueError(f'{path} does not match its sidecar {side.name} (sha256)')
    with np.load(path, allow_pickle=False) as z:
        if str(z['format']) != FORMAT:
            raise ValueError(f'{path} is not a held-out windows file ({FORMAT})')
        modalities = tuple(str(m) for m in z['modalities'])
        frames = {}
        for m in modalities:
            if f'frames_{m}_u8_lzma' in z:
                raw = lzma.decompress(z[f'frames_{m}_u8_lzma'].tobytes())
                shape = tuple(int(s) for s in z[f'frames_{m}_shape'])
                u8 = np.frombuffer(raw, dtype=np.uint8).reshape(shape)
                frames[m] = u8.astype(np.float32) / np.float32(255.0)
            else:
                frames[m] = z[f'frames_{m}'].astype(np.float32)
        return HeldoutWindows(modalities, frames, z['present'].astype(bool),
                              z['stamps_ns'].astype(np.int64),
                              z['window_frames'].astype(np.int64),
                              z['labels'].astype(np.float32), z['labels_h3'].astype(np.float32),
                              z['groups'].astype(np.int64), meta)


def save(path: str | Path, data: HeldoutWindows, *, u8_modalities=('image',)) -> Path:
    """Write ``data`` (image as lzma'd uint8) and its sidecar (``data.meta`` + counts + sha)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {'format': np.array(FORMAT), 'modalities': np.array(data.modalities),
              'present': data.present, 'stamps_ns': data.stamps_ns,
              'window_frames': data.window_frames, 'labels': data.labels,
              'labels_h3': data.labels_h3, 'groups': data.groups}
    for m, a in data.frames.items():
        if m in u8_modalities:
            u8 = np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)
            arrays[f'frames_{m}_u8_lzma'] = np.frombuffer(
                lzma.compress(u8.tobytes(), preset=9 | lzma.PRESET_EXTREME), dtype=np.uint8)
            arrays[f'frames_{m}_shape'] = np.array(u8.shape, dtype=np.int64)
        else:
            arrays[f'frames_{m}'] = a
    np.savez_compressed(path, **arrays)
    meta = {**data.meta, 'format': FORMAT, 'npz_sha256': _sha256(path),
            'npz_bytes': path.stat().st_size}
    sidecar_path(path).write_text(json.dumps(meta, indent=2) + '\n')
    return path
