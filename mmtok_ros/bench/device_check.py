"""The prepared device check: everything this project wants to know from a GPU machine lent
for a few minutes, in one run (``tools/device_check.sh``; docs/gpu.md says how to run it).

Parts, each with its own time budget and try/except, so one failure never loses the others'
results; the JSON is rewritten after every part (and inside the long ones):

``env``        versions, the GPU, onnxruntime's providers, TF32 settings.
``parity``     the shipped routed and mha models on the device against CPU on the same
               held-out windows: logits within ``--tolerance``, decisions equal.
``table7``     fp32, fp16, bf16 (autocast, routers in fp32: ``model.compress``) and 50 %
               structured pruning of both shipped models: accuracy on the held-out windows,
               batch-1 window latency, peak memory (``torch.cuda.max_memory_allocated``); for
               the routed model also fp32 with K fixed once (``set_keep_override(1.0)``).
``bench``      ``mmtok bench`` (``timing.benchmark_methods``) on paper-handover and rsu-cpu,
               routed gamma'=0.4 against mha, fp32 and bf16.
``streaming``  the node's per-frame work (one new frame tokenized + the transformer on cached
               tokens, batch 1): p50 of the eager ``StreamingPredictor`` as is and with K
               fixed once, CUDA graphs and ``torch.compile`` (each guarded), and the number
               of device-to-host syncs one window's transformer makes.
``onnx``       the exported graphs (``model.export``) under onnxruntime's CUDA execution
               provider where this onnxruntime has it, said plainly where not.
``capture``    CUDA-graph capture of the routed model as it is (K read from the device in
               every layer), in a child process: a failed capture can poison the CUDA
               context, so it never runs in this one.

Held-out windows: ``bench/heldout.py`` (a small committed file). Nothing here imports ROS;
``--forbid-ros`` (the script's default) makes any attempt an ImportError and the JSON lists
the attempts. ``--device cuda`` on a machine without CUDA exits 2 with one line.
``--dry``: tiny sizes for a CPU (``make test`` runs it with ``--device cpu``).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as _dt
import importlib.abc
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .device_report import summary_markdown

FORMAT = 'mmtok_ros.device_check/1'
PARTS = ('env', 'parity', 'table7', 'bench', 'streaming', 'onnx', 'capture')
# seconds per part on a GPU machine (the whole run is also cut at --budget-s)
BUDGET_S = {'env': 20, 'parity': 45, 'table7': 75, 'bench': 75, 'streaming': 180, 'onnx': 60,
            'capture': 45}
DEFAULT_BUDGET_S = 450          # 7.5 min: the 8 minutes less start-up
ROS_MODULES = ('rclpy', 'rosbags', 'mmtok_msgs', 'ament_index_python', 'rosidl_runtime_py',
               'rosidl_parser', 'rclpy_message_converter', 'launch', 'launch_ros', 'rosbag2_py',
               'rmw', 'rpyutils')
PRUNE = 0.5                    # the paper's 50 % structured sparsity (Tables IX/X)
LOGIT_TOL = 2e-3               # |logit(device) - logit(CPU)|, strict fp32 (TF32 off)


class PartTimeout(Exception):
    """A part (or a guarded step inside one) ran past its time budget."""


class RosImportBlocker(importlib.abc.MetaPathFinder):
    """``--forbid-ros``: importing a ROS module raises ImportError and is recorded."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ROS_MODULES:
            self.attempts.append(name)
            raise ImportError(f'device check: {name} is a ROS module and is blocked '
                              '(the device path must stay ROS-free)')
        return None


def ros_modules_loaded() -> list[str]:
    return sorted(m for m in sys.modules if m.split('.')[0] in ROS_MODULES)


# --- time budgets ------------------------------------------------------------------------

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


