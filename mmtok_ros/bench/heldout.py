"""Held-out windows that travel with the device check (``bench/device_check.py``).

A GPU machine lent for a few minutes has no ROS, no rosbags and no time to simulate, so the
accuracy columns of the device check read preprocessed windows from a small file committed
beside this module: ``data/heldout_windows_rsu_cpu.npz`` and its sidecar ``.json`` (how it
was made, what it holds, and what the uint8 storage of the camera costs, measured here).

The windows are those of the shipped ``rsu-cpu`` models' held-out scenarios (``mmtok simulate
--seed 0``, scenarios 40-49: one unseen instance of every testbed kind; models/*.md), made
with the same decode, synchronizer and window code as the node (``train.build``), a run of
``per_scenario`` consecutive windows from each (around its first blockage onset, or the
middle of a clear scenario), so consecutive windows share frames and each frame is stored
once. The camera input (float32 in [0, 1] after an area resize) is stored as uint8
(round(255 x)) and compressed with lzma; the LiDAR BEV, RSSI and ``present`` are stored
exactly. Labels: the next-frame label (Eq. 8, the model cards' accuracy) and the 3-frame one
the shipped files were trained on, both computed on the whole scenario before the cut.

``load`` needs numpy alone (the device path); ``build`` needs the simulator and rosbags
(``python -m mmtok_ros.bench.heldout``, on a machine with the project installed).
"""
from __future__ import annotations

import hashlib
import json
import lzma
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = 'mmtok_ros.heldout_windows/1'
DATA_DIR = Path(__file__).resolve().parent / 'data'
DEFAULT_PATH = DATA_DIR / 'heldout_windows_rsu_cpu.npz'
SCENARIOS = tuple(range(40, 50))       # the shipped models' held-out scenarios (models/*.md)
SEED = 0
PER_SCENARIO = 20
BEFORE_ONSET = 12                      # windows kept before a scenario's first onset


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
        from ..data.window import Window
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


# --- building (simulator + rosbags: not on the device path) ------------------------------

def _h3(labels: np.ndarray) -> np.ndarray:
    """Blocked within the next 3 frames, on one scenario's time-ordered next-frame labels
    (cut at the scenario's end), as ``train.metrics.horizon_labels`` with H = 3."""
    out = labels.copy()
    for shift in (1, 2):
        out[:-shift] = np.maximum(out[:-shift], labels[shift:])
    return out


def _scenario_windows(bag: Path, cfg) -> dict:
    """Every labelled window of one bag with the node's stream code, frames kept once."""
    from collections import Counter

    from ..data.bag import read_bag_messages
    from ..data.stream import iter_windows_from_messages
    from ..train.build import STREAM_CONFIG
    row_of: dict[int, int] = {}
    frames = {m: [] for m in cfg.modalities}
    present, stamps, rows, labels = [], [], [], []
    for window, label in iter_windows_from_messages(
            read_bag_messages(bag, counters=Counter(), decode=False), cfg, raw=True,
            config=STREAM_CONFIG):
        r = []
        for t, stamp in enumerate(window.stamps_ns.tolist()):
            if stamp not in row_of:
                row_of[stamp] = len(stamps)
                stamps.append(stamp)
                for m in cfg.modalities:
                    frames[m].append(window.arrays[m][t])
                present.append(window.arrays['present'][t])
            r.append(row_of[stamp])
        rows.append(r)
        labels.append(label)
    labels = np.asarray(labels, np.float32)
    return {'frames': {m: np.stack(v).astype(np.float32) for m, v in frames.items()},
            'present': np.stack(present).astype(bool), 'stamps_ns': np.asarray(stamps, np.int64),
            'window_frames': np.asarray(rows, np.int64), 'labels': labels,
            'labels_h3': _h3(labels)}


def _pick(labels: np.ndarray, count: int) -> tuple[int, int, str]:
    """(start, stop, why) of the run of ``count`` windows kept from one scenario."""
    n = len(labels)
    rising = np.flatnonzero((labels[1:] == 1) & (labels[:-1] == 0)) + 1
    if len(rising):
        start, why = int(rising[0]) - BEFORE_ONSET, f'first onset at window {int(rising[0])}'
    elif labels.any():
        start, why = int(np.flatnonzero(labels)[0]) - BEFORE_ONSET, 'blocked from the start'
    else:
        start, why = (n - count) // 2, 'no blockage: the middle'
    start = max(0, min(start, n - count))
    return start, min(n, start + count), why


