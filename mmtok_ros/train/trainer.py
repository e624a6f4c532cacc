"""Training with Eq. 19 (task loss + lambda (r_avg - gamma')^2) and evaluation.

The paper's defaults (Section IV: lr 1e-4, weight decay 0.01, batch 16) with AdamW: the decay
is decoupled and applies to the weight matrices of linear and convolution layers only, not to
norms, biases, embeddings, the CLS and ``missing`` tokens, or the keep ratios r_l (a scalar
that only scales a token or a count has no size to regularise). After training, the decision
threshold is chosen on the training windows, and the model's accuracy there is scored beside
persistence's; both go into the history.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..constants import DEFAULT_DECISION_THRESHOLD
from ..devices import resolve_device
from ..model import ModelConfig, MultiModalTransformer
from . import distributed
from .config import TrainConfig
from .dataset import WindowDataset
from .metrics import DEFAULT_MAX_FALSE_ALARMS_PER_MIN, persistence_alarm, score_predictions


def task_loss(logits: torch.Tensor, labels: torch.Tensor, pos_weight: torch.Tensor | None):
    """Binary cross-entropy for link status (n_classes 1), cross-entropy for beams."""
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], labels.float(), pos_weight=pos_weight)
    return F.cross_entropy(logits, labels.long())


_DECAYED_MODULES = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)


def parameter_groups(model: MultiModalTransformer, tc: TrainConfig) -> list[dict]:
    """AdamW groups: weight matrices of linear/conv layers at ``lr`` with ``weight_decay``;
    norms, biases, embeddings, CLS, ``missing`` and spatial tokens at ``lr`` without decay;
    the trainable keep ratios r_l (Eq. 18) in their own group at ``keep_ratio_lr``, no decay."""
    ratios = [layer.keep_ratio for layer in model.routed_layers() if layer.keep_ratio.requires_grad]
    ratio_ids = {id(p) for p in ratios}
    decayed = {id(m.weight) for m in model.modules() if isinstance(m, _DECAYED_MODULES)}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ratio_ids]
    if tc.decay_norms_and_biases:
        decay, no_decay = rest, []
    else:
        decay = [p for p in rest if id(p) in decayed]
        no_decay = [p for p in rest if id(p) not in decayed]
    groups = [{'params': decay, 'lr': tc.lr, 'weight_decay': tc.weight_decay, 'name': 'decay'},
              {'params': no_decay, 'lr': tc.lr, 'weight_decay': 0.0, 'name': 'no_decay'}]
    groups = [g for g in groups if g['params']]
    if ratios:
        groups.append({'params': ratios, 'lr': tc.keep_ratio_lr, 'weight_decay': 0.0,
                       'name': 'keep_ratios'})
    return groups


def lr_factor(step: int, *, warmup: int, total: int) -> float:
    """The learning-rate schedule: linear warm-up over ``warmup`` steps, then cosine decay to
    10 % of the peak at step ``total``."""
    return min((step + 1) / warmup, 0.1 + 0.45 * (1 + math.cos(
        math.pi * min(1.0, (step - warmup) / max(1, total - warmup)))))


def warmup_steps(tc: TrainConfig, total: int) -> int:
    return max(1, int(tc.warmup_fraction * total))


def clip_weight_gradients(groups: list[dict], max_norm: float) -> float:
    """Clip the weights' gradient norm to ``max_norm``; the keep ratios stay out of it.

    Their dL/dr_l (Eq. 18: N times one token's effect) is largest on the batches where the
    weights' gradient norm is largest too, so a shared clip would scale exactly those steps
    down and r_l would follow the quiet batches rather than their mean gradient (docs/model.md,
    "How the keep ratios are trained"). Adam needs no clip for them."""
    weights = [p for g in groups if g.get('name') != 'keep_ratios' for p in g['params']]
    return float(torch.nn.utils.clip_grad_norm_(weights, max_norm))


def epoch_rows(data: WindowDataset, tc: TrainConfig, rng: np.random.Generator,
               near: np.ndarray | None = None) -> np.ndarray:
    """The shuffled rows of one epoch: all of them, or the transition-focused draw."""
    if tc.steady_fraction >= 1.0:
        return rng.permutation(len(data))
    near = data.near_transition(tc.transition_radius) if near is None else near
    steady = np.flatnonzero(~near)
    keep = rng.choice(steady, size=int(round(tc.steady_fraction * len(steady))), replace=False)
    return rng.permutation(np.concatenate([np.flatnonzero(near), keep]))


def drop_modalities(batch: dict, p: float, generator: torch.Generator) -> dict:
    """Modality dropout: mark each (window, frame, modality) absent with probability ``p``.
    The CLS readout still has the other modalities; an all-absent frame is allowed (as live)."""
    present = batch['present']
    keep = torch.rand(present.shape, generator=generator).to(present.device) >= p
    return {**batch, 'present': present & keep}


def train_model(cfg: ModelConfig, data: WindowDataset, tc: TrainConfig = TrainConfig(), *,
                progress: bool = True, desc: str = 'train',
                init: MultiModalTransformer | None = None) -> tuple[MultiModalTransformer, dict]:
    """Train a fresh model on ``data`` (or go on training ``init``, whose config must be
    ``cfg``); returns the model (eval mode) and its history."""
    torch.manual_seed(tc.seed)
    rng = np.random.default_rng(tc.seed)
    dropout_gen = torch.Generator().manual_seed(tc.seed)
    device, _ = resolve_device(tc.device)
    ctx, device = distributed.setup(device)   # torchrun: this rank's process group and GPU
    if init is not None and init.cfg != cfg:
        raise ValueError(f'init model config differs from the training config: {init.cfg} vs {cfg}')
    model = (init if init is not None else MultiModalTransformer(cfg)).to(device).train()
    for layer in model.routed_layers():
        layer.down_pass_grad = tc.down_pass_grad
    groups = parameter_groups(model, tc)
    if tc.decay_norms_and_biases:   # the old recipe: coupled L2 (Adam's weight_decay)
        opt = torch.optim.Adam(groups, lr=tc.lr)
    else:
        opt = torch.optim.AdamW(groups, lr=tc.lr)
    near = data.near_transition(tc.transition_radius) if tc.steady_fraction < 1.0 else None
    pos_weight = None
    if cfg.n_classes == 1 and tc.balance_classes:
        # the expected class mix of one epoch (transition focus changes it)
        weight = np.ones(len(data)) if near is None else np.where(near, 1.0, tc.steady_fraction)
        positives, total = float(weight @ data.labels), float(weight.sum())
        if 0 < positives < total:
            pos_weight = torch.tensor((total - positives) / positives, device=device)
    history = {'epoch_loss': [], 'keep_ratios': [], 'keep_ratio_grad': [],
               'keep_ratio_grad_rms': [], 'keep_ratio_sign_consistency': [], 'seconds': 0.0}
    ratio_params = [layer.keep_ratio for layer in model.routed_layers()
                    if layer.keep_ratio.requires_grad]
    per_epoch = len(epoch_rows(data, tc, np.random.default_rng(0), near))
    steps = math.ceil(per_epoch / tc.batch_size)
    total_steps = tc.epochs * steps
    warmup = warmup_steps(tc, total_steps)
    hold = int(tc.keep_ratio_hold_fraction * total_steps)   # steps with r_l frozen
    history['keep_ratio_hold_steps'] = hold
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: lr_factor(i, warmup=warmup, total=total_steps))
    net = distributed.wrap(model, ctx, device)   # DDP under torchrun, else ``model``
    start = time.perf_counter()
    bar = tqdm(total=tc.epochs * steps, desc=desc, disable=not progress or not ctx.is_main,
               leave=False)
    step = 0
    for _ in range(tc.epochs):
        order = epoch_rows(data, tc, rng, near)
        total = 0.0
        ratio_grad = torch.zeros(len(ratio_params))
        ratio_grad_sq = torch.zeros(len(ratio_params))
        for i in range(steps):
            rows = order[i * tc.batch_size:(i + 1) * tc.batch_size]
            if ctx.active:   # this rank's slice of the global batch, its loss scaled for DDP
                batch, labels, scale = distributed.shard_batch(
                    data, rows, ctx, device, model,
                    partial(drop_modalities, p=tc.modality_dropout, generator=dropout_gen)
                    if tc.modality_dropout else None)
                loss = (task_loss(net(batch), labels, pos_weight) * scale
                        + model.keep_ratio_penalty())             # Eq. 19, penalty unscaled
            else:
                batch, labels = data.batch(rows, device)
                if tc.modality_dropout:
                    batch = drop_modalities(batch, tc.modality_dropout, dropout_gen)
                loss = task_loss(model(batch), labels, pos_weight) + model.keep_ratio_penalty()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for j, p in enumerate(ratio_params):  # dL/dr_l through Eq. 18 and 19, unclipped
                g = 0.0 if p.grad is None else float(p.grad)
                ratio_grad[j] += g
                ratio_grad_sq[j] += g * g
                if step < hold:
                    p.grad = None        # held: logged above, not applied (AdamW skips it)
            if tc.grad_clip:
                clip_weight_gradients(groups, tc.grad_clip)
            opt.step()
            schedule.step()
            step += 1
            total += float(loss.detach()) * len(rows)
            bar.update(1)
        total = distributed.mean_over_ranks(total, ctx)   # the global batches' loss
        history['epoch_loss'].append(total / len(order))
        history['keep_ratios'].append(model.keep_ratios().detach().cpu().tolist())
        history['keep_ratio_grad'].append((ratio_grad / steps).tolist())   # mean per step
        # mean / rms is how consistent the gradient's sign is: Adam moves r_l by about
        # lr * mean / rms per step, whatever the gradient's size
        rms = (ratio_grad_sq / steps).sqrt()
        history['keep_ratio_grad_rms'].append(rms.tolist())
        # signed mean / rms per layer: +-1 when every step pushes r_l the same way, about
        # +-1/sqrt(steps) for a gradient of random sign
        history['keep_ratio_sign_consistency'].append(
            torch.where(rms > 0, ratio_grad / steps / rms.clamp_min(1e-30),
                        torch.zeros_like(rms)).clamp(-1.0, 1.0).tolist())
        bar.set_postfix(loss=f"{history['epoch_loss'][-1]:.3f}")
    bar.close()
    history['seconds'] = time.perf_counter() - start
    history['train_config'] = asdict(tc)
    history['windows_per_s'] = tc.epochs * per_epoch / max(history['seconds'], 1e-9)
    history['torch_threads'] = torch.get_num_threads()
    history['steps_per_epoch'] = steps
    if ctx.active:
        distributed.unwrap(model)
        history['distributed'] = {'world_size': ctx.world_size, 'backend': ctx.backend}
    for layer in model.routed_layers():
        layer.down_pass_grad = True
    model.eval()
    if cfg.n_classes == 1:
        summary = distributed.from_main(lambda: training_window_scores(
            model, data, max_windows=tc.threshold_windows or 1024,
            choose=tc.threshold_windows > 0, radius=tc.transition_radius, seed=tc.seed), ctx)
        history['train_windows'] = summary
        if tc.threshold_windows > 0:
            history['decision_threshold'] = {
                'value': summary['threshold'], 'criterion': 'accuracy on training windows',
                'train_accuracy': summary['accuracy'],
                'train_accuracy_at_0.5': summary['accuracy_at_default_threshold'],
                'n_windows': summary['n_windows'], 'of_windows': summary['of_windows']}
    return model, history


def accuracy_optimal_threshold(p_blocked: np.ndarray, labels: np.ndarray,
                               weights: np.ndarray | None = None) -> tuple[float, float]:
    """(threshold, weighted accuracy): the grid threshold 0.01 ... 0.99 that classifies the
    windows best (predicted blocked when p >= threshold); among equally good thresholds the
    middle one, so that a plateau does not push the decision to its edge."""
    weights = np.ones(len(labels)) if weights is None else np.asarray(weights, float)
    grid = np.round(np.arange(0.01, 1.0, 0.01), 2)
    correct = ((p_blocked[None, :] >= grid[:, None]) == (labels[None, :] == 1))   # (G, W)
    accuracy = (correct * weights).sum(1) / weights.sum()
    best = np.flatnonzero(accuracy >= accuracy.max() - 1e-12)
    i = best[len(best) // 2]
    return float(grid[i]), float(accuracy[i])


def training_window_sample(data: WindowDataset, *, max_windows: int, radius: int = 3,
                           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rows, weights): every window near a label change and a random sample of the steady
    ones, weighted back to their share, so that at most ``max_windows`` windows (plus the
    near ones) cost an inference pass."""
    rows, weights = np.arange(len(data)), np.ones(len(data))
    if len(data) > max_windows:
        near = data.near_transition(radius)
        steady = np.flatnonzero(~near)
        n_steady = max(1, min(len(steady), max_windows - int(near.sum())))
        keep = np.random.default_rng(seed).choice(steady, size=n_steady, replace=False)
        rows = np.concatenate([np.flatnonzero(near), keep])
        weights = np.concatenate([np.ones(int(near.sum())), np.full(n_steady,
                                                                     len(steady) / n_steady)])
    return rows, weights


def persistence_prediction(data: WindowDataset) -> np.ndarray:
    """(W,) bool in ``data``'s row order: the link is blocked now (the previous window of the
    scenario has a blocked next frame), persistence's prediction of any horizon's label."""
    order = np.lexsort((data.newest_stamp_ns, data.groups))
    out = np.zeros(len(data), bool)
    out[order] = persistence_alarm(data.next_frame_labels()[order], data.groups[order])
    return out


def training_window_scores(model: MultiModalTransformer, data: WindowDataset, *,
                           max_windows: int, choose: bool = True, radius: int = 3,
                           seed: int = 0) -> dict:
    """The model on (training) windows beside persistence and always-clear, all weighted
    accuracies on the sample of ``training_window_sample``; ``choose``: the decision threshold
    is the one that classifies the sample best, else the default."""
    rows, weights = training_window_sample(data, max_windows=max_windows, radius=radius,
                                           seed=seed)
    sub = data.subset(rows)
    labels = sub.labels == 1
    p_blocked = torch.sigmoid(torch.from_numpy(predict(model, sub)[:, 0])).numpy()

    def accuracy(pred):
        return float(((pred == labels) * weights).sum() / weights.sum())

    if choose:
        threshold, _ = accuracy_optimal_threshold(p_blocked, sub.labels, weights)
    else:
        threshold = DEFAULT_DECISION_THRESHOLD
    return {'threshold': threshold, 'accuracy': accuracy(p_blocked >= threshold),
            'accuracy_at_default_threshold': accuracy(p_blocked >= DEFAULT_DECISION_THRESHOLD),
            'persistence_accuracy': accuracy(persistence_prediction(data)[rows]),
            'always_clear_accuracy': accuracy(np.zeros(len(rows), bool)),
            'n_windows': int(len(rows)), 'of_windows': int(len(data))}


def choose_threshold(model: MultiModalTransformer, data: WindowDataset, *, max_windows: int,
                     radius: int = 3, seed: int = 0) -> dict:
    """The decision threshold chosen on (training) windows (``training_window_scores``)."""
    s = training_window_scores(model, data, max_windows=max_windows, radius=radius, seed=seed)
    return {'value': s['threshold'], 'criterion': 'accuracy on training windows',
            'train_accuracy': s['accuracy'],
            'train_accuracy_at_0.5': s['accuracy_at_default_threshold'],
            'n_windows': s['n_windows'], 'of_windows': s['of_windows']}


@torch.no_grad()
def predict(model: MultiModalTransformer, data: WindowDataset, *, batch_size: int = 16) -> np.ndarray:
    """Logits (W, n_classes) for every window of ``data``."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    for i in range(0, len(data), batch_size):
        batch, _ = data.batch(np.arange(i, min(i + batch_size, len(data))), device)
        out.append(model(batch).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.cfg.n_classes))


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion. Windows of one scenario overlap in four of
    five frames, so they are not independent: read it as a lower bound on the uncertainty."""
    if n == 0:
        return float('nan'), float('nan')
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def onset_scores(data: WindowDataset, pred: np.ndarray) -> dict:
    """What a proactive handover needs, beyond accuracy (which persistence already wins when
    blockages start abruptly): of the windows whose next frame is the FIRST blocked one
    (the previous window of the same scenario was labelled clear), how many were predicted
    blocked, i.e. the blockage was announced one frame ahead."""
    order, onset = data.onset_order()
    n = int(onset.sum())
    hits = int((pred[order][onset] == 1).sum())
    return {'onsets': n, 'onsets_predicted': hits,
            'onset_recall': hits / n if n else float('nan')}


def evaluate(model: MultiModalTransformer, data: WindowDataset, *, batch_size: int = 16,
             threshold: float = DEFAULT_DECISION_THRESHOLD, horizon: int = 1,
             max_false_alarms_per_min: float = DEFAULT_MAX_FALSE_ALARMS_PER_MIN,
             metrics: str = 'proactive', keep_predictions: bool = False) -> dict:
    """Accuracy (and blocked-class precision/recall, or top-k for beams) on ``data``; a window
    is predicted blocked when p_blocked >= ``threshold`` (the node's ``blocked_threshold``).

    Link status also gets the metrics of ``metrics.py`` (AUROC, onset recall ahead, lead time,
    false alarms by the ``metrics`` definition and late all-clears per minute of clear link,
    onset recall at a fixed false-alarm rate), the node's decision (model OR reactive floor)
    and the persistence and always-clear baselines. ``horizon`` H > 1: accuracy, precision,
    recall and AUROC are against 'blocked within the next H frames'. ``keep_predictions``:
    also return the time-ordered p_blocked, labels and groups (``predictions``), from which
    ``rescore`` computes the scores again under another definition."""
    logits = predict(model, data, batch_size=batch_size)
    labels = data.labels
    if logits.shape[1] == 1:
        p_blocked = torch.sigmoid(torch.from_numpy(logits[:, 0])).numpy()  # as node, emulate
        order, sorted_labels, groups, _ = data._in_time_order()
        extra = score_predictions(p_blocked[order], sorted_labels, groups, threshold=threshold,
                                  horizon=horizon, definition=metrics,
                                  max_false_alarms_per_min=max_false_alarms_per_min)
        if keep_predictions:
            extra['predictions'] = {'p_blocked': np.round(p_blocked[order], 6).tolist(),
                                    'labels': sorted_labels.tolist(), 'groups': groups.tolist(),
                                    'max_false_alarms_per_min': max_false_alarms_per_min}
        target = horizon_labels_in_row_order(data, horizon)
        return {**_binary_scores(p_blocked >= threshold, target), 'threshold': threshold,
                **onset_scores(data, (p_blocked >= threshold).astype(np.float32)), **extra}
    ranked = np.argsort(-logits, axis=1)
    result = {'n': int(len(labels))}
    for k in (1, 3, 5):
        result[f'top{k}'] = float((ranked[:, :k] == labels[:, None]).any(1).mean())
    result['accuracy'] = result['top1']
    return result


def horizon_labels_in_row_order(data: WindowDataset, horizon: int) -> np.ndarray:
    from .metrics import horizon_labels
    order, sorted_labels, groups, _ = data._in_time_order()
    labels = np.empty_like(sorted_labels)
    labels[order] = horizon_labels(sorted_labels, groups, horizon)
    return labels


def _binary_scores(alarm: np.ndarray, labels: np.ndarray) -> dict:
    pred = alarm.astype(np.float32)
    tp = float(((pred == 1) & (labels == 1)).sum())
    correct = int((pred == labels).sum())
    return {'n': int(len(labels)),
            'accuracy': correct / len(labels) if len(labels) else float('nan'),
            'accuracy_ci95_wilson': wilson_interval(correct, len(labels)),
            'precision_blocked': tp / max(1.0, float(pred.sum())),
            'recall_blocked': tp / max(1.0, float(labels.sum())),
            'blocked_fraction': float(labels.mean()) if len(labels) else float('nan')}


def rescore(result: dict, metrics: str) -> dict | None:
    """``result`` of ``evaluate(keep_predictions=True)`` scored under the false-alarm
    definition ``metrics``; None when it carries no predictions."""
    kept = result.get('predictions')
    if kept is None:
        return None
    if result.get('false_alarm_definition', 'legacy') == metrics:
        return result
    scores = score_predictions(np.asarray(kept['p_blocked']), np.asarray(kept['labels']),
                               np.asarray(kept['groups']), threshold=result['threshold'],
                               horizon=result['label_horizon_frames'], definition=metrics,
                               max_false_alarms_per_min=kept['max_false_alarms_per_min'])
    return {**result, **scores}