def _error(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f'{type(err).__name__}: {text[0][:300] if text else ""}'


class Check:
    """The run: options, the results, the output files, progress lines."""

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
        self.models = {}       # method -> (cpu model, device model)
        self.cpu_p = {}        # method -> CPU fp32 probabilities on the held-out windows

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
    @property
    def reps(self) -> int:
        return self.args.reps or (2 if self.args.dry else 50)

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
            entry.update(status='failed', error=_error(err),
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
            result[key] = {'status': 'failed', 'error': _error(err),
                           'traceback': traceback.format_exc(limit=6)[-2000:],
                           'seconds': round(time.monotonic() - tic, 1)}
        self.say(f"  {key}: {result[key]['status']} ({result[key]['error']})")
        self.save()
        return None


def _jsonable(value):
    import numpy as np
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


# --- shared helpers ----------------------------------------------------------------------

def _sync(device) -> None:
    import torch
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _rows(check: Check):
    import numpy as np
    n = len(check.windows)
    limit = check.args.max_windows or (4 if check.args.dry else n)
    if limit >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def _probabilities(model, data, rows, device, precision='fp32', batch=16):
    """p_blocked of ``rows`` (numpy), and the logits, batched."""
    import numpy as np
    import torch

    from ..model.compress import autocast_for
    ps, logits = [], []
    with torch.no_grad(), autocast_for(device, precision):
        for lo in range(0, len(rows), batch):
            out = model(data.batch(rows[lo:lo + batch], device))[:, 0].float()
            logits.append(out.cpu().numpy())
            ps.append(torch.sigmoid(out).cpu().numpy())
    return np.concatenate(ps), np.concatenate(logits)


def _accuracy(check: Check, p, rows, threshold) -> dict:
    data = check.windows
    blocked = p >= threshold
    return {'accuracy': float((blocked == (data.labels[rows] == 1)).mean()),
            'accuracy_h3': float((blocked == (data.labels_h3[rows] == 1)).mean()),
            'windows': int(len(rows))}


def _time_window(model, batch, device, precision, reps, warmup):
    """Batch-1 whole-window latency (tokenize every frame + transformer + head), ms."""
    import torch

    from ..model.compress import autocast_for
    from ..timing import percentile
    ms = []
    with torch.no_grad(), autocast_for(device, precision):
        for i in range(warmup + reps):
            _sync(device)
            t = time.perf_counter()
            model(batch)
            _sync(device)
            if i >= warmup:
                ms.append((time.perf_counter() - t) * 1e3)
    return {'median_ms': statistics.median(ms), 'p90_ms': percentile(ms, 90), 'reps': reps}


def _peak_memory(model, batch, device, precision) -> dict:
    """``torch.cuda.max_memory_allocated`` over one batch-1 inference: absolute (weights and
    everything else on the device included) and above what was allocated before it."""
    import torch

    from ..model.compress import autocast_for
    if device.type != 'cuda':
        return {'peak_mem_mb': None, 'peak_mem_above_start_mb': None,
                'note': 'CUDA only (CPU peak memory: mmtok bench)'}
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    with torch.no_grad(), autocast_for(device, precision):
        model(batch)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    return {'peak_mem_mb': peak / 2**20, 'peak_mem_above_start_mb': (peak - start) / 2**20}


def _load_models(check: Check) -> None:
    """The shipped files, once: a CPU copy and a device copy of each (project loader,
    ``torch.load(weights_only=True)``)."""
    if check.models:
        return
    from ..model.checkpoint import load_model
    from ..model.shipped import SHIPPED_MODELS
    root = Path(__file__).resolve().parents[2]
    for method, name in SHIPPED_MODELS.items():
        path = Path(check.args.models_dir or root / 'models') / name
        cpu, meta = load_model(path, device='cpu')
        dev, _ = load_model(path, device=check.device)
        check.models[method] = (cpu, dev, str(path))


def _windows(check: Check):
    if check.windows is None:
        from .heldout import DEFAULT_PATH, load
        check.windows = load(check.args.windows or DEFAULT_PATH)
    return check.windows


# --- parts -------------------------------------------------------------------------------

def part_env(check: Check, res: dict) -> None:
    import numpy as np
    import torch
    res.update(python=sys.version.split()[0], platform=platform.platform(),
               cpu_count=os.cpu_count(), torch=torch.__version__, torch_cuda=torch.version.cuda,
               cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
               else None, numpy=np.__version__, torch_threads=torch.get_num_threads(),
               device=str(check.device),
               tf32={'matmul': torch.backends.cuda.matmul.allow_tf32,
                     'cudnn': torch.backends.cudnn.allow_tf32})
    if check.device.type == 'cuda':
        p = torch.cuda.get_device_properties(check.device)
        res.update(gpu=p.name, capability=f'{p.major}.{p.minor}',
                   gpu_memory_gib=round(p.total_memory / 2**30, 1),
                   multiprocessors=p.multi_processor_count)
        try:
            smi = subprocess.run(['nvidia-smi', '--query-gpu=name,driver_version,clocks.sm,'
                                  'clocks.max.sm,power.limit', '--format=csv,noheader'],
                                 capture_output=True, text=True, timeout=15)
            res['nvidia_smi'] = smi.stdout.strip() or smi.stderr.strip()[:300]
        except (OSError, subprocess.SubprocessError) as err:
            res['nvidia_smi'] = _error(err)
    for name in ('onnx', 'onnxruntime'):
        try:
            mod = __import__(name)
            res[name] = mod.__version__
        except Exception as err:  # noqa: BLE001
            res[name] = f'not importable: {_error(err)}'
    try:
        import onnxruntime as ort
        res['onnxruntime_providers'] = ort.get_available_providers()
    except Exception:  # noqa: BLE001
        res['onnxruntime_providers'] = []
    data = _windows(check)
    res['heldout_windows'] = {'windows': len(data), 'frames': int(len(data.stamps_ns)),
                              'blocked_next_frame': int(data.labels.sum()),
                              'made_with_commit': data.meta.get('git_commit'),
                              'cpu_reference_fp32': data.meta.get('cpu_reference_fp32')}
    check.say(f"env: {res.get('gpu', res['device'])}, torch {res['torch']} (CUDA "
              f"{res['torch_cuda']}), onnxruntime {res['onnxruntime']} "
              f"{res['onnxruntime_providers']}")


def part_parity(check: Check, res: dict) -> None:
    """Shipped models on the device against CPU, strict fp32, same held-out windows."""
    import numpy as np
    _windows(check)
    _load_models(check)
    rows = _rows(check)
    res['tolerance'] = {'abs_logit': LOGIT_TOL, 'decisions': 'all equal',
                        'note': 'strict fp32 on both (TF32 off), batch 16'}
    for method, (cpu, dev, path) in check.models.items():
        p_cpu, l_cpu = _probabilities(cpu, check.windows, rows, cpu_device())
        check.cpu_p[method] = (rows, p_cpu)
        p_dev, l_dev = _probabilities(dev, check.windows, rows, check.device)
        thr = dev.decision_threshold
        flips = int(((p_cpu >= thr) != (p_dev >= thr)).sum())
        diff = float(np.abs(l_cpu - l_dev).max())
        res[method] = {
            'model_file': Path(path).name, 'threshold': thr, 'windows': int(len(rows)),
            'max_abs_logit_diff': diff, 'max_abs_p_diff': float(np.abs(p_cpu - p_dev).max()),
            'decisions_differing': flips,
            'pass': bool(flips == 0 and diff <= LOGIT_TOL),
            'accuracy_cpu': _accuracy(check, p_cpu, rows, thr)['accuracy'],
            'accuracy_device': _accuracy(check, p_dev, rows, thr)['accuracy'],
            'tokens_per_layer': dev.tokens_per_layer()}
        check.say(f"parity {method}: max |dlogit| {diff:.2e}, {flips} decisions differ "
                  f"-> {'pass' if res[method]['pass'] else 'FAIL'}")
        check.save()


def cpu_device():
    import torch
    return torch.device('cpu')


def _variants(check: Check, method: str, cpu, dev):
    """(name, model, precision) rows of Table VII for one shipped model."""
    from ..model.compress import prune_model
    yield 'fp32', dev, 'fp32'
    if method == 'routed':
        fixed = copy.deepcopy(dev)
        fixed.set_keep_override(1.0)       # K_l computed once, no device read per layer
        yield 'fp32, K fixed once', fixed, 'fp32'
    if check.device.type == 'cuda':
        yield 'fp16', dev, 'fp16'
    yield 'bf16', dev, 'bf16'
    pruned = prune_model(copy.deepcopy(cpu), heads_fraction=PRUNE, mlp_fraction=PRUNE)
    pruned.decision_threshold = cpu.decision_threshold
    yield f'pruned {PRUNE:.0%}', pruned.to(check.device).eval(), 'fp32'


def part_table7(check: Check, res: dict) -> None:
    """Table VII on the device: precision and pruning of both shipped models."""
    import numpy as np
    _windows(check)
    _load_models(check)
    rows = _rows(check)
    one = check.windows.batch(rows[:1], check.device)
    res['rows'] = []
    res['note'] = ('accuracy: next-frame label on the held-out windows at the threshold in '
                   'the file; latency: batch 1, a whole window (every frame tokenized), median; '
                   'peak memory: torch.cuda.max_memory_allocated over one batch-1 inference')
    for method, (cpu, dev, path) in check.models.items():
        base_p = None
        if check.device.type != 'cuda':
            res['rows'].append({'method': method, 'variant': 'fp16', 'precision': 'fp16',
                                'status': 'skipped',
                                'error': 'fp16 autocast is CUDA only (model.compress)'})
        for name, model, precision in _variants(check, method, cpu, dev):
            key = f'{method} {name}'

            def measure():
                p, _ = _probabilities(model, check.windows, rows, check.device, precision)
                row = {'method': method, 'variant': name, 'precision': precision,
                       **_accuracy(check, p, rows, dev.decision_threshold),
                       'params': sum(t.numel() for t in model.parameters()),
                       'tokens_per_layer': model.tokens_per_layer(),
                       **_time_window(model, one, check.device, precision, check.reps,
                                      check.warmup),
                       **_peak_memory(model, one, check.device, precision)}
                return p, row
            out = check.guarded(res, key, max(5.0, check.deadlines.left() - 1), measure)
            if out is None:
                res['rows'].append({'method': method, 'variant': name, 'precision': precision,
                                    **res.pop(key)})
                continue
            p, row = out
            if base_p is None:
                base_p = p
            row['decisions_differing_vs_fp32'] = int(
                ((p >= dev.decision_threshold) != (base_p >= dev.decision_threshold)).sum())
            row['max_abs_p_diff_vs_fp32'] = float(np.abs(p - base_p).max())
            res['rows'].append(row)
            check.say(f"table7 {key}: acc {row['accuracy']:.2%}, "
                      f"{row['median_ms']:.2f} ms, peak {_mb(row.get('peak_mem_mb'))}")
            check.save()


def _mb(value) -> str:
    return '-' if value is None else f'{value:.1f} MB'


def part_bench(check: Check, res: dict) -> None:
    """``mmtok bench`` on the device: routed gamma'=0.4 against mha, untrained weights."""
    from ..timing import benchmark_methods
    presets = check.args.presets or (('rsu-mini',) if check.args.dry
                                     else ('paper-handover', 'rsu-cpu'))
    precisions = ('fp32',) if check.args.dry else ('fp32', 'bf16')
    res['rows'] = []
    for preset_name in presets:
        for precision in precisions:
            def one():
                return benchmark_methods(preset_name, device=str(check.device),
                                         methods=['mha', 'routed'], gammas=[0.4],
                                         reps=check.args.reps or (2 if check.args.dry else 30),
                                         warmup=1 if check.args.dry else 5,
                                         precision=precision, progress=False)
            key = f'{preset_name} {precision}'
            rows = check.guarded(res, key, max(5.0, check.deadlines.left() - 1), one)
            if rows is None:
                continue
            res['rows'].extend(rows)
            routed = next(r for r in rows if r['method'] == 'routed')
            check.say(f"bench {key}: mha {rows[0]['latency_ms_median']:.2f} ms, routed "
                      f"{routed['latency_ms_median']:.2f} ms ({routed['speedup_vs_mha']:.2f}x)")
            check.save()


def _graph_autocast(device, precision: str):
    """``model.compress.autocast_for`` without autocast's weight-cast cache: casts made while
    a CUDA graph is captured must live in the graph's memory pool (PyTorch's CUDA-graph notes:
    autocast with graphs needs ``cache_enabled=False``)."""
    import torch
    if precision == 'fp32':
        return contextlib.nullcontext()
    dtype = {'fp16': torch.float16, 'bf16': torch.bfloat16}[precision]
    return torch.autocast(device.type, dtype=dtype, cache_enabled=False)


class GraphedFrames:
    """The node's per-frame work under two CUDA graphs: the tokenizer on one frame, and the
    transformer + head on the window's tokens (a shift register of the last T frames).
    ``step(frame)`` returns p_blocked of the window that ends with ``frame``.

    ``capture=False`` (and always on a CPU) runs the same static buffers eagerly, so the dry
    run checks everything here but the capture itself."""

    def __init__(self, model, device, precision: str = 'fp32', capture: bool = True):
        import torch

        from ..model.preprocess import frame_shapes
        cfg = model.cfg
        self.model, self.device, self.precision = model, device, precision
        self.captured = capture and device.type == 'cuda'
        self.frame = {m: torch.zeros((1, 1, *s), device=device)
                      for m, s in frame_shapes(cfg).items()}
        self.frame['present'] = torch.ones((1, 1, len(cfg.modalities)), dtype=torch.bool,
                                           device=device)
        tok = self._tokenize()                                              # (1, 1, n, d)
        self.tokens = torch.zeros((1, cfg.n_frames, *tok.shape[2:]), dtype=tok.dtype,
                                  device=device)
        if not self.captured:
            return
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):                       # warm up on a side stream (cuBLAS, cuDNN)
                self._tokenize()
                self._encode()
        torch.cuda.current_stream(device).wait_stream(side)
        self.g_tok, self.g_enc = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.g_tok):
            self.tok_out = self._tokenize()
        with torch.cuda.graph(self.g_enc):
            self.logits = self._encode()

    def _tokenize(self):
        import torch
        with torch.no_grad(), _graph_autocast(self.device, self.precision):
            return self.model.tokenize(self.frame)

    def _encode(self):
        import torch
        with torch.no_grad(), _graph_autocast(self.device, self.precision):
            return self.model.encode(self.tokens)

    def step(self, frame: dict) -> float:
        import torch
        for m, a in frame.items():
            self.frame[m].copy_(torch.from_numpy(a)[None, None])
        if self.captured:
            self.g_tok.replay()
            tok = self.tok_out
        else:
            tok = self._tokenize()
        self.tokens[:, :-1].copy_(self.tokens[:, 1:].clone())
        self.tokens[:, -1].copy_(tok[:, 0])
        if self.captured:
            self.g_enc.replay()
            logits = self.logits
        else:
            logits = self._encode()
        return float(torch.sigmoid(logits[0, 0].float()))


