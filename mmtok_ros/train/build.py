"""Bags -> ``WindowDataset``: the same decode, synchronize and window code as the live node."""
from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.bag import read_bag_messages
from ..data.stream import StreamConfig, iter_windows_from_messages
from ..errors import InputFileNotFoundError
from ..model import ModelConfig
from .dataset import WindowDataset

_log = logging.getLogger(__name__)

# The RSU node's defaults (one definition): raw messages go through the node's decode policy.
STREAM_CONFIG = StreamConfig()


def scenario_dirs(data_dir: str | Path) -> list[Path]:
    """Every rosbag2 directory (one with ``metadata.yaml``) directly under ``data_dir``."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputFileNotFoundError(f'data directory not found: {data_dir}')
    bags = sorted(p for p in data_dir.iterdir() if (p / 'metadata.yaml').is_file())
    if not bags:
        raise InputFileNotFoundError(f'no rosbag2 bags (directories with metadata.yaml) in {data_dir}; '
                                'create some with `mmtok simulate --out DIR`')
    return bags


def windows_of_bag(bag: Path, cfg: ModelConfig, group: int, stats: Counter) -> WindowDataset | None:
    """All labelled windows of one bag, frames stored once."""
    frame_row: dict[int, int] = {}
    frames: dict[str, list[np.ndarray]] = {m: [] for m in cfg.modalities}
    present, window_rows, labels, newest = [], [], [], []
    bag_stats: dict[str, int] = {}
    counters: Counter = Counter()
    for window, label in iter_windows_from_messages(
            read_bag_messages(bag, counters=counters, decode=False), cfg, raw=True,
            config=STREAM_CONFIG, stats=bag_stats):
        rows = []
        for t, stamp in enumerate(window.stamps_ns.tolist()):
            if stamp not in frame_row:
                frame_row[stamp] = len(present)
                for m in cfg.modalities:
                    frames[m].append(window.arrays[m][t])
                present.append(window.arrays['present'][t])
            rows.append(frame_row[stamp])
        window_rows.append(rows)
        labels.append(label)
        newest.append(window.newest_stamp_ns)
    stats.update(bag_stats)
    stats.update({f'bag/{k}': v for k, v in counters.items()})
    if not labels:
        _log.warning('bag %s gave no labelled windows', bag)
        return None
    return WindowDataset(
        tuple(cfg.modalities), {m: np.stack(v).astype(np.float32) for m, v in frames.items()},
        np.stack(present).astype(bool), np.array(window_rows, dtype=np.int64),
        np.array(labels, dtype=np.float32), np.full(len(labels), group, dtype=np.int64),
        np.array(newest, dtype=np.int64))


def _cache_key(bags: list[Path], cfg: ModelConfig) -> str:
    inputs = {k: v for k, v in cfg.to_dict().items()
              if k in ('modalities', 'n_frames', 'image_hw', 'bev_hw', 'bev_range_m',
                       'bev_ground_z_m', 'bev_max_z_m', 'rssi_dim')}
    stamp = [(b.name, (b / 'metadata.yaml').stat().st_mtime_ns) for b in bags]
    blob = json.dumps([inputs, stamp, STREAM_CONFIG.to_dict()], sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def dataset_from_bags(data_dir: str | Path, cfg: ModelConfig, *, cache: bool = True,
                      progress: bool = True) -> tuple[WindowDataset, list[str]]:
    """Windows of every bag in ``data_dir`` (group i = i-th bag); returns (data, bag names).

    The result is cached in ``data_dir/.cache`` keyed by the input shapes and the bags.
    """
    bags = scenario_dirs(data_dir)
    names = [b.name for b in bags]
    path = Path(data_dir) / '.cache' / f'windows-{_cache_key(bags, cfg)}.npz'
    if cache and path.is_file():
        return WindowDataset.load(path), names
    parts, stats = [], Counter()
    for group, bag in enumerate(tqdm(bags, desc='windows from bags', disable=not progress)):
        part = windows_of_bag(bag, cfg, group, stats)
        if part is not None:
            parts.append(part)
    data = WindowDataset.concat(parts)
    drops = {k: v for k, v in sorted(stats.items()) if v and not k.endswith('emitted')}
    _log.info('built %d windows from %d bags; counters %s', len(data), len(bags), drops)
    if cache:
        data.save(path)
    return data, names
