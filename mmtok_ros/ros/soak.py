"""``mmtok soak``: N RSU nodes on a looped road bag for a long time, watched from outside.

The nodes are the real ``rsu_node`` executables, one per RSU in namespace ``rsuK`` with the
parameters ``launch/multi_rsu.launch.py`` gives them (plus ``use_sim_time`` and
``input_reliable``, as ``replay.launch.py`` sets them for a bag); the road is one scenario
of ``mmtok simulate --rsus N`` replayed by the real ``bag_replay`` with ``loop:=true``. This
process records, over real DDS (localhost only, a domain of its own), every RSU's typed
``LinkStatus`` (its ``latency_ms``), every ``HandoverTrigger`` and every node's
``/diagnostics``; it samples each node's RSS from ``/proc`` and watches for a node process
that exits (a crash; restarted and counted with ``restart``). The report is
``reports/soak.py``'s.
"""
from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import MmtokError
# RSS is read from /proc/<pid>/status (VmRSS) by ``resources.process_rss_mb``: psutil is not
# a dependency of the package (not in requirements.txt, not installed on the RSUs or here),
# and one line of /proc is all a soak needs on Linux, where the nodes run.
from ..resources import process_rss_mb
from ..ros_env import local_dds_env
from ..timing import percentile
from .collector import message_dict
from .processes import NodeProcess, executable, ros_args

NODE = 'rsu_node'
DIAG_SAMPLED = ('windows_built', 'windows_published', 'windows_skipped',
                'stale_after_time_jump', 'inference_errors', 'deadline_misses')


class SoakError(MmtokError, RuntimeError):
    """The soak could not start (a node that does not come up, a bag without the RSUs)."""


@dataclass(frozen=True)
class SoakConfig:
    rsus: int = 3
    rate: float = 1.0
    minutes: float = 30.0            # replay time, warm-up included
    warmup_minutes: float = 2.0
    device: str = 'cpu'
    model: str = ''                  # empty: the shipped model
    bag: str = ''                    # a road bag of N RSUs; empty: simulate one
    frames: int = 60                 # frames of the simulated road scenario (18 s at 300 ms)
    seed: int = 11
    restart: bool = False            # restart a node that exits, and count it
    torch_threads: int = 1
    sample_s: float = 2.0            # RSS and counters sampled this often
    startup_timeout_s: float = 180.0


def shipped_params_file() -> str | None:
    """config/rsu.yaml: the installed share dir, else the source tree (as the launch files)."""
    try:
        from ament_index_python.packages import get_package_share_directory
        candidate = Path(get_package_share_directory('mmtok_ros')) / 'config' / 'rsu.yaml'
        if candidate.is_file():
            return str(candidate)
    except Exception:  # noqa: BLE001 - not installed with ament: the source tree
        pass
    candidate = Path(__file__).resolve().parents[2] / 'config' / 'rsu.yaml'
    return str(candidate) if candidate.is_file() else None


def rsu_ids(n: int) -> list[str]:
    return [f'rsu{k}' for k in range(1, n + 1)]


def rsu_params(k: int, ids: list[str], cfg: SoakConfig) -> dict[str, Any]:
    """RSU ``ids[k]``'s parameters, as multi_rsu.launch.py sets them (its neighbour ahead is
    the model's second RSSI; the last RSU reads the one before it)."""
    rsu = ids[k]
    neighbour = ids[k + 1] if k + 1 < len(ids) else ids[k - 1]
    params = {'device': cfg.device, 'use_sim_time': True, 'rsu_id': rsu,
              'target_rsu': neighbour, 'neighbours': ','.join(i for i in ids if i != rsu),
              'rssi_topics': [f'/rssi/{rsu}', f'/rssi/{neighbour}'],
              'input_reliable': True,   # bag_replay publishes reliable (replay.launch.py)
              'torch_threads': int(cfg.torch_threads)}
    if cfg.model:        # ``-p model_path:=`` (empty) does not parse; the default is shipped
        params['model_path'] = cfg.model
    return params


