"""k-fold cross-validation by scenario (Section IV-B's protocol) or by scenario kind (whole
kinds held out: blockages never trained on), several seeds."""
from __future__ import annotations

import json
import statistics
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from ..constants import DEFAULT_DECISION_THRESHOLD, FRAME_PERIOD_MS, ONSET_FRAMES_AHEAD
from ..errors import UserInputError
from ..model import ModelConfig
from ..model.config import ROUTED_METHODS
from .dataset import WindowDataset, group_folds
from .run_store import RunStore, run_key, run_name
from .trainer import TrainConfig, train_model
from .evaluation import evaluate, rescore


def scenario_kinds(data_dir: str | Path, names: list[str]) -> list[str]:
    """The kind of every named scenario bag, from ``index.json`` or the truth sidecars that
    ``mmtok simulate`` writes beside the bags."""
    data_dir = Path(data_dir)
    kinds: dict[str, str] = {}
    for index in [data_dir / 'index.json']:
        if index.is_file():
            for row in json.loads(index.read_text()).get('scenarios', []):
                kinds[row['name']] = row['kind']
    for name in names:
        truth = data_dir / f'{name}.truth.json'
        if name not in kinds and truth.is_file():
            kinds[name] = json.loads(truth.read_text())['kind']
    missing = [n for n in names if n not in kinds]
    if missing:
        raise UserInputError(f'no scenario kind for {missing} in {data_dir} (index.json or '
                         '<bag>.truth.json from mmtok simulate): cannot split by kind')
    return [kinds[n] for n in names]


