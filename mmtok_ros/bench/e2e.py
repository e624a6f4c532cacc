"""End-to-end benchmark: replay a bag through the real node processes (Isaac ROS style).

For each model: start ``rsu_node`` (and optionally ``handover_emulator``) as separate
processes, play the bag with ``bag_replay`` at ``rate``, and collect in this process, over
real DDS (localhost only), every ``/mmtok/link_status`` (its ``latency_ms``: newest frame's
arrival in the node -> status publish) and the node's ``/diagnostics``. CPU % and RSS of the
rsu_node process come from /proc. :func:`run_pipeline` is shared with ``mmtok demo``.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CLK_TCK = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100


def local_dds_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """Set (in ``env``, default os.environ) DDS to localhost and a domain id (random 1..101
    if unset); child processes inherit it."""
    env = os.environ if env is None else env
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    if not env.get('ROS_DOMAIN_ID', '').isdigit():
        env['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(1, 101))
    return env


def _executable(name: str) -> list[str]:
    """The console script next to this Python (the venv), else ``python -m``."""
    script = Path(sys.executable).parent / name
    if script.is_file():
        return [str(script)]
    return [sys.executable, '-m', f'mmtok_ros.ros.{name}']


def _ros_args(params: dict[str, Any]) -> list[str]:
    out = ['--ros-args']
    for key, value in params.items():
        if isinstance(value, bool):
            value = 'true' if value else 'false'
        elif isinstance(value, (list, tuple)):
            value = '[' + ','.join(f"'{v}'" for v in value) + ']'
        out += ['-p', f'{key}:={value}']
    return out


class Proc:
    """A node process whose output goes to a log file; waits on log lines, stops with SIGINT."""

    def __init__(self, name: str, params: dict[str, Any], log_path: Path,
                 env: dict[str, str]) -> None:
        self.name, self.log_path = name, log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open('w')
        self.popen = subprocess.Popen(_executable(name) + _ros_args(params), env=env,
                                      stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def text(self) -> str:
        return self.log_path.read_text(errors='replace')

    def wait_for(self, needle: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if needle in self.text():
                return True
            if self.popen.poll() is not None:
                return needle in self.text()
            time.sleep(0.05)
        return False

    def stop(self, timeout_s: float = 15.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK   # utime + stime
    except (OSError, IndexError, ValueError):
        return None


def rss_mb(pid: int) -> tuple[float | None, float | None]:
    """(current RSS, peak RSS) in MiB."""
    try:
        status = Path(f'/proc/{pid}/status').read_text().splitlines()
    except OSError:
        return None, None
    kb = {line.split(':')[0]: int(line.split()[1]) for line in status
          if line.startswith(('VmRSS', 'VmHWM'))}
    return (kb['VmRSS'] / 1024 if 'VmRSS' in kb else None,
            kb['VmHWM'] / 1024 if 'VmHWM' in kb else None)


@dataclass
class Collected:
    statuses: list[dict] = field(default_factory=list)
    handovers: list[dict] = field(default_factory=list)
    diagnostics: dict[str, str] = field(default_factory=dict)


class _Collector:
    """An rclpy node in this process recording the RSU node's outputs."""

    def __init__(self, node_name: str) -> None:
        from mmtok_ros.ros.runtime import handover_qos, init_rclpy, status_qos
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from diagnostic_msgs.msg import DiagnosticArray

        self.data = Collected()
        self._rsu_name = node_name
        self.context = Context()
        init_rclpy([], context=self.context)
        self.node = rclpy.create_node('mmtok_e2e_collector', context=self.context)
        self.node.create_subscription(DiagnosticArray, '/mmtok/link_status',
                                      self._on_status, status_qos(100))
        self.node.create_subscription(DiagnosticArray, '/mmtok/handover',
                                      self._on_handover, handover_qos(depth=10))
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag,
                                      status_qos(100))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # shutdown races end the spin; nothing to report
            pass

    @staticmethod
    def _values(msg: Any) -> dict[str, str]:
        return {kv.key: kv.value for kv in msg.status[0].values} if msg.status else {}

    def _on_status(self, msg: Any) -> None:
        v = self._values(msg)
        v['received_wall_ns'] = time.time_ns()
        self.data.statuses.append(v)

    def _on_handover(self, msg: Any) -> None:
        self.data.handovers.append(self._values(msg))

    def _on_diag(self, msg: Any) -> None:
        if msg.status and msg.status[0].name.startswith(self._rsu_name):
            self.data.diagnostics = self._values(msg)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def run_pipeline(bag: str | Path, model_path: str | Path, *, label: str, log_dir: Path,
                 rate: float = 1.0, truth: str | Path | None = None,
                 emulate_out: Path | None = None, stem: str | None = None,
                 device: str = 'cpu', deadline_ms: float = 300.0,
                 keep_ratio_scale: float = 0.0, startup_timeout_s: float = 120.0) -> dict:
    """One bag through rsu_node (+ handover_emulator) with bag_replay; returns the metrics."""
    env = local_dds_env(dict(os.environ))
    os.environ.update({k: env[k] for k in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID')})
    rsu_name = 'rsu_node'
    rsu = Proc('rsu_node', {'model_path': str(model_path), 'device': device,
                            'use_sim_time': True, 'deadline_ms': float(deadline_ms),
                            'input_reliable': True,  # bag_replay publishes reliable
                            'keep_ratio_scale': float(keep_ratio_scale)},
               log_dir / f'{label}_rsu_node.log', env)
    procs = [rsu]
    collector = None
    try:
        if not rsu.wait_for('ready:', startup_timeout_s):
            raise RuntimeError(f'rsu_node did not start (see {rsu.log_path}): '
                               f'{rsu.text().strip().splitlines()[-1:] or "no output"}')
        emulator = None
        if emulate_out is not None:
            emulator = Proc('handover_emulator', {
                'truth_path': str(truth or ''), 'out_dir': str(emulate_out),
                'stem': stem or '', 'use_sim_time': True},
                log_dir / f'{label}_handover_emulator.log', env)
            procs.append(emulator)
            if not emulator.wait_for('emulating handover', 60.0):
                raise RuntimeError(f'handover_emulator did not start (see '
                                   f'{emulator.log_path})')
        collector = _Collector(rsu_name)
        replay = Proc('bag_replay', {'bag': str(bag), 'rate': float(rate),
                                     'wait_for_subscribers': 1, 'wait_timeout_s': 20.0,
                                     'start_delay_s': 1.0},
                      log_dir / f'{label}_bag_replay.log', env)
        procs.append(replay)
        replay.wait_for('playing', 60.0)
        cpu0, wall0 = cpu_seconds(rsu.pid), time.monotonic()
        peak_rss = None
        while replay.popen.poll() is None:
            peak_rss = rss_mb(rsu.pid)[1] or peak_rss
            time.sleep(0.2)
        cpu1, wall1 = cpu_seconds(rsu.pid), time.monotonic()
        n_built = None
        deadline = time.monotonic() + 5.0       # let the last windows and a report arrive
        while time.monotonic() < deadline:
            time.sleep(0.25)
            d = collector.data.diagnostics
            n_built = int(d.get('windows_built', -1)) if d else None
            done = sum(int(d.get(k, 0)) for k in ('windows_published', 'windows_skipped',
                                                 'windows_coalesced')) if d else 0
            if n_built is not None and n_built >= 0 and done >= n_built \
                    and len(collector.data.statuses) >= int(d.get('windows_published', 0)):
                time.sleep(1.1)                 # one more report after the last window
                break
        if replay.popen.returncode not in (0, None):
            raise RuntimeError(f'bag_replay failed (see {replay.log_path})')
        rss_now, rss_peak = rss_mb(rsu.pid)
        data = collector.data
    finally:
        if collector is not None:
            collector.close()
        for proc in reversed(procs):
            proc.stop()
    latencies = [float(s['latency_ms']) for s in data.statuses if s.get('latency_ms')]
    inference = [float(s['inference_ms']) for s in data.statuses if s.get('inference_ms')]
    d = data.diagnostics

    def count(key: str) -> int | None:
        return int(d[key]) if d.get(key, '').lstrip('-').isdigit() else None

    cpu_pct = None
    if cpu0 is not None and cpu1 is not None and wall1 > wall0:
        cpu_pct = 100.0 * (cpu1 - cpu0) / (wall1 - wall0)
    return {
        'label': label, 'bag': str(bag), 'model': str(model_path), 'rate': rate,
        'method': data.statuses[0].get('method') if data.statuses else None,
        'device': d.get('device'),
        'windows_published': count('windows_published') or len(data.statuses),
        'statuses_received': len(data.statuses),
        'windows_built': count('windows_built'),
        'dropped_windows': count('windows_skipped'),
        'coalesced_windows': count('windows_coalesced'),
        'sync_misses': count('sync_misses'),
        'deadline_misses': count('deadline_misses'),
        'latency_p50_ms': _pct(latencies, 50), 'latency_p99_ms': _pct(latencies, 99),
        'latency_max_ms': max(latencies) if latencies else None,
        'inference_p50_ms': _pct(inference, 50), 'inference_p99_ms': _pct(inference, 99),
        'cpu_percent': cpu_pct, 'rss_mb': rss_now, 'rss_peak_mb': rss_peak or peak_rss,
        'handovers': len(data.handovers),
        'replay_wall_s': wall1 - wall0,
        'statuses': data.statuses,
    }


COLUMNS = (('label', 'run', '{}'), ('method', 'method', '{}'),
           ('windows_published', 'windows', '{}'), ('dropped_windows', 'dropped', '{}'),
           ('latency_p50_ms', 'p50 [ms]', '{:.1f}'), ('latency_p99_ms', 'p99 [ms]', '{:.1f}'),
           ('inference_p50_ms', 'infer p50 [ms]', '{:.1f}'),
           ('cpu_percent', 'CPU [%]', '{:.0f}'), ('rss_peak_mb', 'RSS peak [MiB]', '{:.0f}'),
           ('deadline_misses', 'deadline misses', '{}'))


def format_table(rows: list[dict]) -> str:
    table = [[title for _, title, _ in COLUMNS]]
    for r in rows:
        table.append(['-' if r.get(k) is None else fmt.format(r[k]) for k, _, fmt in COLUMNS])
    widths = [max(len(row[c]) for row in table) for c in range(len(COLUMNS))]
    lines = ['  '.join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in
                       enumerate(zip(row, widths))) for row in table]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def run_e2e(bag: str | Path, models: dict[str, str | Path], *, rate: float = 1.0,
            out: str | Path = 'results/bench_e2e.json', device: str = 'cpu',
            log_dir: str | Path = 'results/logs') -> list[dict]:
    """Every model in ``models`` (label -> file) over ``bag``, one after the other."""
    rows = []
    for label, path in models.items():
        print(f'[e2e] {label}: replaying {bag} at {rate:g}x through rsu_node ({path})',
              flush=True)
        rows.append(run_pipeline(bag, path, label=label, log_dir=Path(log_dir), rate=rate,
                                 device=device))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([{k: v for k, v in r.items() if k != 'statuses'} for r in rows],
                              indent=1) + '\n')
    return rows