def _frames(cfg, count: int, seed: int = 0):
    """``count`` random frames of the model's shapes, all modalities present (numpy)."""
    import numpy as np

    from ..model.flops import dummy_window
    arrays = {m: v[0].numpy() for m, v in dummy_window(cfg.with_(n_frames=count),
                                                          seed=seed).items()}
    present = np.ones((count, len(cfg.modalities)), bool)
    return [{**{m: arrays[m][k] for m in cfg.modalities}, 'present': present[k]}
            for k in range(count)]


def time_graphed(model, device, precision, reps, warmup, capture: bool = True) -> dict:
    """CUDA graphs: per-frame p50 and max |p - eager p| on the same random windows
    (``capture=False``: the same static buffers without graphs)."""
    import numpy as np
    import torch

    from ..timing import percentile
    autocast_for = _graph_autocast
    cfg = model.cfg
    tic = time.perf_counter()
    runner = GraphedFrames(model, device, precision, capture=capture)
    capture_s = time.perf_counter() - tic
    frames = _frames(cfg, cfg.n_frames + warmup + reps)
    ms, diffs = [], []
    for k, frame in enumerate(frames):
        _sync(device)
        t = time.perf_counter()
        p = runner.step(frame)
        _sync(device)
        if k >= cfg.n_frames - 1:
            if k >= cfg.n_frames - 1 + warmup:
                ms.append((time.perf_counter() - t) * 1e3)
            if len(diffs) < min(5, reps):           # the same window eagerly
                win = frames[k - cfg.n_frames + 1:k + 1]
                batch = {m: torch.from_numpy(np.stack([f[m] for f in win]))[None].to(device)
                         for m in (*cfg.modalities, 'present')}
                with torch.no_grad(), autocast_for(device, precision):
                    ref = float(torch.sigmoid(model(batch)[0, 0].float()))
                diffs.append(abs(ref - p))
    return {'median_ms': statistics.median(ms), 'p90_ms': percentile(ms, 90), 'reps': reps,
            'captured': runner.captured, 'capture_s': round(capture_s, 2),
            'max_abs_p_diff_vs_eager': max(diffs)}


