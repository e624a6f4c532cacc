"""Training with Eq. 19 (task loss + lambda (r_avg - gamma')^2).

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

from ..devices import resolve_device
from ..errors import UserInputError
from ..model import ModelConfig, MultiModalTransformer
from . import distributed
from .config import TrainConfig
from .dataset import WindowDataset
from .evaluation import persistence_prediction, training_window_scores


def task_loss(logits: torch.Tensor, labels: torch.Tensor, pos_weight: torch.Tensor | None,
              weight: torch.Tensor | None = None):
    """Binary cross-entropy for link status (n_classes 1; ``weight``: per window, scaled by
    the caller to a mean of 1 over the global batch), cross-entropy for beams."""
    if logits.shape[1] == 1:
        losses = F.binary_cross_entropy_with_logits(logits[:, 0], labels.float(),
                                                    pos_weight=pos_weight, reduction='none')
        return losses.mean() if weight is None else (losses * weight).mean()
    return F.cross_entropy(logits, labels.long())


def onset_window_weights(data: WindowDataset, onset_weight: float) -> np.ndarray | None:
    """(W,) loss weights: ``onset_weight`` for the windows whose link is clear now and
    blocked within the label horizon (a proactive handover's windows), 1 elsewhere; None
    when every window weighs 1."""
    if onset_weight == 1.0:
        return None
    ahead = (data.labels == 1) & ~persistence_prediction(data)
    return np.where(ahead, onset_weight, 1.0).astype(np.float32)


def batch_weights(window_weight: np.ndarray | None, rows: np.ndarray, bounds: tuple[int, int],
                  device) -> torch.Tensor | None:
    """The loss weights of the slice ``bounds`` of the global batch ``rows``, scaled to a
    mean of 1 over the global batch; None without window weights or for an empty slice (a
    padding window, whose loss scale is 0)."""
    lo, hi = bounds
    if window_weight is None or hi <= lo:
        return None
    w = window_weight[rows]
    return torch.from_numpy(w[lo:hi] * (len(rows) / w.sum())).to(device)


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
    if near is None:
        near = data.near_transition(tc.transition_radius, tc.transition_lead_in)
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
        raise UserInputError(f'init model config differs from the training config: {init.cfg} vs {cfg}')
    model = (init if init is not None else MultiModalTransformer(cfg)).to(device).train()
    for layer in model.routed_layers():
        layer.down_pass_grad = tc.down_pass_grad
    groups = parameter_groups(model, tc)
    if tc.decay_norms_and_biases:   # the old recipe: coupled L2 (Adam's weight_decay)
        opt = torch.optim.Adam(groups, lr=tc.lr)
    else:
        opt = torch.optim.AdamW(groups, lr=tc.lr)
    near = (data.near_transition(tc.transition_radius, tc.transition_lead_in)
            if tc.steady_fraction < 1.0 else None)
    window_weight = onset_window_weights(data, tc.onset_weight) if cfg.n_classes == 1 else None
    pos_weight = None
    if cfg.n_classes == 1 and tc.balance_classes:
        # the expected class mix of one epoch (transition focus changes it)
        weight = np.ones(len(data)) if near is None else np.where(near, 1.0, tc.steady_fraction)
        if window_weight is not None:
            weight = weight * window_weight
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
                weight = batch_weights(window_weight, rows,
                                       distributed.shard_bounds(len(rows), ctx), device)
                loss = (task_loss(net(batch), labels, pos_weight, weight) * scale
                        + model.keep_ratio_penalty())             # Eq. 19, penalty unscaled
            else:
                batch, labels = data.batch(rows, device)
                if tc.modality_dropout:
                    batch = drop_modalities(batch, tc.modality_dropout, dropout_gen)
                weight = batch_weights(window_weight, rows, (0, len(rows)), device)
                loss = (task_loss(model(batch), labels, pos_weight, weight)
                        + model.keep_ratio_penalty())
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