class RsuProcess(NodeProcess):
    """``rsu_node`` in namespace ``/<rsu>`` with the shipped parameter file and ``params``
    over it: what ``multi_rsu.launch.py`` starts. (``NodeProcess`` passes ``-p`` arguments
    only; the remap and ``--params-file`` are added here, the rest is the same.)"""

    def __init__(self, rsu: str, params: dict[str, Any], log_path: Path,
                 env: dict[str, str]) -> None:
        self.name, self.log_path = NODE, log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open('w')
        args = executable(NODE) + ['--ros-args', '-r', f'__ns:=/{rsu}']
        params_file = shipped_params_file()
        if params_file:
            args += ['--params-file', params_file]
        self.popen = subprocess.Popen(args + ros_args(params)[1:], env=env, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)


def road_bag(scratch: Path, rsus: int, frames: int, seed: int) -> Path:
    """One road scenario of ``mmtok simulate --rsus N`` (written once, then reused)."""
    from ..sim.road import simulate_road
    root = scratch / f'road{rsus}_f{frames}_s{seed}'
    bag = root / 'scenario_00'
    if (bag / 'metadata.yaml').is_file() and (root / 'index.json').is_file():
        return bag
    if root.exists():      # a half-written one of ours (interrupted)
        shutil.rmtree(root)
    simulate_road(root, n_rsus=rsus, n_scenarios=1, seed=seed, frames_per_scenario=frames,
                  progress=False)
    return bag


def check_bag(bag: Path, ids: list[str]) -> None:
    meta = bag / 'metadata.yaml'
    if not meta.is_file():
        raise SoakError(f'{bag} is not a rosbag2 directory (no metadata.yaml)')
    text = meta.read_text(errors='replace')
    missing = [t for rsu in ids for t in (f'/{rsu}/camera/image_raw', f'/rssi/{rsu}')
               if t not in text]
    if missing:
        raise SoakError(f'{bag} has no {", ".join(missing[:4])}: not a road bag of '
                        f'{len(ids)} RSUs (mmtok simulate --rsus {len(ids)})')


def _number(text: str) -> float | int | str:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


class SoakCollector:
    """An rclpy node in this process: every RSU's ``LinkStatus`` and ``HandoverTrigger``
    (``/rsuK/mmtok/...``) and the latest ``/diagnostics`` of each, time-stamped on
    ``clock`` (seconds). Spins on a context and thread of its own."""

    def __init__(self, ids: list[str], clock: Callable[[], float]) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from mmtok_msgs.msg import HandoverTrigger, LinkStatus
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        from .qos import handover_qos, status_qos
        from .node_lifetime import init_rclpy
        self.clock = clock
        self.ids = list(ids)
        self.latency: dict[str, list[tuple[float, float]]] = {r: [] for r in ids}
        self.handovers: list[dict] = []
        self.diagnostics: dict[str, dict[str, Any]] = {}
        self.diag_received: dict[str, float] = {}
        self._lock = threading.Lock()
        self.context = Context()
        # Ctrl-C stays Python's KeyboardInterrupt (the soak ends early and reports): rclpy's
        # own handler would shut this context down and the soak would go on deaf.
        init_rclpy([], context=self.context, rclpy_sigint=False)
        self.node = rclpy.create_node('mmtok_soak_collector', context=self.context)
        for rsu in ids:
            self.node.create_subscription(LinkStatus, f'/{rsu}/mmtok/link_status',
                                          lambda m, r=rsu: self._on_status(r, m),
                                          status_qos(100))
            self.node.create_subscription(HandoverTrigger, f'/{rsu}/mmtok/handover',
                                          lambda m, r=rsu: self._on_handover(r, m),
                                          handover_qos(depth=10))
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag,
                                      status_qos(100))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - shutdown races end the spin; nothing to report
            pass

    def _on_status(self, rsu: str, msg: Any) -> None:
        self.latency[rsu].append((self.clock(), float(msg.latency_ms)))

    def _on_handover(self, rsu: str, msg: Any) -> None:
        event = message_dict(msg)
        event.update(publisher=rsu, t_s=round(self.clock(), 3))
        self.handovers.append(event)

    def _on_diag(self, msg: Any) -> None:
        for status in msg.status:
            if status.hardware_id in self.latency and status.name.startswith(NODE):
                values = {kv.key: _number(kv.value) for kv in status.values}
                with self._lock:
                    self.diagnostics[status.hardware_id] = values
                    self.diag_received[status.hardware_id] = self.clock()

    def latest(self, rsu: str) -> tuple[dict[str, Any], float | None]:
        with self._lock:
            return dict(self.diagnostics.get(rsu, {})), self.diag_received.get(rsu)

    def forget(self, rsu: str) -> dict[str, Any]:
        """The last report of ``rsu``'s process (it ended); the next one is a new process's."""
        with self._lock:
            self.diag_received.pop(rsu, None)
            return self.diagnostics.pop(rsu, {})

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def _tail(proc: NodeProcess, lines: int = 3) -> list[str]:
    try:
        return proc.text().strip().splitlines()[-lines:]
    except OSError:
        return []


