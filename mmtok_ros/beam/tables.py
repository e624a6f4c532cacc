"""Tables II-V of the beam task, trained on one split and timed in one run, as Markdown + JSON.

  Table II   routed at every gamma' against ``mha``: accuracy, latency, memory, FLOPs;
  Table III  ``tome`` and ``mod`` against ``mha`` and routed (gamma' = 0.5);
  Table IV   ablations 1-3 against routed, all at gamma' = 0.3 (the paper's ablation setting);
  Table V    routed (gamma' = 0.5) retrained with one modality removed at a time, and the full
             model with that modality marked absent at test time (no retraining).

Every model is trained once (one seed) with the same ``TrainConfig`` on the same windows and
scored on the same held-out windows; trained models are cached in ``out_dir/models`` so that a
rerun only trains what is missing. Latency: every trained model, batch 1, timed round-robin
(``timing.time_round_robin``) on one held-out window; memory: fresh-process peak
(``timing.cpu_peak_mb``); FLOPs: ``model.flops.count_flops`` with the learned keep ratios.
The Markdown of each table is written by ``table_markdown.py``.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..constants import GAMMA_SWEEP
from ..devices import device_name
from ..errors import UserInputError
from ..model import ModelConfig, MultiModalTransformer, preset
from ..model.checkpoint import load_model, save_model
from ..model.flops import count_flops, dummy_window
from ..timing import Candidate, cpu_peak_mb, time_once, time_round_robin
from ..train.dataset import WindowDataset
from ..train.report import plot_accuracy_latency, plot_keep_ratios
from ..train.trainer import TrainConfig, train_model
from ..train.evaluation import predict
from .metrics import beam_scores
from .table_markdown import table_ablation, table_cost, table_modalities, table_scale

GAMMAS = GAMMA_SWEEP
REFERENCE_GAMMA = 0.5         # Table III's routed row and Table V's model
ABLATION_GAMMA = 0.3          # Table IV (paper: gamma' = 30 %)
TABLES = ('II', 'III', 'IV', 'V')
# Table II's latency at scale: paper-like proportions (camera and BEV 16x16 tokens, 300 radar
# points; N = 4066) that a CPU still times in seconds.
SCALE_OVERRIDES = {'image_hw': (128, 128), 'bev_hw': (128, 128), 'n_radar_points': 300}


@dataclass(frozen=True)
class Run:
    """One model to train: a method, its gamma' (None: not routed) and a removed modality."""
    method: str
    gamma: float | None = None
    drop: str | None = None

    @property
    def key(self) -> str:
        g = '' if self.gamma is None else f'-g{self.gamma:.2f}'
        return f"{self.method}{g}{'' if self.drop is None else '-no-' + self.drop}"

    @property
    def label(self) -> str:
        name = self.method if self.gamma is None else f"{self.method} (γ'={self.gamma:.1f})"
        return name if self.drop is None else f'{name} without {self.drop}'


def plan(tables: tuple[str, ...], gammas: tuple[float, ...], modalities: tuple[str, ...]
         ) -> list[Run]:
    """The runs the requested tables need, each once, in a stable order."""
    runs = [Run('mha')]
    if 'II' in tables:
        runs += [Run('routed', g) for g in gammas]
    if 'III' in tables:
        runs += [Run('tome'), Run('mod'), Run('routed', REFERENCE_GAMMA)]
    if 'IV' in tables:
        runs += [Run('routed', ABLATION_GAMMA)]
        runs += [Run(f'ablation{i}', ABLATION_GAMMA) for i in (1, 2, 3)]
    if 'V' in tables:
        runs += [Run('routed', REFERENCE_GAMMA)]
        runs += [Run('routed', REFERENCE_GAMMA, m) for m in modalities]
    return list(dict.fromkeys(runs))


def config_of(run: Run, preset_name: str) -> ModelConfig:
    base = preset(preset_name)
    changes = {'method': run.method}
    if run.gamma is not None:
        changes['target_keep_ratio'] = run.gamma
    if run.drop is not None:
        changes['modalities'] = tuple(m for m in base.modalities if m != run.drop)
    return replace(base, **changes)


def without_modality(data: WindowDataset, modality: str) -> WindowDataset:
    """The same windows with one modality left out (a model built without it reads these)."""
    keep = [i for i, m in enumerate(data.modalities) if m != modality]
    return WindowDataset(tuple(data.modalities[i] for i in keep),
                         {m: a for m, a in data.frames.items() if m != modality},
                         data.present[:, keep], data.window_frames, data.labels, data.groups,
                         data.newest_stamp_ns)