def resolve_models(model: str = '', mha_model: str = '', *,
                   scratch: str | Path = 'results/models') -> dict[str, Path]:
    """{'proposed': file, 'mha': file}: given files, shipped files, or untrained rsu-cpu
    models written to ``scratch`` (enough for latency: it does not depend on the weights)."""
    from ..model import MultiModalTransformer, preset
    from ..model.checkpoint import save_model
    from ..ros.params import default_model_path
    root = Path(__file__).resolve().parents[2] / 'models'
    chosen = {'proposed': Path(model) if model else Path(default_model_path()),
              'mha': Path(mha_model) if mha_model else root / 'handover_rsu_cpu_mha.pt'}
    for label, method in (('proposed', 'routed'), ('mha', 'mha')):
        explicit = model if label == 'proposed' else mha_model
        if chosen[label].is_file():
            continue
        if explicit:
            raise FileNotFoundError(f'model file not found: {chosen[label]}')
        path = Path(scratch) / f'untrained_rsu_cpu_{method}.pt'
        if not path.is_file():
            save_model(path, MultiModalTransformer(preset('rsu-cpu', method=method)),
                       meta={'note': 'untrained: for latency benchmarks only'})
        print(f'[e2e] no trained {label} model found ({chosen[label]}); using untrained '
              f'rsu-cpu {method} weights {path} (latency does not depend on them)')
        chosen[label] = path
    return chosen


__all__ = ['format_table', 'local_dds_env', 'resolve_models', 'run_e2e', 'run_pipeline']
