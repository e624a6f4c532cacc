"""The training recipe as one dataclass (plain Python, no torch): its defaults are the only
place a training default is written, and ``mmtok train`` / ``mmtok report`` build their
options from it (``cli_options``).

Each field that is a command-line option carries its flag and help text in its metadata:
``flag`` (the option), ``help``, and for options that are not plain values ``action``
(``store_true``/``store_false``) or ``choices`` (option value -> field value).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..errors import UserInputError


def _opt(default, flag: str, help: str, **extra):
    return field(default=default, metadata={'flag': flag, 'help': help, **extra})


@dataclass
class TrainConfig:
    """Eq. 19 training with AdamW; the paper's Section IV values where it gives one."""

    epochs: int = _opt(20, '--epochs', 'passes over the training windows')
    batch_size: int = _opt(16, '--batch-size', 'windows per optimiser step (the paper: 16)')
    lr: float = _opt(1e-4, '--lr', 'peak learning rate of the weights (the paper: 1e-4)')
    weight_decay: float = _opt(0.01, '--weight-decay', 'decoupled weight decay (AdamW)')
    # Adam with coupled L2 on every parameter: the optimiser of the first model files
    decay_norms_and_biases: bool = _opt(
        False, '--coupled-weight-decay',
        'Adam with L2 on every parameter (default: AdamW, decay on linear/conv weight '
        'matrices only)', action='store_true')
    # r_l's own learning rate (beyond the paper, which trains r_l with everything else): Adam
    # moves a parameter by about its learning rate per step, so at the weights' rate a keep
    # ratio cannot leave its initial value in a few hundred steps. No weight decay.
    keep_ratio_lr: float = _opt(
        2e-3, '--keep-ratio-lr',
        'learning rate of the keep ratios r_l (their own group, no weight decay; beyond the '
        'paper, which uses --lr for them too)')
    # r_l frozen for this fraction of the optimiser steps (beyond the paper; 0: trained from
    # the first step): dL/dr_l of an untrained model says little about which layer needs
    # tokens, so the weights and routers settle at the initial K first.
    keep_ratio_hold_fraction: float = _opt(
        0.0, '--keep-ratio-hold',
        'fraction of the optimiser steps during which r_l stay at their initial value '
        '(their gradient is still logged; 0: the paper)')
    seed: int = 0
    device: str | None = None          # None: CUDA when available, else CPU
    balance_classes: bool = _opt(
        True, '--no-class-weight',
        "plain BCE (default: the blocked class weighted by the epoch's negatives/positives)",
        action='store_false')
    grad_clip: float = 1.0             # gradient-norm clip of the weights (0: off); r_l are not in it
    warmup_fraction: float = 0.05      # linear warm-up, then cosine decay to 10 % of lr
    # Transition focus (beyond the paper): each epoch keeps every window within
    # ``transition_radius`` windows of a label change and only ``steady_fraction`` of the
    # others (a fresh random draw per epoch). Persistence already explains the steady windows;
    # the steps go where a proactive handover is decided.
    steady_fraction: float = _opt(
        1.0, '--steady-fraction',
        'per epoch, keep every window near a blockage onset/end and only this fraction of the '
        'steady ones (1: all windows, the paper protocol)')
    transition_radius: int = 3
    # Lead-in (beyond the paper): the transition focus also keeps this many windows before
    # each change to blocked. An alarm raised many frames before a blockage is a false alarm
    # of the H-frame label, and those clear windows with a blocker on its way are otherwise
    # drawn at ``steady_fraction`` only. 0: the radius alone.
    transition_lead_in: int = _opt(
        0, '--lead-in-windows',
        'with --steady-fraction < 1, also keep every one of this many windows before a change '
        'to blocked (the clear windows an early alarm gets wrong; 0: only the 3 windows of '
        'the transition radius)')
    # Onset weight (beyond the paper): the loss weight of the windows whose link is clear now
    # and blocked within the label horizon. They are the windows a proactive handover is
    # decided on and persistence gets wrong, a few per blockage among hundreds of steady ones.
    onset_weight: float = _opt(
        1.0, '--onset-weight',
        'loss weight of the windows whose link is clear now and blocked within the label '
        'horizon (the ones a proactive handover needs; 1: every window alike, the paper)')
    # Modality dropout (beyond the paper): each frame's modality is marked absent with this
    # probability, so the learned ``missing`` token is trained and a silent sensor degrades
    # the prediction instead of wrecking it. 0: off.
    modality_dropout: float = _opt(
        0.0, '--modality-dropout',
        "probability that a frame's modality is marked absent in training")
    # Eq. 18's K_down pass with autograd (the paper). False: that pass runs without autograd;
    # output and dL/dr_l are unchanged, the weights get the K_up pass's gradient, and the
    # backward pass of the second forward pass is saved (``RoutedLayer.down_pass_grad``).
    down_pass_grad: bool = _opt(
        True, '--eq18-down-pass',
        "Eq. 18's K_down pass with autograd (grad, the paper) or without (no-grad: same output "
        'and dL/dr_l, cheaper per routed step)', choices={'grad': True, 'no-grad': False})
    # Decision threshold: the p_blocked at which the training windows are classified best
    # (accuracy), chosen after training on at most this many training windows (all windows near
    # a label change plus a weighted sample of the steady ones); 0: keep the default threshold.
    threshold_windows: int = _opt(
        1024, '--threshold-windows',
        'training windows used to choose the decision threshold written into the model file '
        '(0: keep the default threshold); also the sample of the training-window summary')

    def __post_init__(self) -> None:
        if not 0.0 < self.steady_fraction <= 1.0:
            raise UserInputError(f'steady_fraction must be in (0, 1], got {self.steady_fraction}')
        if not 0.0 <= self.modality_dropout < 1.0:
            raise UserInputError(f'modality_dropout must be in [0, 1), got {self.modality_dropout}')
        if self.transition_lead_in < 0:
            raise UserInputError(f'lead-in windows must be >= 0, got {self.transition_lead_in}')
        if self.onset_weight <= 0:
            raise UserInputError(f'onset_weight must be positive, got {self.onset_weight}')
        if self.keep_ratio_lr <= 0:
            raise UserInputError(f'keep_ratio_lr must be positive, got {self.keep_ratio_lr}')
        if not 0.0 <= self.keep_ratio_hold_fraction < 1.0:
            raise UserInputError('keep_ratio_hold_fraction must be in [0, 1), got '
                             f'{self.keep_ratio_hold_fraction}')


