"""Making the held-out windows file (``python -m mmtok_ros.bench.heldout``): simulate the
shipped models' held-out scenarios, window them with the node's stream code, keep a run of
consecutive windows around each scenario's first blockage onset, and write the file with a
sidecar that says how it was made and what the shipped models score on it on the CPU. Needs
the simulator and rosbags, so it is never on the device path.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .windows import DEFAULT_PATH, HeldoutWindows, save, sidecar_path

SCENARIOS = tuple(range(40, 50))       # the shipped models' held-out scenarios (models/*.md)
SEED = 0
PER_SCENARIO = 20
BEFORE_ONSET = 12                      # windows kept before a scenario's first onset


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

    from ...data.bag import read_bag_messages
    from ...data.stream import iter_windows_from_messages
    from ...train.build import STREAM_CONFIG
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

    from ...model.checkpoint import load_model
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

    from ...model.checkpoint import read_model_file
    from ...model.config import ModelConfig
    from ...model.shipped import SHIPPED_MODELS
    from ...sim.simulate import DEFAULT_FRAMES, simulate_scenario
    from ...train.build import STREAM_CONFIG
    root = Path(__file__).resolve().parents[3]
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
                'check (mmtok_ros/bench/device_check/)',
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
    p = argparse.ArgumentParser(prog='python -m mmtok_ros.bench.heldout',
                                description=__doc__.split('\n\n')[0])
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
