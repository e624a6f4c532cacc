"""Ctrl-C under ``ros2 launch`` reaches our processes: for the launch files only.

``launch`` (interactive, as ``ros2 launch`` runs it) does not pass a SIGINT it receives on to
its children: it assumes the terminal sent the SIGINT to the whole process group, so the
children have it already, and only arms a SIGTERM after ``sigterm_timeout`` (5 s), logged as
"failed to terminate". A SIGINT sent to the launch process alone (``kill -INT``, a
supervisor, a test harness) therefore left our nodes running for 5 s and then ended them with
SIGTERM. The handler below sends SIGINT to each of our processes when launch shuts down
because of a SIGINT; when the terminal has signalled the group already, the process gets a
second SIGINT, which our executables take quietly (``ros.node_lifetime.run_node``).

``launch`` is imported inside the function: it exists where launch files run (a ROS install,
the launch tests), and no other module of the package may need it.
"""
from __future__ import annotations


def sigint_on_ctrl_c(actions: list) -> object:
    """A ``RegisterEventHandler``: on a shutdown caused by SIGINT, SIGINT each of ``actions``."""
    import signal

    from launch.actions import EmitEvent, RegisterEventHandler
    from launch.event_handlers import OnShutdown
    from launch.events.process import SignalProcess
    from launch.events import matches_action

    def forward(event, context):
        if not getattr(event, 'due_to_sigint', False):
            return None   # launch sends SIGINT itself on any other shutdown
        return [EmitEvent(event=SignalProcess(signal_number=signal.SIGINT,
                                              process_matcher=matches_action(action)))
                for action in actions]

    return RegisterEventHandler(OnShutdown(on_shutdown=forward))


__all__ = ['sigint_on_ctrl_c']