def _concat(parts: list[dict], groups: list[int]) -> HeldoutWindows:
    offsets = np.cumsum([0] + [len(p['stamps_ns']) for p in parts[:-1]])
    mods = tuple(parts[0]['frames'])
    return HeldoutWindows(
        mods, {m: np.concatenate([p['frames'][m] for p in parts]) for m in mods},
        np.concatenate([p['present'] for p in parts]),
        np.concatenate([p['stamps_ns'] for p in parts]),
        np.concatenate([p['window_frames'] + o for p, o in zip(parts, offsets)]),
        np.concatenate([p['labels'] for p in parts]),
        np.concatenate([p['labels_h3'] for p in parts]),
        np.concatenate([np.full(len(p['labels']), g, np.int64) for p, g in zip(parts, groups)]))


def _cut(part: dict, start: int, stop: int) -> dict:
    """Windows start..stop of one scenario, with only the frames they use (re-indexed)."""
    wf = part['window_frames'][start:stop]
    used = np.unique(wf)
    remap = np.full(len(part['stamps_ns']), -1, np.int64)
    remap[used] = np.arange(len(used))
    return {'frames': {m: a[used] for m, a in part['frames'].items()},
            'present': part['present'][used], 'stamps_ns': part['stamps_ns'][used],
            'window_frames': remap[wf], 'labels': part['labels'][start:stop],
            'labels_h3': part['labels_h3'][start:stop]}


def _accuracy(model_path: Path, data: HeldoutWindows, threads: int) -> dict:
    """CPU fp32 accuracy of a model file on ``data`` at its own threshold, and its p."""
    import torch

    from ..model.checkpoint import load_model
    torch.set_num_threads(threads)
    model, _ = load_model(model_path)
    ps = []
    with torch.no_grad():
        for lo in range(0, len(data), 16):
            rows = np.arange(lo, min(len(data), lo + 16))
            ps.append(torch.sigmoid(model(data.batch(rows))[:, 0]).numpy())
    p = np.concatenate(ps)
    blocked = p >= model.decision_threshold
    return {'p': p, 'threshold': model.decision_threshold,
            'accuracy': float((blocked == (data.labels == 1)).mean()),
            'accuracy_h3': float((blocked == (data.labels_h3 == 1)).mean())}


