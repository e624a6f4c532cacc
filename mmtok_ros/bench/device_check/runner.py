"""The run of the device check: time budgets (nested, on SIGALRM), the progress lines, and
the results written out after every part (``device_check.json``, ``.md`` and ``.log``), so a
part that fails or runs long never loses what the others measured."""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from ..device_report import summary_markdown
from .ros_guard import RosImportBlocker, ros_modules_loaded

FORMAT = 'mmtok_ros.device_check/1'
PARTS = ('env', 'parity', 'table7', 'bench', 'streaming', 'onnx', 'capture')
# seconds per part on a GPU machine (the whole run is also cut at --budget-s)
BUDGET_S = {'env': 20, 'parity': 45, 'table7': 75, 'bench': 75, 'streaming': 180, 'onnx': 60,
            'capture': 45}
DEFAULT_BUDGET_S = 450          # 7.5 min: the script's 8 minutes less start-up


class PartTimeout(Exception):
    """A part (or a guarded step inside one) ran past its time budget."""


class Deadlines:
    """Nested time limits on SIGALRM: the innermost deadline that comes first raises
    :class:`PartTimeout` in the main thread."""

    def __init__(self) -> None:
        self.stack: list[float] = []
        signal.signal(signal.SIGALRM, self._fire)

    @staticmethod
    def _fire(signum, frame):
        raise PartTimeout('time budget spent')

    def _arm(self) -> None:
        if self.stack:
            signal.setitimer(signal.ITIMER_REAL, max(0.01, self.stack[-1] - time.monotonic()))
        else:
            signal.setitimer(signal.ITIMER_REAL, 0)

    @contextlib.contextmanager
    def limit(self, seconds: float):
        end = time.monotonic() + max(0.01, seconds)
        self.stack.append(min(end, self.stack[-1]) if self.stack else end)
        self._arm()
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.stack.pop()
            self._arm()

    def left(self) -> float:
        return self.stack[-1] - time.monotonic() if self.stack else float('inf')


def error_text(err: BaseException) -> str:
    """One line for the JSON: the exception's type and the first line of its message."""
    text = str(err).strip().splitlines()
    return f'{type(err).__name__}: {text[0][:300] if text else ""}'


def _jsonable(value):
    import numpy as np
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


class Check:
    """The run: options, the results, the output files, progress lines; the device, the
    held-out windows and the shipped models once loaded (``inputs.py``)."""

    def __init__(self, args) -> None:
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.log_file = open(self.out / 'device_check.log', 'a', buffering=1)
        self.t0 = time.monotonic()
        self.deadlines = Deadlines()
        self.blocker: RosImportBlocker | None = None
        self.results = {'format': FORMAT, 'started_utc': _dt.datetime.now(
            _dt.timezone.utc).isoformat(timespec='seconds'), 'argv': sys.argv[1:],
            'dry': bool(args.dry), 'device': args.device, 'budget_s': args.budget_s,
            'parts': {}}
        self.device = None
        self.windows = None
        self.models = {}       # method -> (cpu model, device model, file)
        self.cpu_p = {}        # method -> (rows, CPU fp32 probabilities on the held-out windows)

    def say(self, text: str) -> None:
        line = f'[device_check {time.monotonic() - self.t0:6.1f}s] {text}'
        print(line, flush=True)
        self.log_file.write(line + '\n')

    def save(self) -> None:
        self.results['elapsed_s'] = round(time.monotonic() - self.t0, 1)
        self.results['ros_modules_loaded'] = ros_modules_loaded()
        if self.blocker is not None:
            self.results['ros_imports_blocked'] = sorted(set(self.blocker.attempts))
        tmp = self.out / 'device_check.json.tmp'
        tmp.write_text(json.dumps(self.results, indent=2, default=_jsonable) + '\n')
        os.replace(tmp, self.out / 'device_check.json')
        (self.out / 'device_check.md').write_text(summary_markdown(self.results))

    # sizes: the full run on a GPU, tiny in --dry
    def reps_for(self, full: int) -> int:
        """Timed repetitions: ``--reps``, else 2 in a dry run, else ``full``."""
        return self.args.reps or (2 if self.args.dry else full)

    @property
    def reps(self) -> int:
        return self.reps_for(50)

    @property
    def warmup(self) -> int:
        return 1 if self.args.dry else 10

    def run_part(self, name: str, fn) -> None:
        budget = self.args.part_budget.get(name, BUDGET_S[name])
        left = self.args.budget_s - (time.monotonic() - self.t0)
        entry = {'status': 'running', 'budget_s': budget}
        self.results['parts'][name] = entry
        if left < 5:
            entry.update(status='skipped', error=f'out of time ({left:.0f} s of the run left)')
            self.say(f'{name}: skipped (out of time)')
            self.save()
            return
        budget = min(budget, left)
        result: dict = {}
        entry['result'] = result
        self.say(f'{name}: start (budget {budget:.0f} s)')
        tic = time.monotonic()
        try:
            with self.deadlines.limit(budget):
                fn(self, result)
            entry['status'] = 'ok'
        except PartTimeout:
            entry.update(status='timeout', error=f'past its budget of {budget:.0f} s; '
                                                 'results so far are kept')
        except Exception as err:  # noqa: BLE001 - one part never stops the others
            entry.update(status='failed', error=error_text(err),
                         traceback=traceback.format_exc(limit=8)[-3000:])
        entry['seconds'] = round(time.monotonic() - tic, 1)
        self.say(f"{name}: {entry['status']} in {entry['seconds']} s"
                 + (f" ({entry['error']})" if entry.get('error') else ''))
        self.save()

    def guarded(self, result: dict, key: str, seconds: float, fn):
        """One step inside a part with its own (shorter) budget; a failure is recorded under
        ``result[key]`` and the part goes on. Returns fn's value or None."""
        tic = time.monotonic()
        try:
            with self.deadlines.limit(seconds):
                value = fn()
            return value
        except PartTimeout:
            result[key] = {'status': 'timeout', 'error': f'past {seconds:.0f} s',
                           'seconds': round(time.monotonic() - tic, 1)}
        except Exception as err:  # noqa: BLE001
            result[key] = {'status': 'failed', 'error': error_text(err),
                           'traceback': traceback.format_exc(limit=6)[-2000:],
                           'seconds': round(time.monotonic() - tic, 1)}
        self.say(f"  {key}: {result[key]['status']} ({result[key]['error']})")
        self.save()
        return None

    def rest_of_part(self) -> float:
        """A guarded step's budget when it may use what is left of the part."""
        return max(5.0, self.deadlines.left() - 1)
