"""DeepSense 6G beam data -> ``WindowDataset`` (labels: 0-based beam index, int64).

Point it at a scenario folder (the one holding ``scenarioNN.csv`` and the ``unit1``/``unit2``
folders) or at the CSV itself; paths in the CSV are relative to the CSV's folder. Two layouts:

* window rows (the beam-prediction challenge files): columns ``unit1_rgb_1`` ...
  ``unit1_rgb_5``, the same for ``unit1_lidar_`` (.ply), ``unit1_radar_`` (.npy, complex
  (Rx, samples, chirps)) and ``unit2_loc_`` (.txt: latitude and longitude), and
  ``unit1_beam``, taken as the label of the window: the best beam of the frame it predicts;
* sample rows (the raw scenario files): ``unit1_rgb``, ``unit1_lidar``, ``unit1_radar``,
  ``unit2_loc``, ``unit1_beam`` per frame, and optionally ``seq_index``; windows are ``n_frames``
  consecutive rows of one sequence, labelled with the beam of the row after them (Eq. 7).

Beams in the CSV are 1-indexed (1 ... 64). GPS is turned into local metres (east, north)
around ``unit1_loc`` (the base station) when that column exists, else around the mean position.
Only the columns of the modalities the model uses are needed. Errors name the file, or every
column that is missing.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..constants import NS_PER_S
from ..model.config import ModelConfig
from ..train.dataset import WindowDataset
from .errors import BeamDataError, BeamDataNotFoundError, DeepSenseLayoutError
from .inputs import FRAME_PERIOD_S, frame_inputs
from .ply import read_ply

COLUMNS = {'image': 'unit1_rgb', 'lidar': 'unit1_lidar', 'radar': 'unit1_radar',
           'gps': 'unit2_loc'}
LABEL_COLUMN = 'unit1_beam'
SEQUENCE_COLUMN = 'seq_index'
BS_LOCATION_COLUMN = 'unit1_loc'
EARTH_RADIUS_M = 6_371_000.0


def find_csv(path: str | Path) -> Path:
    """The scenario CSV: ``path`` itself, or the only ``*.csv`` in the folder ``path``."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise BeamDataNotFoundError(f'DeepSense data not found: {path} (give a scenario folder '
                                    'or its CSV)')
    found = sorted(path.glob('*.csv'))
    if len(found) != 1:
        raise BeamDataNotFoundError(f'{path}: expected one scenario CSV, found '
                                    f'{[p.name for p in found] or "none"}')
    return found[0]


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image
    try:
        with Image.open(path) as img:
            return np.array(img.convert('RGB'))      # a writable copy (torch.from_numpy)
    except OSError as err:                           # PIL.UnidentifiedImageError included
        raise BeamDataError(f'{path}: not a readable image ({err})') from None


def read_radar(path: Path) -> np.ndarray:
    try:
        cube = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise BeamDataError(f'{path}: not a readable .npy radar cube ({err})') from None
    if cube.ndim != 3 or not np.iscomplexobj(cube):
        raise DeepSenseLayoutError(f'{path}: expected a complex (rx, samples, chirps) radar '
                                   f'cube, got {cube.dtype} {cube.shape}')
    return cube


def read_latlon(path: Path) -> np.ndarray:
    """(latitude, longitude) in degrees from a DeepSense GPS text file."""
    values = path.read_text().replace(',', ' ').split()
    try:
        lat, lon = (float(v) for v in values[:2])
    except ValueError:
        raise DeepSenseLayoutError(f'{path}: expected latitude and longitude, got '
                                   f'{values[:2]}') from None
    if len(values) < 2 or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise DeepSenseLayoutError(f'{path}: expected latitude and longitude, got {values[:2]}')
    return np.array([lat, lon])


