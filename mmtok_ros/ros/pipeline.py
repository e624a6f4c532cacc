"""One bag through the real node processes (Isaac ROS style), shared by ``mmtok bench --e2e``
and ``mmtok demo``.

Starts ``rsu_node`` (and optionally ``handover_emulator``) as separate processes, plays the bag
with ``bag_replay`` at ``rate``, and collects in this process, over real DDS (localhost only,
one domain), every ``/mmtok/link_status`` (its ``latency_ms``: newest frame's arrival in the
node -> status publish) and the node's ``/diagnostics``. CPU % and RSS of the rsu_node
process come from /proc.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from ..resources import process_cpu_seconds, process_rss_mb
from ..ros_env import local_dds_env
from ..runtime.runtime_config import RuntimeConfig
from ..timing import percentile
from .collector import OutputCollector
from .processes import NodeProcess


def _wait_for_last_report(collector: OutputCollector, timeout_s: float = 5.0) -> None:
    """Until the node has published or skipped every window it built (and one more
    diagnostics report went out), or ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.25)
        d = collector.data.diagnostics
        n_built = int(d.get('windows_built', -1)) if d else None
        done = sum(int(d.get(k, 0)) for k in ('windows_published', 'windows_skipped',
                                             'stale_after_time_jump')) if d else 0
        if n_built is not None and n_built >= 0 and done >= n_built \
                and len(collector.data.statuses) >= int(d.get('windows_published', 0)):
            time.sleep(1.1)                 # one more report after the last window
            return


def run_pipeline(bag: str | Path, model_path: str | Path, *, label: str, log_dir: Path,
                 rate: float = 1.0, truth: str | Path | None = None,
                 emulate_out: Path | None = None, stem: str | None = None,
                 device: str = 'cpu', deadline_ms: float = RuntimeConfig.deadline_ms,
                 keep_ratio_scale: float = RuntimeConfig.keep_ratio_scale, torch_threads: int | None = None,
                 backend: str = 'torch', startup_timeout_s: float = 120.0) -> dict:
    """One bag through rsu_node (+ handover_emulator) with bag_replay; returns the metrics.
    ``torch_threads``: the node's intra-op threads (None: the node's default); ``backend``:
    the node's backend (``model_path`` an ``.onnx`` of ``mmtok export`` for onnxruntime)."""
    env = local_dds_env(dict(os.environ))
    os.environ.update({k: env[k] for k in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID')})
    rsu_name = 'rsu_node'
    rsu_params = {'model_path': str(model_path), 'device': device, 'use_sim_time': True,
                  'deadline_ms': float(deadline_ms),
                  'input_reliable': True,  # bag_replay publishes reliable
                  'keep_ratio_scale': float(keep_ratio_scale), 'backend': backend}
    if torch_threads is not None:
        rsu_params['torch_threads'] = int(torch_threads)
    rsu = NodeProcess('rsu_node', rsu_params, log_dir / f'{label}_rsu_node.log', env)
    procs = [rsu]
    collector = None
    try:
        if not rsu.wait_for('ready:', startup_timeout_s):
            raise RuntimeError(f'rsu_node did not start (see {rsu.log_path}): '
                               f'{rsu.text().strip().splitlines()[-1:] or "no output"}')
        if emulate_out is not None:
            emulator = NodeProcess('handover_emulator', {
                'truth_path': str(truth or ''), 'out_dir': str(emulate_out),
                'stem': stem or '', 'use_sim_time': True},
                log_dir / f'{label}_handover_emulator.log', env)
            procs.append(emulator)
            if not emulator.wait_for('emulating handover', 60.0):
                raise RuntimeError(f'handover_emulator did not start (see '
                                   f'{emulator.log_path})')
        collector = OutputCollector(rsu_name)
        replay = NodeProcess('bag_replay', {'bag': str(bag), 'rate': float(rate),
                                            'wait_for_subscribers': 1, 'wait_timeout_s': 20.0,
                                            'start_delay_s': 1.0},
                             log_dir / f'{label}_bag_replay.log', env)
        procs.append(replay)
        replay.wait_for('playing', 60.0)
        cpu0, wall0 = process_cpu_seconds(rsu.pid), time.monotonic()
        peak_rss = None
        while replay.popen.poll() is None:
            peak_rss = process_rss_mb(rsu.pid)[1] or peak_rss
            time.sleep(0.2)
        cpu1, wall1 = process_cpu_seconds(rsu.pid), time.monotonic()
        _wait_for_last_report(collector)
        if replay.popen.returncode not in (0, None):
            raise RuntimeError(f'bag_replay failed (see {replay.log_path})')
        rss_now, rss_peak = process_rss_mb(rsu.pid)
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
        'device': d.get('device'), 'torch_threads': torch_threads, 'backend': backend,
        'windows_published': count('windows_published') or len(data.statuses),
        'statuses_received': len(data.statuses),
        'windows_built': count('windows_built'),
        'dropped_windows': count('windows_skipped'),
        'frames_dropped_backlog': count('frames_dropped_backlog'),
        'sync_misses': count('sync_misses'),
        'deadline_misses': count('deadline_misses'),
        'latency_p50_ms': percentile(latencies, 50),
        'latency_p99_ms': percentile(latencies, 99),
        'latency_max_ms': max(latencies) if latencies else None,
        'inference_p50_ms': percentile(inference, 50),
        'inference_p99_ms': percentile(inference, 99),
        'cpu_percent': cpu_pct, 'rss_mb': rss_now, 'rss_peak_mb': rss_peak or peak_rss,
        'handovers': len(data.handovers),
        'replay_wall_s': wall1 - wall0,
        'statuses': data.statuses,
    }


__all__ = ['run_pipeline']