def count_syncs(model, device) -> dict | None:
    """Device-to-host syncs (CUDA's sync debug mode) of one window's transformer + head
    (``encode``), and of one ``StreamingPredictor.predict`` with one new frame (which also
    reads p and ``tokens_per_layer()``)."""
    import warnings

    import torch

    from ..runtime.predictor import StreamingPredictor
    if device.type != 'cuda':
        return None
    cfg = model.cfg
    tokens = torch.zeros((1, cfg.n_frames, cfg.tokens_per_frame, cfg.d_model), device=device)
    frames = _frames(cfg, cfg.n_frames + 1)
    pred = StreamingPredictor(model, device=device)
    wins = [_window_of(frames[k:k + cfg.n_frames], k) for k in (0, 1)]
    out = {}
    with torch.no_grad():
        model.encode(tokens)
        pred.predict(wins[0])
        torch.cuda.synchronize(device)
        for name, fn in (('encode', lambda: model.encode(tokens)),
                         ('predict', lambda: pred.predict(wins[1]))):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                torch.cuda.set_sync_debug_mode('warn')
                try:
                    fn()
                finally:
                    torch.cuda.set_sync_debug_mode('default')
            out[name] = sum('synchroniz' in str(w.message).lower() for w in caught)
    return out


def _window_of(frames: list[dict], k: int):
    """The node's ``Window`` of consecutive ``frames``, the first one stamped k + 1 periods."""
    import numpy as np

    from ..constants import FRAME_PERIOD_NS
    from ..data.window import Window
    arrays = {m: np.stack([f[m] for f in frames]) for m in frames[0]}
    stamps = (np.arange(k, k + len(frames), dtype=np.int64) + 1) * FRAME_PERIOD_NS
    return Window(arrays, stamps, int(stamps[-1]))


