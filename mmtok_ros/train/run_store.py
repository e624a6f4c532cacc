"""One JSON file per cross-validation run (method, gamma', fold, seed), so that a long report
survives an interruption and several processes can share its runs.

A run is reused only when its key (model config, training config, label horizon, split, test
scenarios) is the one asked for now; otherwise it is trained again. A process *claims* a run
before training it (a ``.claim`` file created exclusively, holding its pid), and other processes
skip claimed runs; a claim whose process is gone is taken over. Written by hand: this is a few
lines of ``os.open(O_EXCL)`` and atomic renames, no library does just this.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def run_name(method: str, gamma: float | None, fold: int, seed: int) -> str:
    return f"{method}{'' if gamma is None else f'_g{gamma:g}'}_fold{fold}_seed{seed}"


def run_key(**parts) -> str:
    """A short digest of everything that decides a run's result."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value):
    """numpy arrays and scalars as JSON lists and numbers."""
    return value.tolist() if hasattr(value, 'tolist') else float(value)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunStore:
    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def _result(self, name: str) -> Path:
        return self.dir / f'{name}.json'

    def _claim(self, name: str) -> Path:
        return self.dir / f'{name}.claim'

    def load(self, name: str, key: str) -> dict | None:
        """The stored result of ``name`` if it was run with ``key``, else None."""
        path = self._result(name)
        try:
            stored = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return stored['result'] if stored.get('key') == key else None

    def claim(self, name: str) -> bool:
        """True if this process may train ``name`` now (nobody alive is training it)."""
        path = self._claim(name)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(path.read_text().strip() or 0)
                except (FileNotFoundError, ValueError):
                    pid = 0
                if pid == os.getpid():
                    return True
                if pid and _alive(pid):
                    return False
                path.unlink(missing_ok=True)   # its process is gone: take the run over
                continue
            with os.fdopen(fd, 'w') as f:
                f.write(str(os.getpid()))
            return True
        return False

    def save(self, name: str, key: str, result: dict) -> None:
        tmp = self.dir / f'.{name}.{os.getpid()}.tmp'
        tmp.write_text(json.dumps({'key': key, 'result': result}, indent=1, default=_plain) + '\n')
        tmp.replace(self._result(name))
        self._claim(name).unlink(missing_ok=True)

    def release(self, name: str) -> None:
        """Give a claimed run back without a result (training failed or was interrupted)."""
        path = self._claim(name)
        try:
            if int(path.read_text().strip() or 0) == os.getpid():
                path.unlink()
        except (FileNotFoundError, ValueError):
            pass
