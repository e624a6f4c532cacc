"""``mmtok soak``: N RSU nodes on a looped road bag for a long time, watched from outside.

The nodes are the real ``rsu_node`` executables, one per RSU in namespace ``rsuK`` with the
parameters ``launch/multi_rsu.launch.py`` gives them (plus ``use_sim_time`` and
``input_reliable``, as ``replay.launch.py`` sets them for a bag); the road is one scenario
of ``mmtok simulate --rsus N`` replayed by the real ``bag_replay`` with ``loop:=true``. This
process records, over real DDS (localhost only, a domain of its own), every RSU's typed
``LinkStatus`` (its ``latency_ms``), every ``HandoverTrigger`` and every node's
``/diagnostics`` (``soak_collector.py``); it samples each node's RSS from ``/proc`` and
watches for a node process that exits (a crash; restarted and counted with ``restart``;
``soak_watch.py``). The options, parameters and road bag are ``soak_setup.py``'s, the
report ``reports/soak.py``'s.
"""
from __future__ import annotations

import datetime
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from ..ros_env import local_dds_env
from .processes import NodeProcess
from .soak_collector import SoakCollector
from .soak_setup import (NODE, SoakConfig, SoakError, check_bag, road_bag, rsu_ids, rsu_params,
                         rsu_ros_args)
from .soak_watch import RsuProcesses, drain, last_reports, process_tail, watch


def run_soak(cfg: SoakConfig, out_dir: Path, *, progress: bool = True,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """The soak (module docstring); returns the record ``reports.soak.summarize`` reads."""
    if cfg.rsus < 3:
        raise SoakError(f'--rsus {cfg.rsus}: a road needs 3 or more RSUs (mmtok simulate '
                        '--rsus N)')
    ids = rsu_ids(cfg.rsus)
    out_dir = Path(out_dir)
    log_dir = out_dir / 'logs'
    if cfg.bag:
        bag = Path(cfg.bag)
    else:
        tic = time.monotonic()
        bag = road_bag(out_dir, cfg.rsus, cfg.frames, cfg.seed)
        log(f'[soak] road bag {bag} ({cfg.rsus} RSUs x {cfg.frames} frames, seed {cfg.seed}; '
            f'{time.monotonic() - tic:.0f} s)')
    check_bag(bag, ids)
    env = local_dds_env(dict(os.environ))
    os.environ.update({k: env[k] for k in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID')})
    duration_s, warmup_s = cfg.minutes * 60.0, cfg.warmup_minutes * 60.0
    nodes = {rsu: RsuProcesses(rsu) for rsu in ids}
    t0: list[float] = [time.monotonic()]   # replaced when the replay starts playing
    clock = (lambda: time.monotonic() - t0[0])
    started_utc = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    wall0 = time.monotonic()

    def start(node: RsuProcesses) -> None:
        k = ids.index(node.rsu)
        n = len(node.pids)
        name = f'{node.rsu}_{NODE}' + (f'.{n}' if n else '')
        node.proc = NodeProcess('rsu_node', rsu_params(k, ids, cfg), log_dir / f'{name}.log',
                                env, extra_ros_args=rsu_ros_args(node.rsu))
        node.pids.append(node.proc.pid)

    replay = collector = None
    crashes: list[dict] = []
    replay_samples: dict[str, list] = {'t_s': [], 'rss_mb': []}
    ended_early: str | None = None
    drained = False
    try:
        log(f'[soak] starting {cfg.rsus} rsu_node processes (ROS_DOMAIN_ID='
            f'{env["ROS_DOMAIN_ID"]}, logs in {log_dir})')
        for node in nodes.values():
            start(node)
        for node in nodes.values():
            if not node.proc.wait_for('ready:', cfg.startup_timeout_s):
                raise SoakError(f'{node.rsu} rsu_node did not start (see {node.proc.log_path}):'
                                f' {" | ".join(process_tail(node.proc)) or "no output"}')
        collector = SoakCollector(ids, clock)
        replay = NodeProcess('bag_replay', {
            'bag': str(bag), 'rate': float(cfg.rate), 'loop': True,
            'wait_for_subscribers': 1, 'wait_timeout_s': 30.0, 'start_delay_s': 1.0},
            log_dir / 'bag_replay.log', env)
        if not replay.wait_for('playing', 90.0):
            raise SoakError(f'bag_replay did not start playing (see {replay.log_path}): '
                            f'{" | ".join(process_tail(replay)) or "no output"}')
        t0[0] = time.monotonic()
        log(f'[soak] playing {bag} in a loop at {cfg.rate:g}x for {cfg.minutes:g} min '
            f'({cfg.warmup_minutes:g} min warm-up)')
        ended_early = watch(cfg, nodes, collector, replay, replay_samples, crashes, clock,
                            start, duration_s, progress)
        end_s = clock()
        replay.stop()
        drained = drain(nodes, collector, clock, end_s)
    finally:
        if collector is not None:
            last_reports(nodes, collector, crashes, clock)
        for node in nodes.values():
            if node.proc is not None:
                node.exit_status = node.proc.stop()
        if replay is not None:
            replay.stop()
        if collector is not None:
            collector.close()
    loops = replay.text().count('loop ') if replay is not None else 0
    return {
        'config': asdict(cfg), 'started_utc': started_utc, 'bag': str(bag),
        'warmup_s': warmup_s, 'end_s': end_s, 'wall_s': time.monotonic() - wall0,
        'ended_early': ended_early, 'drained': drained,
        'nodes': {rsu: {'pids': n.pids, 'restarts': n.restarts, 'last_start_s': n.last_start_s,
                        'exit_status': n.exit_status, 'diagnostics': n.diagnostics,
                        'crashed': n.crashed,
                        'handovers_received': sum(1 for h in collector.handovers
                                                  if h['publisher'] == rsu),
                        'samples': n.samples} for rsu, n in nodes.items()},
        'latency': collector.latency, 'handovers': collector.handovers, 'crashes': crashes,
        'replay': {'pid': replay.pid, 'loops_completed': loops, 'rss_samples': replay_samples,
                   'exit_status': replay.popen.returncode},
    }


__all__ = ['SoakConfig', 'SoakError', 'run_soak']
