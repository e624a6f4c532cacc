"""handover_emulator: served RSSI under proactive, reactive and oracle handover (Fig. 5).

An adapter: it records the RSU node's handover triggers (with the time they arrive here: the
handover executes when the decision is known, so a late inference hands over late) and both
RSUs' measured RSSI; at shutdown, or ``exit_after_idle_s`` after the RSSI stops, it hands them
to the emulation core (``mmtok_ros.runtime.emulation``, the testbed preset: ``home_rsu`` is a
fixed home) and writes ``<stem>.png``, ``<stem>.csv`` and ``summary.json`` to ``out_dir``
(``mmtok_ros.reports.emulation``); ``out_dir`` is created and checked writable at start-up
(a probe file, removed again): one that cannot be written is one FATAL line and exit status
1 before anything is received, not an error after the whole replay. Run it with
``use_sim_time`` while a bag plays so trigger times are bag times.
"""
from __future__ import annotations

import math
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..constants import NS_PER_MS, NS_PER_S
from ..data.decode import stamp_ns
from ..reports.emulation import write_outputs
from ..runtime import emulation as emu
from .params import HANDOVER_EMULATOR_PARAMS, declare
from .qos import handover_qos, sensor_qos
from .node_lifetime import StartupError, run_node

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from mmtok_msgs.msg import HandoverTrigger
from sensor_msgs.msg import Temperature

NODE_NAME = 'handover_emulator'


