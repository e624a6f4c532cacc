"""k-fold cross-validation by scenario, several seeds (Section IV-B's protocol)."""
from __future__ import annotations

import statistics
from dataclasses import replace

import numpy as np

from ..model import ModelConfig
from .dataset import WindowDataset, group_folds
from .trainer import TrainConfig, evaluate, train_model


def mean_std(values: list[float]) -> tuple[float, float]:
    return (statistics.fmean(values), statistics.pstdev(values)) if values else (float('nan'), 0.0)


def confidence_interval_95(values: list[float]) -> tuple[float, float]:
    """Normal-approximation 95% interval of the mean over folds x seeds."""
    m, _ = mean_std(values)
    if len(values) < 2:
        return m, m
    half = 1.96 * statistics.stdev(values) / len(values) ** 0.5
    return m - half, m + half


def cross_validate(cfg: ModelConfig, data: WindowDataset, *, folds: int, seeds: list[int],
                   tc: TrainConfig, max_folds: int | None = None, progress: bool = True) -> dict:
    """Train on k-1 folds of scenarios, test on the held-out fold, for every seed.

    ``max_folds`` runs only the first folds (a cheaper estimate; reported as such).
    """
    runs = []
    splits = group_folds(data.groups, folds)[:max_folds or folds]
    for seed in seeds:
        for k, (train_rows, test_rows) in enumerate(splits):
            model, history = train_model(cfg, data.subset(train_rows), replace(tc, seed=seed),
                                         progress=progress, desc=f'{cfg.method} fold {k} seed {seed}')
            threshold = history.get('decision_threshold', {}).get('value', 0.5)
            result = evaluate(model, data.subset(test_rows), threshold=threshold)
            runs.append({'fold': k, 'seed': seed, 'test_groups': np.unique(data.groups[test_rows]).tolist(),
                         **result, 'train_seconds': history['seconds'],
                         'keep_ratios': history['keep_ratios'][-1] if history['keep_ratios'] else []})
    accuracies = [r['accuracy'] for r in runs]
    mean, std = mean_std(accuracies)
    return {'method': cfg.method, 'gamma': cfg.target_keep_ratio, 'folds': folds,
            'folds_run': len(splits), 'seeds': seeds, 'accuracy_mean': mean, 'accuracy_std': std,
            'accuracy_ci95': confidence_interval_95(accuracies), 'runs': runs}
