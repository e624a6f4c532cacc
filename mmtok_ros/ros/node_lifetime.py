"""How every executable of ours starts and ends rclpy: init, spin, quiet teardown, exit."""
from __future__ import annotations

import sys
from typing import NoReturn

from ..ros_env import DdsNotLocalError, require_local_dds, use_shipped_dds_profile


def init_rclpy(args: list[str] | None = None, *, context=None, rclpy_sigint: bool = True):
    """``rclpy.init`` after checking that DDS stays on this machine; returns ``rclpy``.

    ``context``: initialize this ``rclpy.context.Context`` instead of the default one (tests
    run nodes in-process, each on a context of its own). ``rclpy_sigint=False``: rclpy
    handles SIGTERM only; SIGINT stays Python's KeyboardInterrupt (see ``run_node``).

    Exits with status 2 and one clear line when the check fails (see ``ros_env``).
    """
    try:
        require_local_dds()
    except DdsNotLocalError as err:
        print(f'mmtok_ros: {err}', file=sys.stderr)
        raise SystemExit(2) from None
    use_shipped_dds_profile()   # large frames over shared memory (config/fastdds_profile.xml)
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    rclpy.init(args=args, context=context,
               signal_handler_options=(SignalHandlerOptions.ALL if rclpy_sigint
                                       else SignalHandlerOptions.SIGTERM))
    return rclpy


def ignore_sigint() -> None:
    """From here on SIGINT is ignored: the process is shutting down.

    ``ros2 launch`` sends its own SIGINT after the terminal's Ctrl-C; it lands while the node
    is being destroyed, and a KeyboardInterrupt there would be a traceback and a non-zero
    exit ("process has died"). rclpy's handler (which would shut the context down under our
    feet) is removed first; the process ends after the teardown, so nothing is restored.
    """
    import signal

    import rclpy
    rclpy.uninstall_signal_handlers()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Interrupt:
    """What the first SIGINT did: ``requested`` once it came; ``while_spinning`` decides how it
    ends the process (see ``_interrupt_once``)."""
    requested = False
    while_spinning = False


def _interrupt_once(signum, frame) -> None:
    """The first SIGINT: ignore every later one at once, then end the node.

    Under ``ros2 launch`` a terminal Ctrl-C reaches the node twice (the terminal's, then
    launch's), so every later SIGINT is ignored from the first on. While the node spins, the
    SIGINT only sets a flag that ``_spin`` reads every ``poll_s``: an exception raised from a
    signal handler lands wherever Python happens to be, and inside rclpy's executor that can be
    a half-built ``Task`` whose ``__del__`` then prints "Exception ignored ... Traceback" (seen
    in a fresh-clone CI run). While the node is being built (model load, warm-up: seconds), no
    loop would read the flag, so there it raises KeyboardInterrupt as before; the executor is
    built first, and nothing of rclpy's runs there.
    """
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _Interrupt.requested = True
    if not _Interrupt.while_spinning:
        raise KeyboardInterrupt


def interrupt_once_on_sigint() -> None:
    """Install ``_interrupt_once`` for SIGINT (main thread only; elsewhere Python's own
    handler stays)."""
    import signal
    import threading
    if threading.current_thread() is threading.main_thread():
        _Interrupt.requested = _Interrupt.while_spinning = False
        signal.signal(signal.SIGINT, _interrupt_once)


def _teardown(rclpy, node=None, executor=None) -> None:
    """Destroy ``node`` and shut rclpy down with SIGINT ignored; a late interrupt is quiet."""
    try:
        ignore_sigint()
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    except KeyboardInterrupt:   # arrived before SIGINT was ignored: shut down anyway
        rclpy.try_shutdown()


def _spin(node, executor, poll_s: float) -> None:
    """Spin in ``poll_s`` steps until the context ends or a SIGINT came (``_interrupt_once``)."""
    executor.add_node(node)
    _Interrupt.while_spinning = True
    try:
        while node.context.ok() and not _Interrupt.requested:
            executor.spin_once(timeout_sec=poll_s)
    finally:
        _Interrupt.while_spinning = False


def end_process(status: int) -> NoReturn:
    """End the process now with ``status``, after our own clean teardown.

    Once the node is destroyed and rclpy is shut down (results written, logs flushed) nothing
    is left to do, but the interpreter's finalization still unloads torch and the DDS
    participant's C++ objects, which takes seconds on a busy machine: longer than a launch's
    Ctrl-C should. Python's and C's output buffers are flushed first.
    """
    import ctypes
    import os
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed or broken pipe: nothing more to say
            pass
    ctypes.CDLL(None).fflush(None)
    os._exit(status)


def run_node(node_factory, args: list[str] | None = None, *, logger_name: str,
             poll_s: float = 0.1, end: bool = True) -> int:
    """``main()`` of our nodes: init, build, spin, quiet shutdown; the exit status.

    A ``StartupError`` raised while building the node (and a parameter rclpy rejects) is one
    FATAL log line and exit 1, no traceback (a missing model file or ``window_frames:=0`` is
    a configuration error, not a crash). Ctrl-C, twice as under ``ros2 launch``, or a
    shutdown from outside exits quietly with status 0, wherever it lands (while the node is
    built, before spinning, while spinning or while the node is destroyed).
    ``end``: the process ends right after the teardown (``end_process``); ``False`` returns
    the status instead, for a caller that runs a node in its own process.
    """
    rclpy = init_rclpy(args, rclpy_sigint=False)
    interrupt_once_on_sigint()
    from rclpy.exceptions import ParameterException
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    node = executor = None
    status = 0
    try:
        # the executor first: a Ctrl-C right after the node says it is ready must not land in
        # the executor's constructor (a half-built executor complains when collected)
        executor = SingleThreadedExecutor()
        try:
            node = node_factory()
        except (StartupError, ParameterException) as err:
            status = 1
            rclpy.logging.get_logger(logger_name).fatal(str(err))
        else:
            _spin(node, executor, poll_s)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        _teardown(rclpy, node, executor)
    if end:
        end_process(status)
    return status


class StartupError(RuntimeError):
    """A node cannot start (bad model file, bad parameter): one clear line, exit status 1."""
