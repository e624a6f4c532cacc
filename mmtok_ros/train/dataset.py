"""Windows stored as shared frames plus an index: consecutive windows share 4 of 5 frames,
so each frame is kept once (5x less memory than stacking windows)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputFileNotFoundError, UserInputError


@dataclass
class WindowDataset:
    """``frames[m]``: (F, ...) float32 per modality; ``present``: (F, M) bool;
    ``window_frames``: (W, T) int64 rows of ``frames``, oldest first; ``labels``: (W,) float32
    (1 = blocked) or int64 (beam index); ``groups``: (W,) int64 scenario of each window;
    ``newest_stamp_ns``: (W,) int64; ``next_labels``: the next-frame labels when ``labels``
    look further ahead (``with_horizon``), else None (``labels`` are the next-frame labels)."""

    modalities: tuple[str, ...]
    frames: dict[str, np.ndarray]
    present: np.ndarray
    window_frames: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    newest_stamp_ns: np.ndarray
    next_labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, rows: np.ndarray) -> 'WindowDataset':
        return WindowDataset(self.modalities, self.frames, self.present, self.window_frames[rows],
                             self.labels[rows], self.groups[rows], self.newest_stamp_ns[rows],
                             None if self.next_labels is None else self.next_labels[rows])

    def next_frame_labels(self) -> np.ndarray:
        """(W,) the next-frame labels (Eq. 8), whatever horizon ``labels`` have."""
        return self.labels if self.next_labels is None else self.next_labels

    def batch(self, rows: np.ndarray, device: str | torch.device = 'cpu') -> tuple[dict, torch.Tensor]:
        """Model input (B, T, ...) per modality plus ``present`` (B, T, M), and the labels."""
        idx = self.window_frames[rows]                                     # (B, T)
        out = {m: torch.from_numpy(self.frames[m][idx]).to(device) for m in self.modalities}
        out['present'] = torch.from_numpy(self.present[idx]).to(device)
        return out, torch.from_numpy(self.labels[rows]).to(device)

    def _in_time_order(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(order, labels, groups, same): rows sorted by scenario then time, their labels and
        groups, and ``same[i]``: sorted row i follows a row of its own scenario."""
        order = np.lexsort((self.newest_stamp_ns, self.groups))
        labels, groups = self.labels[order], self.groups[order]
        same = np.zeros(len(labels), dtype=bool)
        same[1:] = groups[1:] == groups[:-1]
        return order, labels, groups, same

    def onset_order(self) -> tuple[np.ndarray, np.ndarray]:
        """(order, onset): rows sorted by scenario then time, and whether each sorted row is a
        blockage onset (labelled blocked after a window of the same scenario labelled clear)."""
        order, labels, _, same = self._in_time_order()
        onset = same & (labels == 1) & (np.r_[1.0, labels[:-1]] == 0)
        return order, onset

    def near_transition(self, radius: int, lead_in: int = 0) -> np.ndarray:
        """(W,) bool: the window is within ``radius`` windows (same scenario) of a change of its
        label, in either direction, or one of the ``lead_in`` windows before a change to
        blocked. These are the windows a proactive handover depends on (the lead-in ones: the
        clear windows an early alarm gets wrong); the rest are steady (clear far from any
        blocker, or deep inside a blockage)."""
        order, labels, groups, same = self._in_time_order()
        change = same & (labels != np.r_[labels[:1], labels[:-1]])
        near = np.zeros(len(labels), dtype=bool)
        for i in np.flatnonzero(change):
            before = max(radius, lead_in) if labels[i] == 1 else radius
            lo, hi = max(0, i - before), min(len(labels), i + radius)
            near[lo:hi] |= groups[lo:hi] == groups[i]
        out = np.zeros(len(labels), dtype=bool)
        out[order] = near
        return out

    def with_horizon(self, horizon: int) -> 'WindowDataset':
        """The same windows labelled 'blocked within the next ``horizon`` frames' (the labels
        must be the next-frame labels; horizon 1 returns ``self``)."""
        if horizon == 1:
            return self
        from .metrics import horizon_labels
        order, labels, groups, _ = self._in_time_order()
        out = np.empty_like(self.labels)
        out[order] = horizon_labels(labels, groups, horizon)
        return WindowDataset(self.modalities, self.frames, self.present, self.window_frames, out,
                             self.groups, self.newest_stamp_ns, self.next_frame_labels())

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, modalities=np.array(self.modalities), present=self.present,
                 window_frames=self.window_frames, labels=self.labels, groups=self.groups,
                 newest_stamp_ns=self.newest_stamp_ns,
                 **{f'frames_{m}': a for m, a in self.frames.items()})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> 'WindowDataset':
        path = Path(path)
        if not path.is_file():
            raise InputFileNotFoundError(f'dataset file not found: {path}')
        with np.load(path, allow_pickle=False) as z:
            modalities = tuple(str(m) for m in z['modalities'])
            return cls(modalities, {m: z[f'frames_{m}'] for m in modalities}, z['present'],
                       z['window_frames'], z['labels'], z['groups'], z['newest_stamp_ns'])

    @classmethod
    def concat(cls, parts: list['WindowDataset']) -> 'WindowDataset':
        if not parts:
            raise ValueError('no windows to concatenate')
        offsets = np.cumsum([0] + [len(p.present) for p in parts[:-1]])
        return cls(parts[0].modalities,
                   {m: np.concatenate([p.frames[m] for p in parts]) for m in parts[0].modalities},
                   np.concatenate([p.present for p in parts]),
                   np.concatenate([p.window_frames + o for p, o in zip(parts, offsets)]),
                   np.concatenate([p.labels for p in parts]),
                   np.concatenate([p.groups for p in parts]),
                   np.concatenate([p.newest_stamp_ns for p in parts]))


def group_folds(groups: np.ndarray, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation split by scenario: every window of a scenario lands on one side.

    Returns (train_rows, test_rows) per fold; scenarios are dealt round-robin to folds.
    """
    scenarios = np.unique(groups)
    if n_folds < 2 or n_folds > len(scenarios):
        raise UserInputError(f'{n_folds} folds need 2..{len(scenarios)} scenarios')
    fold_of = {s: i % n_folds for i, s in enumerate(scenarios)}
    fold = np.array([fold_of[g] for g in groups])
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(n_folds)]
