"""Model files: weights plus the config that rebuilds them, loaded with ``weights_only=True``.

A model file is a plain dict of tensors and primitives, so loading it never runs code. Each
way a file can be wrong has its own error with a message that names the file.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from ..constants import DEFAULT_DECISION_THRESHOLD
from ..errors import MmtokError
from .config import ModelConfig
from .transformer import MultiModalTransformer

FORMAT = 'mmtok_ros.model/1'


class ModelFileError(MmtokError, RuntimeError):
    """A model file is missing, unreadable, or does not match the architecture it claims."""


def save_model(path: str | os.PathLike, model: MultiModalTransformer, *, meta: dict | None = None) -> Path:
    """Write ``model`` (weights + config + ``meta``) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {'format': FORMAT, 'config': model.cfg.to_dict(),
               'state_dict': {k: v.detach().cpu() for k, v in model.state_dict().items()},
               'meta': dict(meta or {})}
    tmp = path.with_suffix(path.suffix + '.tmp')
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_model_file(path: str | os.PathLike) -> dict:
    """The raw payload of a model file, validated; raises :class:`ModelFileError`."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f'model file not found: {path}')
    try:
        payload = torch.load(path, map_location='cpu', weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as err:
        raise ModelFileError(f'cannot read model file {path}: corrupt or not a torch file '
                             f'({type(err).__name__}: {str(err).splitlines()[0][:200]})') from None
    if not isinstance(payload, dict) or payload.get('format') != FORMAT:
        raise ModelFileError(f'{path} is not an mmtok_ros model file (expected format {FORMAT!r})')
    return payload


def load_model(path: str | os.PathLike, *, device: str | torch.device = 'cpu',
               overrides: dict | None = None) -> tuple[MultiModalTransformer, dict]:
    """Rebuild the model a file describes, in eval mode on ``device``; returns (model, meta).

    ``overrides`` may change run-time settings such as ``target_keep_ratio`` but not the
    architecture.
    """
    payload = read_model_file(path)
    try:
        cfg = ModelConfig.from_dict({**payload['config'], **(overrides or {})})
    except (TypeError, ValueError) as err:
        raise ModelFileError(f'{path}: invalid model config: {err}') from None
    model = MultiModalTransformer(cfg)
    try:
        model.load_state_dict(payload['state_dict'], strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[:3]
        raise ModelFileError(f'{path}: weights do not match the {cfg.preset}/{cfg.method} '
                             f'architecture: {" ".join(first)[:400]}') from None
    meta = dict(payload.get('meta', {}))
    # the threshold chosen in training (the default for files without one), for the node
    # and evaluate
    model.decision_threshold = decision_threshold(meta, path)
    return model.to(device).eval(), meta


def decision_threshold(meta: dict, path: str | os.PathLike = '<meta>') -> float:
    """The decision threshold a model file carries (``meta['decision_threshold']``, chosen on
    its training windows by ``mmtok train``), or ``DEFAULT_DECISION_THRESHOLD`` for files
    without one. The node's explicit ``blocked_threshold`` parameter overrides it."""
    value = meta.get('decision_threshold', DEFAULT_DECISION_THRESHOLD)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ModelFileError(f'{path}: decision_threshold {value!r} is not a number') from None
    if not 0.0 < value <= 1.0:
        raise ModelFileError(f'{path}: decision_threshold {value} is outside (0, 1]')
    return value