def latlon_to_local_m(latlon: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """(..., 2) degrees -> (..., 2) metres east and north of ``origin`` (flat earth, < 1 km)."""
    d = np.radians(np.asarray(latlon, float) - origin)
    east = d[..., 1] * EARTH_RADIUS_M * np.cos(np.radians(origin[0]))
    return np.stack([east, d[..., 0] * EARTH_RADIUS_M], axis=-1)


def _windows(csv_path: Path, header: list[str], rows: list[dict], cfg: ModelConfig):
    """[(group, label column row, [frame row dicts {modality: file}] * T)] for either layout."""
    T = cfg.n_frames
    if LABEL_COLUMN not in header:
        raise DeepSenseLayoutError(f'{csv_path}: no label column {LABEL_COLUMN!r}; columns are '
                                   f'{header}')
    windowed = [(m, f'{COLUMNS[m]}_{t}') for m in cfg.modalities for t in range(1, T + 1)]
    missing = [(m, c) for m, c in windowed if c not in header]
    if not missing:
        return [(int(float(r.get(SEQUENCE_COLUMN) or 0)), i,
                 [{m: r[f'{COLUMNS[m]}_{t}'] for m in cfg.modalities} for t in range(1, T + 1)])
                for i, r in enumerate(rows)]
    layout = f'window rows: {{column}}_1 ... {{column}}_{T}'
    if len(missing) == len(windowed):        # not one window-row column: read sample rows
        missing = [(m, COLUMNS[m]) for m in cfg.modalities if COLUMNS[m] not in header]
        layout = 'sample rows' if len(missing) < len(cfg.modalities) else \
            f'sample rows, or window rows {{column}}_1 ... {{column}}_{T}'
    if missing:
        modalities = list(dict.fromkeys(m for m, _ in missing))
        raise DeepSenseLayoutError(
            f'{csv_path}: missing column(s) {", ".join(repr(c) for _, c in missing)} for '
            f'{"modality" if len(modalities) == 1 else "modalities"} '
            f'{", ".join(map(repr, modalities))} ({layout}); columns are {header}')
    out = []
    seq = [int(float(r.get(SEQUENCE_COLUMN) or 0)) for r in rows]
    for i in range(len(rows) - T):
        if seq[i] == seq[i + T]:                 # all T frames and the label in one sequence
            out.append((seq[i], i + T, [{m: rows[j][COLUMNS[m]] for m in cfg.modalities}
                                        for j in range(i, i + T)]))
    return out


def load_deepsense(path: str | Path, cfg: ModelConfig) -> WindowDataset:
    """Every window of the scenario CSV at ``path`` with the inputs ``cfg`` needs."""
    csv_path = find_csv(path)
    root = csv_path.parent
    with open(csv_path, newline='') as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        rows = [{k.strip(): (v or '').strip() for k, v in r.items() if k} for r in reader]
    if not rows:
        raise DeepSenseLayoutError(f'{csv_path}: no data rows')
    windows = _windows(csv_path, header, rows, cfg)
    if not windows:
        raise DeepSenseLayoutError(f'{csv_path}: no sequence has {cfg.n_frames + 1} rows')

    def file(rel: str, column: str, row: int) -> Path:
        p = root / rel
        if not rel or not p.is_file():
            raise BeamDataNotFoundError(f'{csv_path}: row {row + 1}, column {column!r}: file '
                                        f'not found: {p}')
        return p

    origin = None
    if 'gps' in cfg.modalities:
        if BS_LOCATION_COLUMN in header and rows[0].get(BS_LOCATION_COLUMN):
            origin = read_latlon(file(rows[0][BS_LOCATION_COLUMN], BS_LOCATION_COLUMN, 0))
        else:
            origin = np.mean([read_latlon(file(fr['gps'], COLUMNS['gps'], i))
                              for _, i, frames in windows for fr in frames], axis=0)
    frame_row: dict[tuple, int] = {}
    frames: dict[str, list] = {m: [] for m in cfg.modalities}
    window_rows, labels, groups, stamps = [], [], [], []
    for group, label_row, window in windows:
        idx = []
        for fr in window:
            key = tuple(fr[m] for m in cfg.modalities)
            if key not in frame_row:
                raw = {}
                if 'image' in fr:
                    raw['rgb'] = read_rgb(file(fr['image'], COLUMNS['image'], label_row))
                if 'lidar' in fr:
                    raw['points'] = read_ply(file(fr['lidar'], COLUMNS['lidar'], label_row))
                if 'radar' in fr:
                    raw['radar_cube'] = read_radar(file(fr['radar'], COLUMNS['radar'], label_row))
                if 'gps' in fr:
                    latlon = read_latlon(file(fr['gps'], COLUMNS['gps'], label_row))
                    raw['gps_xy_m'] = latlon_to_local_m(latlon, origin)
                for m, x in frame_inputs(cfg, **raw).items():
                    frames[m].append(x)
                frame_row[key] = len(frame_row)
            idx.append(frame_row[key])
        value = rows[label_row][LABEL_COLUMN]
        try:
            beam = int(float(value))
        except ValueError:
            beam = -1
        if not 1 <= beam <= cfg.n_classes:
            raise DeepSenseLayoutError(f'{csv_path}: row {label_row + 1}, column {LABEL_COLUMN!r}: '
                                       f'beam {value!r} is not in 1 ... {cfg.n_classes}')
        window_rows.append(idx)
        labels.append(beam - 1)                  # 1-indexed in DeepSense
        groups.append(group)
        stamps.append(label_row * int(FRAME_PERIOD_S * NS_PER_S))   # order only
    return WindowDataset(
        tuple(cfg.modalities), {m: np.stack(v).astype(np.float32) for m, v in frames.items()},
        np.ones((len(frame_row), len(cfg.modalities)), dtype=bool),
        np.array(window_rows, dtype=np.int64), np.array(labels, dtype=np.int64),
        np.array(groups, dtype=np.int64), np.array(stamps, dtype=np.int64))
