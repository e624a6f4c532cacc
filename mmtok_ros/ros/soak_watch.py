"""The soak's watch over its processes: each RSU's node processes (the running one and
what the ended ones reported), a node that exits during the soak (a crash, restarted with
``--restart``), the samples of RSS and counters, and the drain after the replay stopped."""
from __future__ import annotations

import time
from typing import Any, Callable

# RSS is read from /proc/<pid>/status (VmRSS) by ``resources.process_rss_mb``: psutil is not
# a dependency of the package (not in requirements.txt, not installed on the RSUs or here),
# and one line of /proc is all a soak needs on Linux, where the nodes run.
from ..resources import process_rss_mb
from ..timing import percentile
from .processes import NodeProcess
from .soak_collector import SoakCollector
from .soak_setup import SoakConfig


def process_tail(proc: NodeProcess, lines: int = 3) -> list[str]:
    """The last lines of ``proc``'s log: why it did not start, or how it ended."""
    try:
        return proc.text().strip().splitlines()[-lines:]
    except OSError:
        return []


def crash_record(name: str, proc: NodeProcess, t_s: float) -> dict[str, Any]:
    """A process that exited during the soak, as the report lists it."""
    return {'process': name, 'pid': proc.pid, 't_s': round(t_s, 1),
            'exit_status': proc.popen.returncode, 'log': str(proc.log_path),
            'last_lines': process_tail(proc)}


class RsuProcesses:
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


def drained(values: dict[str, Any]) -> bool:
    """Every window the node built is published or counted as dropped, none in flight."""
    if not values:
        return False
    done = sum(int(values.get(k, 0) or 0) for k in (
        'windows_published', 'windows_skipped', 'stale_after_time_jump', 'inference_errors'))
    return int(values.get('frames_pending', 0) or 0) == 0 and \
        done == int(values.get('windows_built', -1))


def sample(node: RsuProcesses, collector: SoakCollector, t: float) -> None:
    """One sample of ``node``: its RSS now and its window counters summed over its processes."""
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


def watch(cfg: SoakConfig, nodes: dict[str, RsuProcesses], collector: SoakCollector,
          replay: NodeProcess, replay_samples: dict[str, list], crashes: list[dict],
          clock: Callable[[], float], start: Callable[[RsuProcesses], None],
          duration_s: float, progress: bool) -> str | None:
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
                crashes.append(crash_record(node.rsu, node.proc, now))
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
                crashes.append(crash_record('bag_replay', replay, now))
                bar.write(f'[soak] CRASH: bag_replay exited at {now:.0f} s; ending the soak')
                return f'bag_replay exited at {now:.0f} s'
            if all(n.dead for n in nodes.values()):
                return f'every rsu_node exited (the last at {now:.0f} s)'
            if now >= next_sample:
                next_sample = now + cfg.sample_s
                for node in nodes.values():
                    sample(node, collector, now)
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


def drain(nodes: dict[str, RsuProcesses], collector: SoakCollector, clock: Callable[[], float],
          end_s: float, timeout_s: float = 20.0) -> bool:
    """After the replay stopped: until every live node has reported twice more, the second
    time unchanged and with every window accounted for (``drained``)."""
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
            if before is not None and received > before[0] and drained(values) and \
                    values.get('windows_built') == before[1].get('windows_built'):
                settled.add(node.rsu)
            seen[node.rsu] = (received, values)
    return len(settled) == len(live)


def last_reports(nodes: dict[str, RsuProcesses], collector: SoakCollector,
                 crashes: list[dict], clock: Callable[[], float]) -> None:
    """Before the nodes are stopped: each running node's last report; a node that exited
    after the soak time, before it was stopped, is a crash too."""
    for node in nodes.values():
        if node.proc is None or node.dead:
            continue
        if node.proc.popen.poll() is None:
            node.diagnostics.append(collector.latest(node.rsu)[0])
            node.crashed.append(False)
        else:
            crashes.append(crash_record(node.rsu, node.proc, clock()))
            node.diagnostics.append(collector.forget(node.rsu))
            node.crashed.append(True)


__all__ = ['RsuProcesses', 'crash_record', 'drain', 'drained', 'last_reports', 'process_tail',
           'sample', 'watch']