def _crash(name: str, proc: NodeProcess, t_s: float) -> dict[str, Any]:
    return {'process': name, 'pid': proc.pid, 't_s': round(t_s, 1),
            'exit_status': proc.popen.returncode, 'log': str(proc.log_path),
            'last_lines': _tail(proc)}


class _Node:
    """One RSU's processes over the soak: the running one and what the ended ones left."""

    def __init__(self, rsu: str) -> None:
        self.rsu = rsu
        self.proc: NodeProcess | None = None
        self.pids: list[int] = []
        self.restarts = 0
        self.last_start_s = 0.0
        self.diagnostics: list[dict] = []     # the last report of each ended process
        self.crashed: list[bool] = []
        self.exit_status: int | None = None
        self.dead = False
        self.samples: dict[str, list] = {k: [] for k in (
            't_s', 'rss_mb', 'built', 'published', 'dropped', 'deadline_misses')}


def _drained(values: dict[str, Any]) -> bool:
    """Every window the node built is published or counted as dropped, none in flight."""
    if not values:
        return False
    done = sum(int(values.get(k, 0) or 0) for k in (
        'windows_published', 'windows_skipped', 'stale_after_time_jump', 'inference_errors'))
    return int(values.get('frames_pending', 0) or 0) == 0 and \
        done == int(values.get('windows_built', -1))


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
    nodes = {rsu: _Node(rsu) for rsu in ids}
    t0: list[float] = [time.monotonic()]   # replaced when the replay starts playing
    clock = (lambda: time.monotonic() - t0[0])
    started_utc = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    wall0 = time.monotonic()

    def start(node: _Node) -> None:
        k = ids.index(node.rsu)
        n = len(node.pids)
        name = f'{node.rsu}_{NODE}' + (f'.{n}' if n else '')
        node.proc = RsuProcess(node.rsu, rsu_params(k, ids, cfg), log_dir / f'{name}.log', env)
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
                                f' {" | ".join(_tail(node.proc)) or "no output"}')
        collector = SoakCollector(ids, clock)
        replay = NodeProcess('bag_replay', {
            'bag': str(bag), 'rate': float(cfg.rate), 'loop': True,
            'wait_for_subscribers': 1, 'wait_timeout_s': 30.0, 'start_delay_s': 1.0},
            log_dir / 'bag_replay.log', env)
        if not replay.wait_for('playing', 90.0):
            raise SoakError(f'bag_replay did not start playing (see {replay.log_path}): '
                            f'{" | ".join(_tail(replay)) or "no output"}')
        t0[0] = time.monotonic()
        log(f'[soak] playing {bag} in a loop at {cfg.rate:g}x for {cfg.minutes:g} min '
            f'({cfg.warmup_minutes:g} min warm-up)')
        ended_early = _watch(cfg, nodes, collector, replay, replay_samples, crashes, clock,
                             start, duration_s, progress)
        end_s = clock()
        replay.stop()
        drained = _drain(nodes, collector, clock, end_s)
    finally:
        if collector is not None:
            for node in nodes.values():
                if node.proc is None or node.dead:
                    continue
                if node.proc.popen.poll() is None:
                    node.diagnostics.append(collector.latest(node.rsu)[0])
                    node.crashed.append(False)
                else:      # exited after the soak time, before it was stopped: a crash too
                    crashes.append(_crash(node.rsu, node.proc, clock()))
                    node.diagnostics.append(collector.forget(node.rsu))
                    node.crashed.append(True)
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


def _sample(node: _Node, collector: SoakCollector, t: float) -> None:
    rss = process_rss_mb(node.proc.pid)[0] if node.proc is not None else None
    values, _ = collector.latest(node.rsu)
    ended = node.diagnostics
    s = node.samples

    def total(*keys: str) -> int:
        return sum(int(d.get(k, 0) or 0) for d in [*ended, values] for k in keys)

    s['t_s'].append(round(t, 2))
    s['rss_mb'].append(None if rss is None else round(rss, 2))
    s['built'].append(total('windows_built'))
    s['published'].append(total('windows_published'))
    s['dropped'].append(total('windows_skipped', 'stale_after_time_jump', 'inference_errors'))
    s['deadline_misses'].append(total('deadline_misses'))