def _compiled_copy(model, mode: str | None):
    import logging

    import torch
    torch._logging.set_logs(dynamo=logging.ERROR)      # graph breaks are counted, not printed
    c = copy.deepcopy(model)
    kw = {} if mode is None else {'mode': mode}
    c.tokenize = torch.compile(c.tokenize, dynamic=False, **kw)
    c.encode = torch.compile(c.encode, dynamic=False, **kw)
    return c


def part_streaming(check: Check, res: dict) -> None:
    """Per-frame p50 at batch 1: eager as is, K fixed once, CUDA graphs, torch.compile."""
    from ..runtime.predictor import StreamingPredictor
    from ..timing import time_streaming_frame
    _load_models(check)
    dev = check.device
    cuda = dev.type == 'cuda'
    reps = check.args.reps or (2 if check.args.dry else 100)
    warmup = 1 if check.args.dry else 10
    precisions = ('fp32',) if not cuda else ('fp32', 'bf16')
    graphs = check.args.cuda_graphs == 'on' or (check.args.cuda_graphs == 'auto' and cuda)
    compile_ = check.args.compile == 'on' or (check.args.compile == 'auto' and cuda)
    res['rows'] = []
    res['note'] = ('per frame: tokenize the one new frame + transformer + head on the cached '
                   'tokens, batch 1, random inputs of the shipped models\' shapes; "K fixed '
                   'once": set_keep_override(1.0), the same K_l without reading r_l from the '
                   'device in every layer')

    def add(method, option, precision, out):
        row = {'method': method, 'option': option, 'precision': precision, **out}
        res['rows'].append(row)
        check.say(f"streaming {method} {option} {precision}: p50 {row['median_ms']:.2f} ms")
        check.save()

    for method, (cpu, model, path) in check.models.items():
        key = f'{method} syncs per window'
        if cuda:
            n = check.guarded(res, key, 20, lambda: count_syncs(model, dev))
            fixed = copy.deepcopy(model)
            fixed.set_keep_override(1.0)
            m = check.guarded(res, key + ' (K fixed once)', 20, lambda: count_syncs(fixed, dev))
            res.setdefault('syncs_per_window', {})[method] = {'as is': n, 'K fixed once': m}
        for precision in precisions:
            variants = [('eager', model)]
            if method == 'routed':
                fixed = copy.deepcopy(model)
                fixed.set_keep_override(1.0)
                variants.append(('eager, K fixed once', fixed))
            for option, mdl in variants:
                out = check.guarded(res, f'{method} {option} {precision}', 30, lambda: (
                    time_streaming_frame(mdl, device=dev, reps=reps, warmup=warmup,
                                         predictor=StreamingPredictor(mdl, device=dev,
                                                                      precision=precision))))
                if out is not None:
                    add(method, option, precision, out)
            fixed = variants[-1][1]
            # on a CPU (dry run) the same static buffers run without capture
            label = ('CUDA graphs' if graphs else 'static buffers, no capture') + (
                ', K fixed once' if method == 'routed' else '')
            if graphs or (not cuda and method == 'routed'):   # dry: one model is enough
                out = check.guarded(res, f'{method} {label} {precision}', 30, lambda: (
                    time_graphed(fixed, dev, precision, reps, warmup, capture=graphs)))
                if out is not None:
                    add(method, label, precision, out)
    if compile_:
        # in order of interest, each guarded: a later one may meet the part's end
        plan = [('routed', None, False), ('mha', None, False), ('routed', 'reduce-overhead', False),
                ('mha', 'reduce-overhead', False), ('routed', None, True)]
        for method, mode, fixed_k in plan:
            model = check.models[method][1]
            label = 'torch.compile' + (f' {mode}' if mode else '') + (
                ', K fixed once' if fixed_k else '')
            key = f'{method} {label} fp32'
            budget = min(60.0, check.deadlines.left() - 2)
            if budget < 10:
                res[key] = {'status': 'skipped', 'error': 'out of time'}
                continue

            def run_compiled():
                import torch._dynamo
                breaks = sum(torch._dynamo.utils.counters['graph_break'].values())
                c = _compiled_copy(model, mode)
                if fixed_k:
                    c.set_keep_override(1.0)
                tic = time.perf_counter()
                pred = StreamingPredictor(c, device=dev)
                time_streaming_frame(c, device=dev, reps=1, warmup=1, predictor=pred)
                first = time.perf_counter() - tic
                out = time_streaming_frame(c, device=dev, reps=reps, warmup=warmup,
                                           predictor=StreamingPredictor(c, device=dev))
                return {**out, 'compile_and_first_windows_s': round(first, 1),
                        'graph_breaks': sum(torch._dynamo.utils.counters['graph_break']
                                            .values()) - breaks}
            out = check.guarded(res, key, budget, run_compiled)
            if out is not None:
                add(method, label, 'fp32', out)
    else:
        res['torch.compile'] = 'not run (--compile off, or auto on a CPU)'
    if not graphs:
        res['CUDA graphs'] = 'not run (CUDA only, or --cuda-graphs off)'


