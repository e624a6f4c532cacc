"""The shipped model files and the one rule for choosing a model file (imports no torch).

A tool or node given a file uses it (and says so when it is missing); given none, it uses the
shipped file of that method, found in the installed package's share directory when ament
knows the package, else in the source tree's ``models/``; without one, the caller falls back
(``mmtok bench --e2e``: untrained weights, enough for latency; ``mmtok demo``: a quick model).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputFileNotFoundError, UserInputError

SHIPPED_MODELS = {'routed': 'handover_rsu_cpu_g40.pt', 'mha': 'handover_rsu_cpu_mha.pt'}
SHIPPED_MODEL = SHIPPED_MODELS['routed']     # the node's default


def shipped_model_path(method: str = 'routed') -> Path:
    """Where the shipped model of ``method`` is (the file may be absent)."""
    try:
        name = SHIPPED_MODELS[method]
    except KeyError:
        raise UserInputError(f'no shipped model for method {method!r}; have '
                         f'{sorted(SHIPPED_MODELS)}') from None
    try:
        from ament_index_python.packages import (PackageNotFoundError,
                                                 get_package_share_directory)
        try:
            candidate = Path(get_package_share_directory('mmtok_ros')) / 'models' / name
            if candidate.is_file():
                return candidate
        except (PackageNotFoundError, ValueError, KeyError, OSError):  # OSError: no ament env
            pass
    except ImportError:
        pass
    return Path(__file__).resolve().parents[2] / 'models' / name


def default_model_path() -> str:
    """The node's model when ``model_path`` is empty: the shipped routed model."""
    return str(shipped_model_path('routed'))


def choose_model_file(explicit: str | Path | None, method: str) -> Path | None:
    """``explicit`` (it must exist: FileNotFoundError), else the shipped file of ``method``
    if present, else None (the caller's fallback)."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise InputFileNotFoundError(f'model file not found: {path}')
        return path
    shipped = shipped_model_path(method)
    return shipped if shipped.is_file() else None


__all__ = ['SHIPPED_MODEL', 'SHIPPED_MODELS', 'choose_model_file', 'default_model_path',
           'shipped_model_path']