def add_cli_options(parser, cls=TrainConfig) -> None:
    """One option per field of ``cls`` that names a ``flag``, its default the field's."""
    defaults = cls()
    for f in fields(cls):
        meta = f.metadata
        if 'flag' not in meta:
            continue
        default = getattr(defaults, f.name)
        if 'action' in meta:
            parser.add_argument(meta['flag'], dest=f.name, action=meta['action'], help=meta['help'])
        elif 'choices' in meta:
            current = next(k for k, v in meta['choices'].items() if v == default)
            parser.add_argument(meta['flag'], dest=f.name, choices=tuple(meta['choices']),
                                default=current, help=f"{meta['help']} (default: {current})")
        else:
            parser.add_argument(meta['flag'], dest=f.name, type=type(default), default=default,
                                help=f"{meta['help']} (default: {default:g})"
                                if isinstance(default, float) else f"{meta['help']} "
                                f'(default: {default})')


def from_cli(args, cls=TrainConfig, **extra):
    """The dataclass from the parsed options of ``add_cli_options`` plus ``extra`` fields."""
    values = {}
    for f in fields(cls):
        if 'flag' in f.metadata and hasattr(args, f.name):
            value = getattr(args, f.name)
            values[f.name] = f.metadata['choices'][value] if 'choices' in f.metadata else value
    return cls(**{**values, **extra})


__all__ = ['TrainConfig', 'add_cli_options', 'from_cli']