def part_onnx(check: Check, res: dict) -> None:
    """The exported graphs under onnxruntime: CUDA EP where this build has it."""
    import numpy as np

    from ..model.export import export_model
    from ..runtime.onnx_predictor import OnnxStreamingPredictor
    from ..timing import time_streaming_frame
    import onnxruntime as ort
    _windows(check)
    _load_models(check)
    available = ort.get_available_providers()
    res['onnxruntime'] = ort.__version__
    res['providers_available'] = available
    cuda_ep = 'CUDAExecutionProvider' in available
    res['cuda_execution_provider'] = (
        'available' if cuda_ep else
        f'NOT available: onnxruntime {ort.__version__} here has {available} (the CPU-only '
        'wheel; the CUDA EP comes with the onnxruntime-gpu wheel, hundreds of MB, too big to '
        'carry to a lent machine); the CUDA EP was not run')
    if 'TensorrtExecutionProvider' not in available:
        res['tensorrt_execution_provider'] = 'not available'
    want = ['CUDAExecutionProvider'] if cuda_ep and check.device.type == 'cuda' else \
        ['CPUExecutionProvider']
    res['ran_on'] = want[0]
    if want[0] == 'CPUExecutionProvider':
        res['why_cpu'] = ('the device is the CPU (dry run)' if check.device.type == 'cpu'
                          else 'no CUDA EP: the CPU EP timed for reference')
    check.say(f"onnx: providers {available}; running {want[0]}")
    reps = check.args.reps or (2 if check.args.dry else 50)
    rows = _rows(check)
    methods = list(check.models)
    if check.args.dry:
        methods = methods[:1]           # one export is enough to keep the path alive
    with tempfile.TemporaryDirectory(prefix='mmtok-device-onnx-') as tmp:
        for method in methods:
            cpu, dev, path = check.models[method]
            entry = res.setdefault(method, {})

            def export():
                tic = time.perf_counter()
                out = export_model(copy.deepcopy(cpu), Path(tmp) / f'{method}.onnx',
                                   decision_threshold=cpu.decision_threshold,
                                   source=Path(path).name)
                return out, time.perf_counter() - tic
            done = check.guarded(entry, 'export', max(5.0, check.deadlines.left() - 1), export)
            if done is None:
                continue
            result, seconds = done
            entry.update(export_s=round(seconds, 1), max_abs_diff_vs_torch=result.max_abs_diff,
                         tokens_per_layer=result.tokens_per_layer)

            def measure():
                pred = OnnxStreamingPredictor(result.encoder, providers=want,
                                              threshold=cpu.decision_threshold)
                entry['provider_used'] = pred.device
                entry['warnings'] = pred.warnings
                timing = time_streaming_frame(cpu, reps=reps, warmup=2, predictor=pred)
                ps = np.array([pred.predict(check.windows.window(int(r)), use_cache=False)
                               .p_blocked for r in rows])
                thr = cpu.decision_threshold
                ref = check.cpu_p.get(method)
                if ref is not None and len(ref[0]) == len(rows) and (ref[0] == rows).all():
                    entry['decisions_differing_vs_torch_cpu'] = int(
                        ((ps >= thr) != (ref[1] >= thr)).sum())
                    entry['max_abs_p_diff_vs_torch_cpu'] = float(np.abs(ps - ref[1]).max())
                entry.update(frame_ms_median=timing['median_ms'], frame_ms_p90=timing['p90_ms'],
                             **_accuracy(check, ps, rows, thr))
                check.say(f"onnx {method} on {pred.device}: per frame "
                          f"{timing['median_ms']:.2f} ms, acc {entry['accuracy']:.2%}")
            check.guarded(entry, 'run', max(5.0, check.deadlines.left() - 1), measure)
            check.save()


