"""A ROS user's install for the launch tests: a colcon workspace and ``ros2 launch`` processes.

``build_workspace`` builds this package in a colcon workspace (``--symlink-install``, the venv
as the underlay that holds rclpy, the message wheels and ``mmtok_msgs``), the way the README
tells a ROS user to. ``LaunchProcess`` runs ``ros2 launch mmtok_ros FILE args`` in a shell that
sourced the workspace's ``install/setup.bash`` (``test/launch_runner.py`` stands in for
``ros2 launch``, which is ros2cli and not on PyPI), and can Ctrl-C it like a terminal does.

Needs the ``launch`` / ``launch_ros`` sources of ``../shared/vendor`` (beside the project, in
CI too) and colcon, which ``make`` installs into a venv of its own (``build/colcon-venv``).
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ros_helpers import ProcessOutput

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT.parent / 'shared' / 'vendor'
COLCON_VENV = ROOT / 'build' / 'colcon-venv'
PREFIX = Path(sys.prefix)          # the venv: rclpy, the ROS wheels and mmtok_msgs live here


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def setup_bash(self) -> Path:
        return self.root / 'install' / 'setup.bash'

    @property
    def lib(self) -> Path:
        """Where ``ros2 run mmtok_ros EXE`` finds the executables."""
        return self.root / 'install' / 'mmtok_ros' / 'lib' / 'mmtok_ros'

    def shell(self, command: str) -> list[str]:
        """``bash -c`` that sources the workspace first, as a ROS user's terminal does."""
        return ['bash', '-c', f'. {shlex.quote(str(self.setup_bash))} && {command}']

    def env(self, **extra: str) -> dict[str, str]:
        """This test session's environment (DDS kept local) plus what the underlay needs."""
        env = dict(os.environ, PYTHONUNBUFFERED='1', RCUTILS_LOGGING_BUFFERED_STREAM='0',
                   RCUTILS_COLORIZED_OUTPUT='0')
        env['AMENT_PREFIX_PATH'] = os.pathsep.join(
            p for p in (env.get('AMENT_PREFIX_PATH', ''), str(PREFIX)) if p)
        env['PYTHONPATH'] = os.pathsep.join(
            p for p in (str(VENDOR), env.get('PYTHONPATH', '')) if p)
        env.update(extra)
        return env


def _colcon_site_packages() -> Path:
    found = sorted(COLCON_VENV.glob('lib/python*/site-packages'))
    if not found or not (found[0] / 'colcon_core').is_dir():
        raise RuntimeError(f'colcon is not installed in {COLCON_VENV}: run make first')
    return found[0]


def build_workspace(root: Path) -> Workspace:
    """``colcon build --symlink-install`` of this package in ``root`` (a few seconds)."""
    if not (VENDOR / 'launch').is_dir():
        raise RuntimeError(f'the launch sources are missing: expected them in {VENDOR}')
    (root / 'src').mkdir(parents=True, exist_ok=True)
    link = root / 'src' / 'mmtok_ros'
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    # colcon runs under the venv's Python, so the executables' shebang is the interpreter
    # that has torch and rclpy (as /usr/bin/python3 on a ROS install); its own packages come
    # from build/colcon-venv, which keeps them out of the project's venv.
    env = dict(os.environ, PATH=f'{PREFIX / "bin"}{os.pathsep}{os.environ["PATH"]}',
               CMAKE_PREFIX_PATH=str(PREFIX), AMENT_PREFIX_PATH=str(PREFIX),
               PYTHONPATH=str(_colcon_site_packages()))
    done = subprocess.run(
        [str(PREFIX / 'bin' / 'python'), '-m', 'colcon', '--log-base', str(root / 'log'),
         'build', '--symlink-install', '--packages-select', 'mmtok_ros',
         '--base-paths', str(root / 'src'), '--build-base', str(root / 'build'),
         '--install-base', str(root / 'install')],
        cwd=root, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f'colcon build failed:\n{done.stdout}\n{done.stderr}')
    return Workspace(root)


class LaunchProcess(ProcessOutput):
    """``ros2 launch mmtok_ros FILE ARGS`` in its own process group, output collected."""

    def __init__(self, ws: Workspace, launch_file: str, *args: str, cwd: Path,
                 env: dict[str, str] | None = None) -> None:
        runner = shlex.quote(str(ROOT / 'test' / 'launch_runner.py'))
        command = (f'exec {shlex.quote(str(PREFIX / "bin" / "python"))} {runner} mmtok_ros '
                   + ' '.join(shlex.quote(a) for a in (launch_file, *args)))
        # a process group of its own, as a terminal gives a foreground job
        super().__init__(subprocess.Popen(ws.shell(command), cwd=cwd, env=env or ws.env(),
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True, start_new_session=True))

    def ctrl_c(self, *, whole_group: bool) -> float:
        """SIGINT to launch alone, or to the group twice like a terminal; seconds to the end.

        ``whole_group``: the terminal's Ctrl-C reaches every process of the foreground group
        at once, and ``ros2 launch`` users press it twice as often as once.
        """
        start = time.monotonic()
        if whole_group:
            os.killpg(self.proc.pid, signal.SIGINT)
            time.sleep(0.05)
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGINT)
        else:
            self.proc.send_signal(signal.SIGINT)
        self.finish(timeout_s=20.0)
        return time.monotonic() - start

    def finish(self, timeout_s: float) -> int:
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._reader.join(timeout=5.0)
        return self.proc.returncode

    def kill(self) -> None:
        """Clean up after a failed test: nothing of this launch outlives it."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def group_alive(pgid: int) -> bool:
    """Whether any process of the group ``pgid`` is still running."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


__all__ = ['LaunchProcess', 'Workspace', 'build_workspace', 'group_alive']