def _watch(cfg: SoakConfig, nodes: dict[str, _Node], collector: SoakCollector,
           replay: NodeProcess, replay_samples: dict[str, list], crashes: list[dict],
           clock: Callable[[], float], start: Callable[[_Node], None], duration_s: float,
           progress: bool) -> str | None:
    """Sample, watch for exits (restart them with ``cfg.restart``) until ``duration_s``;
    why the soak ended early (the replay died, every node did, Ctrl-C), else None."""
    from tqdm import tqdm
    bar = tqdm(total=round(duration_s), unit='s', desc='soak', disable=not progress,
               dynamic_ncols=True, mininterval=1.0)
    next_sample = 0.0
    try:
        while (now := clock()) < duration_s:
            for node in nodes.values():
                if node.dead or node.proc.popen.poll() is None:
                    continue
                crashes.append(_crash(node.rsu, node.proc, now))
                node.proc.stop()
                node.diagnostics.append(collector.forget(node.rsu))
                node.crashed.append(True)
                bar.write(f'[soak] CRASH: {node.rsu} rsu_node exited with status '
                          f'{node.proc.popen.returncode} at {now:.0f} s (see '
                          f'{node.proc.log_path})')
                if cfg.restart:
                    node.restarts += 1
                    node.last_start_s = now
                    start(node)
                else:
                    node.dead = True
            if replay.popen.poll() is not None:
                crashes.append(_crash('bag_replay', replay, now))
                bar.write(f'[soak] CRASH: bag_replay exited at {now:.0f} s; ending the soak')
                return f'bag_replay exited at {now:.0f} s'
            if all(n.dead for n in nodes.values()):
                return f'every rsu_node exited (the last at {now:.0f} s)'
            if now >= next_sample:
                next_sample = now + cfg.sample_s
                for node in nodes.values():
                    _sample(node, collector, now)
                replay_samples['t_s'].append(round(now, 2))
                replay_samples['rss_mb'].append(process_rss_mb(replay.pid)[0])
                recent = [v for lat in collector.latency.values() for t, v in lat[-200:]
                          if t > now - 60]
                rss = '/'.join(f'{n.samples["rss_mb"][-1] or 0:.0f}' for n in nodes.values())
                published = sum(n.samples['published'][-1] for n in nodes.values())
                bar.set_postfix_str(f'RSS {rss} MiB, p99 (1 min) '
                                    f'{percentile(recent, 99) or 0:.0f} ms, published '
                                    f'{published}, crashes {len(crashes)}', refresh=False)
            bar.update(min(round(now), round(duration_s)) - bar.n)
            time.sleep(0.5)
        bar.update(round(duration_s) - bar.n)
        return None
    except KeyboardInterrupt:    # the nodes run in sessions of their own: still running
        bar.write(f'[soak] interrupted at {clock():.0f} s: draining and reporting what was '
                  'measured (Ctrl-C again to abort)')
        return f'interrupted at {clock():.0f} s'
    finally:
        bar.close()


def _drain(nodes: dict[str, _Node], collector: SoakCollector, clock: Callable[[], float],
           end_s: float, timeout_s: float = 20.0) -> bool:
    """After the replay stopped: until every live node has reported twice more, the second
    time unchanged and with every window accounted for (``_drained``)."""
    deadline = time.monotonic() + timeout_s
    seen: dict[str, tuple[float, dict]] = {}
    settled: set[str] = set()
    live = [n for n in nodes.values() if n.proc is not None and n.proc.popen.poll() is None]
    stopped_at = clock()
    while time.monotonic() < deadline and len(settled) < len(live):
        time.sleep(0.2)
        for node in live:
            values, received = collector.latest(node.rsu)
            if received is None or received <= stopped_at + 0.2 or node.rsu in settled:
                continue
            before = seen.get(node.rsu)
            if before is not None and received > before[0] and _drained(values) and \
                    values.get('windows_built') == before[1].get('windows_built'):
                settled.add(node.rsu)
            seen[node.rsu] = (received, values)
    return len(settled) == len(live)


__all__ = ['RsuProcess', 'SoakCollector', 'SoakConfig', 'SoakError', 'road_bag', 'rsu_params',
           'run_soak']