def part_capture(check: Check, res: dict) -> None:
    """CUDA-graph capture of the routed model as it is, in a child process."""
    if check.device.type != 'cuda':
        res['status'] = 'not run: CUDA only'
        return
    cmd = [sys.executable, '-m', 'mmtok_ros.bench.device_check', '--probe-capture',
           '--device', str(check.device)]
    if check.args.models_dir:
        cmd += ['--models-dir', check.args.models_dir]
    left = max(5.0, check.deadlines.left() - 2)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=left,
                             cwd=Path(__file__).resolve().parents[2])
    except subprocess.TimeoutExpired:
        res['status'] = f'child past {left:.0f} s'
        return
    res['returncode'] = out.returncode
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith('{')]
    res.update(json.loads(lines[-1]) if lines else {'stderr_tail': out.stderr[-1500:]})
    check.say(f"capture: routed as is -> {res.get('routed as is', res)}")


def probe_capture(device: str, models_dir: str = '') -> int:
    """Child of ``part_capture``: one JSON line."""
    import torch

    from ..model.checkpoint import load_model
    from ..model.shipped import SHIPPED_MODELS
    root = Path(models_dir or Path(__file__).resolve().parents[2] / 'models')
    model, _ = load_model(root / SHIPPED_MODELS['routed'], device=device)
    out = {}
    try:
        r = time_graphed(model, torch.device(device), 'fp32', 20, 3)
        out['routed as is'] = {'status': 'captured' if r['captured'] else 'ran, no capture '
                               '(not CUDA)', **r}
    except Exception as err:  # noqa: BLE001 - the expected outcome is a failure
        out['routed as is'] = {'status': 'capture failed', 'error': _error(err)}
    print(json.dumps(out, default=str), flush=True)
    return 0


