"""Our ROS executables as child processes: command line, log file, waits and a quiet stop.

Imports no rclpy: the tools that start nodes (``mmtok bench --e2e``, ``mmtok demo``) run
them as separate processes, each with DDS kept local (``ros_env.local_dds_env``).
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence


def executable(name: str) -> list[str]:
    """The console script next to this Python (the venv), else ``python -m``."""
    script = Path(sys.executable).parent / name
    if script.is_file():
        return [str(script)]
    return [sys.executable, '-m', f'mmtok_ros.ros.{name}']


def ros_args(params: dict[str, Any]) -> list[str]:
    """``--ros-args -p name:=value ...`` for ``params`` (bools and string lists in ROS syntax)."""
    out = ['--ros-args']
    for key, value in params.items():
        if isinstance(value, bool):
            value = 'true' if value else 'false'
        elif isinstance(value, (list, tuple)):
            value = '[' + ','.join(f"'{v}'" for v in value) + ']'
        out += ['-p', f'{key}:={value}']
    return out


class NodeProcess:
    """A node process whose output goes to a log file; waits on log lines, stops with SIGINT.

    ``extra_ros_args`` go after ``--ros-args`` and before the ``-p`` parameters, so a
    namespace remap (``-r __ns:=/rsu1``) or a ``--params-file`` is given as ``ros2 launch``
    gives it, and ``params`` override that file.
    """

    def __init__(self, name: str, params: dict[str, Any], log_path: Path,
                 env: dict[str, str], *, extra_ros_args: Sequence[str] = ()) -> None:
        self.name, self.log_path = name, log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open('w')
        args = ['--ros-args', *extra_ros_args, *ros_args(params)[1:]]
        self.popen = subprocess.Popen(executable(name) + args, env=env,
                                      stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def text(self) -> str:
        return self.log_path.read_text(errors='replace')

    def wait_for(self, needle: str, timeout_s: float) -> bool:
        """True once ``needle`` is in the log; False after ``timeout_s`` or if it exited."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if needle in self.text():
                return True
            if self.popen.poll() is not None:
                return needle in self.text()
            time.sleep(0.05)
        return False

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGINT (a quiet shutdown), then SIGKILL after ``timeout_s``; the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


__all__ = ['NodeProcess', 'executable', 'ros_args']