def build(out: str | Path = DEFAULT_PATH, *, scenarios=SCENARIOS, seed: int = SEED,
          per_scenario: int = PER_SCENARIO, work: str | Path | None = None,
          threads: int = 1, progress: bool = True) -> Path:
    """Simulate ``scenarios`` of ``seed``, window them as the node does, keep a run of
    ``per_scenario`` windows of each, and write the file and its sidecar (with the shipped
    models' CPU accuracy on the exact and on the stored windows, and on every window)."""
    import subprocess
    import tempfile
    import time

    from ..model.checkpoint import read_model_file
    from ..model.config import ModelConfig
    from ..model.shipped import SHIPPED_MODELS
    from ..sim.simulate import DEFAULT_FRAMES, simulate_scenario
    from ..train.build import STREAM_CONFIG
    root = Path(__file__).resolve().parents[2]
    models = {m: root / 'models' / name for m, name in SHIPPED_MODELS.items()}
    cfg = ModelConfig.from_dict(read_model_file(models['routed'])['config'])
    tic = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix='mmtok-heldout-') if work is None else None
    work = Path(tmp.name if tmp else work)
    work.mkdir(parents=True, exist_ok=True)
    whole, cut, picks = [], [], []
    for i in scenarios:
        bag = work / f'scenario_{i:02d}'
        if not (bag / 'metadata.yaml').is_file():
            info = simulate_scenario(work, i, seed, DEFAULT_FRAMES, None, False)
            kind = info.kind
        else:
            kind = json.loads((work / f'scenario_{i:02d}.truth.json').read_text()).get('kind')
        part = _scenario_windows(bag, cfg)
        start, stop, why = _pick(part['labels'], per_scenario)
        whole.append(part)
        cut.append(_cut(part, start, stop))
        picks.append({'scenario': f'scenario_{i:02d}', 'kind': kind,
                      'windows_in_scenario': int(len(part['labels'])),
                      'kept': [start, stop], 'why': why,
                      'blocked_kept': int(part['labels'][start:stop].sum())})
        if progress:
            print(f'heldout: scenario_{i:02d} ({kind}): {len(part["labels"])} windows, kept '
                  f'{start}..{stop} ({why})', flush=True)
    data = _concat(cut, list(scenarios))
    every = _concat(whole, list(scenarios))
    # what the uint8 camera costs: the same windows, exact and as stored
    stored = HeldoutWindows(data.modalities, {**data.frames, 'image': np.round(
        data.frames['image'] * 255.0).astype(np.uint8).astype(np.float32) / np.float32(255.0)},
        data.present, data.stamps_ns, data.window_frames, data.labels, data.labels_h3,
        data.groups)
    quant = {}
    for method, path in models.items():
        exact, as_stored, full = (_accuracy(path, d, threads) for d in (data, stored, every))
        quant[method] = {
            'model_file': f'models/{path.name}', 'threshold': exact['threshold'],
            'accuracy_exact_inputs': exact['accuracy'],
            'accuracy_stored_inputs': as_stored['accuracy'],
            'accuracy_h3_stored_inputs': as_stored['accuracy_h3'],
            'max_abs_p_diff_stored_vs_exact': float(np.abs(exact['p'] - as_stored['p']).max()),
            'decisions_changed_by_storage': int(((exact['p'] >= exact['threshold'])
                                                 != (as_stored['p'] >= exact['threshold'])).sum()),
            'accuracy_every_window_of_the_scenarios': full['accuracy'],
            'windows_of_the_scenarios': len(every)}
        if progress:
            print(f'heldout: {method}: {quant[method]}', flush=True)
    try:
        commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = bool(subprocess.run(['git', 'status', '--porcelain', '--', 'mmtok_ros'],
                                    cwd=root, capture_output=True, text=True,
                                    timeout=30).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = '', None
    onset = (data.labels[1:] == 1) & (data.labels[:-1] == 0) & (data.groups[1:] == data.groups[:-1])
    data.meta = {
        'what': 'preprocessed held-out windows of the shipped rsu-cpu models, for the device '
                'check (mmtok_ros/bench/device_check.py)',
        'made_by': f'python -m mmtok_ros.bench.heldout --per-scenario {per_scenario}',
        'git_commit': commit, 'working_tree_dirty_under_mmtok_ros': dirty,
        'simulation': {'command_equivalent': f'mmtok simulate --seed {seed} --scenarios 50 '
                                             '(only these scenarios are simulated: a scenario '
                                             'depends on its index and the seed alone)',
                       'seed': seed, 'frames_per_scenario': DEFAULT_FRAMES,
                       'scenarios': [f'scenario_{i:02d}' for i in scenarios]},
        'windowing': {'code': 'data.stream.iter_windows_from_messages with train.build.'
                              'STREAM_CONFIG (the node\'s defaults)',
                      'stream_config': STREAM_CONFIG.to_dict(),
                      'model_inputs': {k: v for k, v in cfg.to_dict().items() if k in (
                          'preset', 'modalities', 'n_frames', 'image_hw', 'bev_hw',
                          'bev_range_m', 'bev_ground_z_m', 'bev_max_z_m', 'rssi_dim')}},
        'selection': {'per_scenario': per_scenario, 'before_onset': BEFORE_ONSET,
                      'rule': 'a run of consecutive windows from each scenario: starting '
                              f'{BEFORE_ONSET} windows before its first onset, or the middle '
                              'of a scenario with no blockage', 'scenarios': picks},
        'storage': {'image': 'uint8 round(255 x), lzma (x in [0, 1] after the area resize; '
                             'at most 0.5/255 from the node\'s float input)',
                    'lidar, rssi, present': 'exact (float32 / bool), zlib'},
        'labels': {'labels': 'next-frame (Eq. 8; the model cards\' accuracy)',
                   'labels_h3': 'blocked within the next 3 frames (the shipped files\' '
                                'training label), computed on the whole scenario'},
        'counts': {'windows': len(data), 'frames': int(len(data.stamps_ns)),
                   'blocked_next_frame': int(data.labels.sum()),
                   'blocked_h3': int(data.labels_h3.sum()), 'onsets': int(onset.sum())},
        'cpu_reference_fp32': quant,
        'build_seconds': round(time.perf_counter() - tic, 1),
    }
    path = save(out, data)
    if tmp is not None:
        tmp.cleanup()
    return path


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', default=str(DEFAULT_PATH))
    p.add_argument('--per-scenario', type=int, default=PER_SCENARIO)
    p.add_argument('--work', default=None, help='keep the simulated bags here (reused)')
    p.add_argument('--threads', type=int, default=1)
    args = p.parse_args(argv)
    path = build(args.out, per_scenario=args.per_scenario, work=args.work, threads=args.threads)
    meta = json.loads(sidecar_path(path).read_text())
    print(f"wrote {path} ({meta['npz_bytes'] / 1e6:.2f} MB, {meta['counts']}) and "
          f'{sidecar_path(path).name}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