RUNNERS = {'env': part_env, 'parity': part_parity, 'table7': part_table7, 'bench': part_bench,
           'streaming': part_streaming, 'onnx': part_onnx, 'capture': part_capture}


# --- command line ------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(prog='python -m mmtok_ros.bench.device_check',
                                description=__doc__.split('\n\n')[0])
    p.add_argument('--device', default='cuda', help='cuda (default), cuda:N, or cpu (dry runs)')
    p.add_argument('--out', default=os.environ.get('OUT') or 'results/device_check',
                   help='folder for device_check.json, .md and .log (default $OUT)')
    p.add_argument('--parts', default=','.join(PARTS), help=f'comma-separated from {PARTS}')
    p.add_argument('--dry', action='store_true', help='tiny sizes (a CPU, make test)')
    p.add_argument('--budget-s', type=float, default=DEFAULT_BUDGET_S,
                   help='the whole run; each part also has its own budget')
    p.add_argument('--part-budget', default='',
                   help='override part budgets, e.g. streaming=200,bench=60')
    p.add_argument('--reps', type=int, default=0, help='timed repetitions (0: the defaults)')
    p.add_argument('--max-windows', type=int, default=0,
                   help='held-out windows used (0: all; --dry: 4)')
    p.add_argument('--presets', default='', help='mmtok bench presets (default '
                   'paper-handover,rsu-cpu; --dry: rsu-mini)')
    p.add_argument('--windows', default='', help='held-out windows file (default: '
                   'mmtok_ros/bench/data/heldout_windows_rsu_cpu.npz)')
    p.add_argument('--models-dir', default='', help='shipped model files (default models/)')
    p.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: default)')
    p.add_argument('--compile', choices=('auto', 'on', 'off'), default='auto',
                   help='torch.compile options (auto: on CUDA only)')
    p.add_argument('--cuda-graphs', choices=('auto', 'on', 'off'), default='auto')
    p.add_argument('--forbid-ros', action='store_true',
                   help='make importing a ROS module an ImportError (recorded in the JSON)')
    p.add_argument('--probe-capture', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.parts = [s.strip() for s in args.parts.split(',') if s.strip()]
    unknown = [s for s in args.parts if s not in PARTS]
    if unknown:
        p.error(f'unknown parts {unknown}; choose from {PARTS}')
    args.presets = tuple(s.strip() for s in args.presets.split(',') if s.strip())
    try:
        args.part_budget = {k.strip(): float(v) for k, v in
                            (item.split('=') for item in args.part_budget.split(',') if item)}
    except ValueError:
        p.error('--part-budget takes name=seconds,...')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    blocker = None
    if args.forbid_ros:
        blocker = RosImportBlocker()
        sys.meta_path.insert(0, blocker)
    import torch

    from ..devices import resolve_device
    from ..errors import UserInputError
    try:
        device, _ = resolve_device(args.device)
    except UserInputError as err:
        print(f'device_check: error: {err}; nothing was measured', file=sys.stderr)
        return 2
    if args.probe_capture:
        return probe_capture(str(device), args.models_dir)
    if args.threads:
        torch.set_num_threads(args.threads)
    # strict fp32: the fp32 rows and the CPU parity are true fp32 (bf16/fp16 are autocast)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    check = Check(args)
    check.device = device
    check.blocker = blocker
    check.say(f"device {device}, parts {','.join(args.parts)}, budget {args.budget_s:.0f} s"
              f"{', dry' if args.dry else ''}; writing {check.out}")
    check.save()
    for name in args.parts:
        check.run_part(name, RUNNERS[name])
    check.results['finished_utc'] = _dt.datetime.now(_dt.timezone.utc).isoformat(
        timespec='seconds')
    check.save()
    bad = [n for n, e in check.results['parts'].items() if e['status'] != 'ok']
    check.say(f"done in {time.monotonic() - check.t0:.0f} s; "
              f"{'all parts ok' if not bad else 'not ok: ' + ', '.join(bad)}; "
              f"{check.out / 'device_check.md'}")
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