def marked_absent(data: WindowDataset, modality: str) -> WindowDataset:
    """The same windows with ``modality`` marked absent in every frame (learned missing token)."""
    present = data.present.copy()
    present[:, data.modalities.index(modality)] = False
    return replace(data, present=present)


def _fingerprint(train: WindowDataset, test: WindowDataset, tc: TrainConfig) -> str:
    blob = json.dumps([len(train), int(train.labels.sum()), len(test), int(test.labels.sum()),
                       float(train.frames[train.modalities[0]][:8].sum()), asdict(tc)],
                      sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def train_or_load(run: Run, preset_name: str, train: WindowDataset, test: WindowDataset,
                  tc: TrainConfig, models_dir: Path, progress: bool = True
                  ) -> tuple[MultiModalTransformer, dict]:
    """Train ``run`` (or load it when a model with the same data and settings is cached)."""
    cfg = config_of(run, preset_name)
    stamp = _fingerprint(train, test, tc)
    path = models_dir / f'{run.key}.pt'
    if path.is_file():
        model, meta = load_model(path)
        if meta.get('fingerprint') == stamp and model.cfg == cfg:
            return model, meta['row']
    if run.drop is not None:
        train, test = without_modality(train, run.drop), without_modality(test, run.drop)
    model, history = train_model(cfg, train, tc, progress=progress, desc=run.key)
    row = {'key': run.key, 'label': run.label, 'method': run.method, 'gamma': run.gamma,
           'removed': run.drop, 'n_tokens': cfg.n_tokens,
           **beam_scores(predict(model, test), test.labels),
           'train_seconds': history['seconds'], 'epoch_loss': history['epoch_loss'],
           'keep_ratios': model.keep_ratios().detach().tolist()}
    save_model(path, model, meta={'fingerprint': stamp, 'row': row})
    return model, row


@torch.no_grad()
def time_models(models: dict[str, MultiModalTransformer], window: dict, *, reps: int,
                warmup: int = 3, progress: bool = True) -> dict[str, dict]:
    """Median/p90 latency (ms, batch 1, CPU) of every model, timed round-robin."""
    device = torch.device('cpu')
    cands = {k: Candidate(m.cfg.method, m.cfg.target_keep_ratio, m.eval())
             for k, m in models.items()}
    for c in cands.values():
        for _ in range(warmup):
            time_once(c, window, device, 'fp32')
        c.clear()
    time_round_robin(list(cands.values()), window, device, reps=reps, progress=progress)
    return {k: c.summary() for k, c in cands.items()}


def scale_latency(preset_name: str, gammas: tuple[float, ...], *, reps: int,
                  progress: bool = True, **overrides) -> tuple[ModelConfig, dict[str, dict]]:
    """Latency of fresh (untrained) models at a larger input size: at beam-mini's N = 246 the
    fixed per-layer costs hide the attention's N^2, so Table II adds this paper-like token
    count. Untrained weights time the same as trained ones; r_l starts at gamma'."""
    base = replace(preset(preset_name), **overrides)
    runs = [Run('mha')] + [Run('routed', g) for g in gammas] + [Run('tome'), Run('mod')]
    models = {}
    for run in runs:
        cfg = replace(base, method=run.method,
                      **({} if run.gamma is None else {'target_keep_ratio': run.gamma}))
        models[run.label] = MultiModalTransformer(cfg).eval()
    timing = time_models(models, dummy_window(base), reps=reps, progress=progress)
    for label, model in models.items():
        flops = count_flops(model)
        timing[label].update(gflops=flops['gflops'], tokens_per_layer=flops['tokens_per_layer'])
    return base, timing


# --- the whole run ------------------------------------------------------------------------------

def run_beam_tables(train: WindowDataset, test: WindowDataset, *, preset_name: str,
                    tc: TrainConfig, out_dir: str | Path, data_note: str,
                    tables: tuple[str, ...] = TABLES, gammas: tuple[float, ...] = GAMMAS,
                    bench_reps: int = 30, scale_overrides: dict | None = SCALE_OVERRIDES,
                    measure_memory: bool = True, progress: bool = True) -> dict:
    """Train what the tables need, time every model in one run, write tables and plots.
    ``scale_overrides``: the input sizes of Table II's latency-at-scale part (None: skip it);
    ``measure_memory``: False leaves peak memory out ('-'; each probe is a fresh process)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise UserInputError(f'unknown tables {unknown}; choose from {list(TABLES)}')
    base = preset(preset_name)
    if base.n_classes < 2:
        raise UserInputError(f'preset {preset_name!r} predicts {base.n_classes} class; the '
                             'beam task needs a beam preset (n_classes = codebook size), '
                             'e.g. beam-mini')
    runs = plan(tuple(tables), tuple(gammas), tuple(base.modalities))
    tic = time.process_time()
    models, rows = {}, {}
    for run in runs:
        models[run.key], rows[run.key] = train_or_load(run, preset_name, train, test, tc,
                                                       out_dir / 'models', progress)
    train_cpu_s = time.process_time() - tic
    window, _ = test.batch(np.arange(1))
    window.pop('present')                      # every modality present; models differ in set
    timing = time_models(models, window, reps=bench_reps, progress=progress)
    for run in runs:
        row, model = rows[run.key], models[run.key]
        flops = count_flops(model)
        row.update(timing[run.key], gflops=flops['gflops'],
                   tokenizer_gflops=flops['tokenizer_gflops'],
                   tokens_per_layer=flops['tokens_per_layer'])
        if run.drop is None and measure_memory:
            row['peak_mem_mb'] = cpu_peak_mb({
                'preset': preset_name, 'method': run.method, 'gamma': run.gamma, 'prune': 0.0,
                'precision': 'fp32', 'threads': torch.get_num_threads()})
    ref = Run('routed', REFERENCE_GAMMA).key
    if 'V' in tables:
        rows[ref]['absent'] = {m: beam_scores(predict(models[ref], marked_absent(test, m)),
                                              test.labels) for m in base.modalities}
    cpu = device_name(torch.device('cpu'))
    where = (f'{data_note}; {len(train)} training / {len(test)} held-out windows; '
             f'{tc.epochs} epochs, lr {tc.lr:g}, batch {tc.batch_size}, seed {tc.seed}; '
             f'latency: batch 1, median of {bench_reps} round-robin runs on {cpu}')
    get = lambda *keys: [rows[k] for k in keys if k in rows]  # noqa: E731
    md = [f'## Beam prediction tables ({preset_name})', '', where, '']
    if 'II' in tables:
        md.append(table_cost(get('mha', *[Run('routed', g).key for g in gammas]),
                             "Table II: routed at each γ' vs mha"))
    scale = None
    if 'II' in tables and scale_overrides is not None:
        scale_cfg, scale = scale_latency(preset_name, tuple(gammas), reps=max(5, bench_reps // 2),
                                         progress=progress, **scale_overrides)
        md.append(table_scale(scale_cfg, scale, f"Table II (latency at N = {scale_cfg.n_tokens}): "
                              f'{preset_name} with {scale_overrides}, untrained weights, '
                              f'{max(5, bench_reps // 2)} round-robin runs'))
    if 'III' in tables:
        md.append(table_cost(get('mha', 'tome', 'mod', ref), 'Table III: vs ToMe and MoD'))
    if 'IV' in tables:
        md.append(table_ablation(get(Run('routed', ABLATION_GAMMA).key,
                                     *[Run(f'ablation{i}', ABLATION_GAMMA).key for i in (1, 2, 3)]),
                                 f"Table IV: ablations at γ'={ABLATION_GAMMA}"))
    if 'V' in tables:
        v_rows = [dict(rows[ref])] + get(*[Run('routed', REFERENCE_GAMMA, m).key
                                           for m in base.modalities])
        for r in v_rows[1:]:
            r['absent_scores'] = rows[ref]['absent'][r['removed']]
        md.append(table_modalities(v_rows, f"Table V: routed (γ'={REFERENCE_GAMMA}) with one "
                                           'modality removed'))
    md.append(f'Training: {train_cpu_s / 60:.1f} CPU-minutes in this process '
              f'({sum(r["train_seconds"] for r in rows.values()) / 60:.1f} min wall, '
              f'{torch.get_num_threads()} thread(s)); models cached in {out_dir / "models"}.\n')
    text = '\n'.join(md)
    (out_dir / 'tables.md').write_text(text)
    result = {'settings': {'preset': preset_name, 'data': data_note, 'train_windows': len(train),
                           'test_windows': len(test), 'train_config': asdict(tc),
                           'bench_reps': bench_reps, 'cpu': cpu,
                           'train_cpu_seconds': train_cpu_s},
              'rows': list(rows.values()),
              'scale_latency': scale}
    (out_dir / 'tables.json').write_text(json.dumps(result, indent=2, default=float) + '\n')
    plotted = [r for r in rows.values() if r['removed'] is None]
    plot_accuracy_latency([{**r, 'accuracy_mean': r['top3'], 'accuracy_std': 0.0}
                           for r in plotted], out_dir / 'accuracy_vs_latency.png',
                          ylabel='top-3 accuracy [%]')
    plot_keep_ratios([{**r, 'keep_ratios_mean': r['keep_ratios']} for r in plotted
                      if r['method'] == 'routed'], out_dir / 'keep_ratios.png')
    return result