class HandoverEmulatorNode(Node):
    """Collects triggers and RSSI, writes the emulation at the end (see module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.p = declare(self, HANDOVER_EMULATOR_PARAMS)
        p = self.p
        if len(p.rssi_topics) != 2:
            raise StartupError(f'cannot start: rssi_topics must name RSU 1 and RSU 2, got '
                               f'{p.rssi_topics}')
        self.truth = None
        if p.truth_path:
            try:
                self.truth = emu.load_truth(p.truth_path)
            except (OSError, ValueError) as err:
                raise StartupError(f'cannot start: truth sidecar {p.truth_path}: {err}') from None
        # relative to the working directory at start (ros2 launch: where it ran), once
        self.out_dir = Path(p.out_dir).expanduser().resolve()
        check_writable(self.out_dir)
        # the figures are drawn at shutdown, within a Ctrl-C's time budget: matplotlib's
        # import (about 0.9 s on a 2-core host) is paid here, at start-up, instead
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot  # noqa: F401
        self._lock = threading.Lock()
        self.triggers: list[dict] = []
        self.samples: dict[str, list[tuple[int, float]]] = {p.home_rsu: [], p.target_rsu: []}
        self.rejected = 0          # non-finite RSSI readings: left out, logged once, counted
        self.written: dict | None = None
        self._last_rssi_wall = None
        self.create_subscription(HandoverTrigger, p.handover_topic, self._on_trigger,
                                 handover_qos(depth=10))
        for rsu, topic in zip((p.home_rsu, p.target_rsu), p.rssi_topics):
            self.create_subscription(Temperature, topic,
                                     lambda m, r=rsu: self._on_rssi(r, m), sensor_qos(10))
        if p.exit_after_idle_s > 0:
            self.create_timer(0.2, self._check_idle,
                              clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f'emulating handover {p.home_rsu} -> {p.target_rsu} from '
                               f'{p.handover_topic}; results to {self.out_dir}')

    def _on_trigger(self, msg: HandoverTrigger) -> None:
        now_ns = self.get_clock().now().nanoseconds
        latency_ms = float(msg.latency_ms) if math.isfinite(msg.latency_ms) else 0.0
        with self._lock:
            self.triggers.append({'received_ns': now_ns, 'stamp_ns': stamp_ns(msg.header),
                                  'latency_ms': latency_ms, 'target_rsu': msg.target_rsu})

    def _on_rssi(self, rsu: str, msg: Temperature) -> None:
        value = float(msg.temperature)
        if not math.isfinite(value):
            self.rejected += 1
            if self.rejected == 1:
                self.get_logger().warning(f'non-finite RSSI {value} from {rsu} left out of the '
                                          'emulation (logged once; the count is in the '
                                          'final line)')
            return
        with self._lock:
            self.samples[rsu].append((stamp_ns(msg.header), value))
        self._last_rssi_wall = time.monotonic()

    def _check_idle(self) -> None:
        if self._last_rssi_wall is None or self.written is not None:
            return
        if time.monotonic() - self._last_rssi_wall > self.p.exit_after_idle_s:
            self.write()
            self.context.try_shutdown()

    def _trigger_time_ns(self, trigger: dict) -> int:
        """Receipt time in bag time; without sim time, window stamp + node latency."""
        received, stamp = trigger['received_ns'], trigger['stamp_ns']
        if abs(received - stamp) < 60 * NS_PER_S:   # same time base (use_sim_time)
            return received
        return stamp + int(trigger['latency_ms'] * NS_PER_MS)

    def write(self) -> dict | None:
        """Run the emulation on what was received and write the outputs; returns the summary."""
        p = self.p
        with self._lock:
            triggers = list(self.triggers)
            samples = {k: list(v) for k, v in self.samples.items()}
        if not samples[p.home_rsu] and self.truth is None:
            self.get_logger().warning('no RSSI received; nothing to emulate')
            return None
        if self.truth is not None:
            timeline = emu.with_measured(emu.timeline_from_truth(self.truth,
                                                                 home_rsu=p.home_rsu), samples)
        else:
            timeline = emu.timeline_from_samples(samples, home_rsu=p.home_rsu,
                                                 period_ns=int(p.frame_period_ms * NS_PER_MS),
                                                 s_th_dbm=p.s_th_dbm)
        proactive = emu.switches_from_triggers(
            (self._trigger_time_ns(t), t['target_rsu']) for t in triggers if t['target_rsu'])
        options = emu.EmulationOptions.testbed(home_rsu=p.home_rsu,
                                               hand_back_frames=p.reactive_off_frames)
        result = emu.emulate(timeline, options, proactive=proactive)
        results = result.results
        doc = write_outputs(self.out_dir, result, stem=p.stem or timeline.name or 'emulation')
        self.written = doc
        lines = [f'{n}: mean {r.metrics["mean_served_rssi_dbm"]:.1f} dBm, below S_th '
                 f'{r.metrics["time_below_threshold_s"]:.1f} s, {r.metrics["handovers"]} '
                 f'handovers, lead {r.metrics["lead_time_ms"]} ms'
                 for n, r in results.items() if r.metrics['mean_served_rssi_dbm'] is not None]
        self.get_logger().info(f'wrote {self.out_dir / "summary.json"} ({len(triggers)} '
                               f'triggers, {self.rejected} non-finite RSSI left out): '
                               + '; '.join(lines))
        return doc

    def destroy_node(self) -> None:
        if getattr(self, 'written', 1) is None:
            try:
                self.write()
            except Exception as err:  # results are best effort at shutdown; say why
                self.get_logger().error(f'could not write the emulation: '
                                        f'{type(err).__name__}: {err}')
        super().destroy_node()


def check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` if missing and write (and remove) a probe file there, so an
    unwritable ``out_dir`` is refused at start-up, not found after the whole replay."""
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise NotADirectoryError(20, 'exists and is not a directory')
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix='.write_probe_'):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        where = f' ({err.filename})' if err.filename and str(err.filename) != str(out_dir) \
            else ''
        raise StartupError(f'cannot start: out_dir {out_dir} cannot be written: '
                           f'{reason}{where}') from None


def main(args: list[str] | None = None) -> int:
    return run_node(HandoverEmulatorNode, args, logger_name=NODE_NAME)


if __name__ == '__main__':
    raise SystemExit(main())