def kind_folds(groups: np.ndarray, group_kinds: list[str], n_folds: int
               ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leave-kinds-out folds: every scenario of a kind lands on one side (kinds dealt to folds
    round-robin in order of first appearance). ``group_kinds[g]``: kind of group g."""
    kinds = list(dict.fromkeys(group_kinds[g] for g in np.unique(groups)))
    if n_folds < 2 or n_folds > len(kinds):
        raise UserInputError(f'{n_folds} folds by kind need 2..{len(kinds)} kinds')
    fold_of = {k: i % n_folds for i, k in enumerate(kinds)}
    fold = np.array([fold_of[group_kinds[g]] for g in groups])
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(n_folds)]


def pooled_prediction_scores(runs: list[dict]) -> dict:
    """Pool the prediction metrics of several test folds: onsets, lead times, false alarms and
    late all-clears summed; AUROC and recall at the fixed false-alarm rate averaged."""
    if not runs or 'auroc' not in runs[0]:
        return {}
    leads = np.concatenate([np.asarray(r['lead_frames'], int) for r in runs])
    minutes = sum(r['clear_minutes'] for r in runs)
    n_false = sum(r['false_alarms'] for r in runs)
    n_late = sum(r.get('late_all_clears', 0) for r in runs)
    aurocs = [r['auroc'] for r in runs if np.isfinite(r['auroc'])]
    return {'auroc_mean': float(np.mean(aurocs)) if aurocs else float('nan'),
            'onsets_pooled': int(len(leads)),
            'onset_recall_ahead': {str(k): float((leads >= k).mean()) if len(leads)
                                   else float('nan') for k in ONSET_FRAMES_AHEAD},
            'median_lead_ms': (float(np.median(leads) * FRAME_PERIOD_MS) if len(leads)
                               else float('nan')),
            'false_alarm_definition': runs[0].get('false_alarm_definition', 'legacy'),
            'false_alarms_per_min': n_false / minutes if minutes > 0 else float('nan'),
            'late_all_clears_per_min': n_late / minutes if minutes > 0 else float('nan'),
            'recall_at_fixed_false_alarm_rate': float(np.mean(
                [r['at_fixed_false_alarm_rate']['onset_recall'] for r in runs])),
            'max_false_alarms_per_min': runs[0]['at_fixed_false_alarm_rate'][
                'max_false_alarms_per_min']}


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
                   tc: TrainConfig, max_folds: int | None = None, progress: bool = True,
                   group_kinds: list[str] | None = None, horizon: int = 1,
                   store: RunStore | None = None, metrics: str = 'proactive') -> dict:
    """Train on k-1 folds of scenarios, test on the held-out fold, for every seed.

    ``max_folds`` runs only the first folds (a cheaper estimate; reported as such).
    ``group_kinds`` (kind of each group): folds hold out whole kinds instead of scenarios.
    ``horizon``: train on 'blocked within the next H frames'; scores use the onsets of the
    next-frame label whatever H is.
    ``store``: reuse runs already done with the same settings, save each new one, skip runs
    another process is training (their names are returned in ``runs_pending``). A stored run
    scored under another false-alarm definition than ``metrics`` is scored again from its
    stored predictions, or trained again when it has none.
    """
    runs, pending = [], []
    splits = (group_folds(data.groups, folds) if group_kinds is None
              else kind_folds(data.groups, group_kinds, folds))[:max_folds or folds]
    for seed in seeds:
        for k, (train_rows, test_rows) in enumerate(splits):
            test_groups = np.unique(data.groups[test_rows]).tolist()
            name = run_name(cfg.method, cfg.target_keep_ratio
                            if cfg.method in ROUTED_METHODS else None, k, seed)
            key = run_key(model=cfg.key_dict(), train={**_key_dict(tc), 'seed': seed,
                                                       'device': None},
                          horizon=horizon, folds=folds, split=group_kinds is not None,
                          test_groups=test_groups, windows=[len(train_rows), len(test_rows)])
            done = store.load(name, key) if store is not None else None
            if done is not None and done.get('false_alarm_definition', 'legacy') != metrics:
                done = rescore(done, metrics)    # None: no stored predictions, train again
            if done is not None:
                runs.append(done)
                continue
            if store is not None and not store.claim(name):
                pending.append(name)
                continue
            try:
                model, history = train_model(cfg, data.subset(train_rows).with_horizon(horizon),
                                             replace(tc, seed=seed), progress=progress,
                                             desc=f'{cfg.method} fold {k} seed {seed}')
                threshold = history.get('decision_threshold', {}).get(
                    'value', DEFAULT_DECISION_THRESHOLD)
                result = evaluate(model, data.subset(test_rows), threshold=threshold,
                                  horizon=horizon, metrics=metrics, keep_predictions=True)
            except BaseException:
                if store is not None:
                    store.release(name)
                raise
            run = {'fold': k, 'seed': seed, 'test_groups': test_groups,
                   'test_kinds': sorted({group_kinds[g] for g in test_groups})
                   if group_kinds is not None else None,
                   **result, 'train_seconds': history['seconds'],
                   'torch_threads': history['torch_threads'],
                   'steps_per_epoch': history['steps_per_epoch'],
                   'keep_ratios': history['keep_ratios'][-1] if history['keep_ratios'] else [],
                   'keep_ratio_history': history['keep_ratios'],
                   'keep_ratio_grad': history['keep_ratio_grad'],
                   'keep_ratio_grad_rms': history['keep_ratio_grad_rms'],
                   'keep_ratio_sign_consistency': history['keep_ratio_sign_consistency'],
                   'train_windows': history.get('train_windows')}
            if store is not None:
                store.save(name, key, run)
            runs.append(run)
    accuracies = [r['accuracy'] for r in runs]
    mean, std = mean_std(accuracies)
    baselines = {}
    if runs and 'baselines' in runs[0]:
        for name in runs[0]['baselines']:
            per_run = [r['baselines'][name] for r in runs]
            baselines[name] = {'accuracy_mean': mean_std([b['accuracy'] for b in per_run])[0],
                               'accuracy_std': mean_std([b['accuracy'] for b in per_run])[1],
                               **pooled_prediction_scores(per_run)}
    node = {}
    if runs and all('node_decision' in r for r in runs):
        per_run = [r['node_decision'] for r in runs]
        node = {'accuracy_mean': mean_std([b['accuracy'] for b in per_run])[0],
                'accuracy_std': mean_std([b['accuracy'] for b in per_run])[1],
                **pooled_prediction_scores(per_run)}
    return {'method': cfg.method, 'gamma': cfg.target_keep_ratio, 'folds': folds,
            'split': 'scenario' if group_kinds is None else 'kind',
            'label_horizon_frames': horizon,
            'folds_run': len(splits), 'seeds': seeds, 'accuracy_mean': mean, 'accuracy_std': std,
            'accuracy_ci95': confidence_interval_95(accuracies), 'runs_pending': pending,
            **pooled_prediction_scores(runs), 'node_decision': node, 'baselines': baselines,
            'runs': runs}


def _key_dict(tc: TrainConfig) -> dict:
    """``asdict(tc)`` without the later fields at the value that reproduces the runs before
    them, so those runs keep their keys."""
    return {k: v for k, v in asdict(tc).items()
            if not (k == 'keep_ratio_hold_fraction' and v == 0.0)}
