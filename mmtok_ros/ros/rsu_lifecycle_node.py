"""rsu_lifecycle_node: ``rsu_node`` as a ROS 2 managed (lifecycle) node.

The same node (``RsuNode``: parameters, model, runtime, callbacks, diagnostics), its start-up
steps run on the lifecycle transitions instead of at once:

- *configure*: load the model file, warm it up, build the runtime and the publishers (managed:
  they publish nothing until activated). A model that cannot be used fails the transition with
  one ERROR line; the node stays unconfigured and a corrected configure may follow.
- *activate*: the inference thread, the sensor and neighbour subscriptions and the
  ``/diagnostics`` timer; the publishers are enabled.
- *deactivate*: subscriptions and timer destroyed, the inference thread stopped, frames queued
  for it dropped and the synchronizer, the windows, the token cache and the hysteresis streaks
  started afresh: nothing from before the pause is published after it.
- *cleanup* / *shutdown*: the publishers destroyed and the model released.

Parameters are declared at construction (a bad value is one FATAL line and exit 1, as for
``rsu_node``); run-time changes made while unconfigured are used at the next configure.
The node name is ``rsu_node`` too: same parameter files, namespaces and topics.
"""
from __future__ import annotations

import gc
import logging
from typing import Any

from ..data.stream import WindowStream
from .params import stream_config
from .rsu_node import NODE_NAME, RsuNode
from .node_lifetime import StartupError, run_node

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.timer import Timer

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class RsuLifecycleNode(LifecycleNode, RsuNode):
    """``RsuNode`` driven by the lifecycle state machine (see module docstring)."""

    _publisher = LifecycleNode.create_lifecycle_publisher

    def __init__(self, **kwargs: Any) -> None:
        LifecycleNode.__init__(self, NODE_NAME, **kwargs)   # not RsuNode's: nothing starts
        self._declare()

    # ------------------------------------------------------------------ transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except StartupError as err:
            self.get_logger().error(f'configure failed: {err}')
            self._release()
            return FAILURE
        self.get_logger().info(f'configured (inactive): {self._summary()}')
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        super().on_activate(state)          # enables the managed publishers
        self._start()
        self.get_logger().info('active: subscribed to the inputs, publishing')
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        dropped = self._pause()
        super().on_deactivate(state)        # disables the managed publishers
        self.get_logger().info(f'inactive: inputs unsubscribed, {dropped} queued frame(s) '
                               'dropped, windows start afresh on activate')
        return SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info('unconfigured: model and publishers released')
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._pause()
        self._release()
        self.get_logger().info(f'finalized (from {state.label})')
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._pause()
        self._release()
        self.get_logger().error(f'error while {state.label}: released; unconfigured')
        return SUCCESS

    # ------------------------------------------------------------------ steps
    def _pause(self) -> int:
        """Undo ``_start``; drop what was pending. Returns the number of frames dropped."""
        for entity in self._inputs:
            if isinstance(entity, Timer):      # the diagnostics timer
                self.destroy_timer(entity)
            else:
                self.destroy_subscription(entity)
        self._inputs = []
        if self._inference_thread is None:
            return 0
        dropped = self.frames.pending()
        self._stop_inference()
        self.stream = self.runtime.stream = WindowStream(self.cfg, self.roles,
                                                         stream_config(self.p))
        self.runtime.predictor.clear()
        self.runtime.decision.reset_counters()
        return dropped

    def _release(self) -> None:
        """Undo ``_configure``: the publishers and the model (and its memory) go."""
        for name in ('pub_status', 'pub_handover', 'pub_diag'):
            pub = self.__dict__.pop(name, None)
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self.runtime = self.stream = None
        gc.collect()


def main(args: list[str] | None = None) -> int:
    logging.getLogger('mmtok_ros.data').setLevel(logging.ERROR)   # as rsu_node's main
    return run_node(RsuLifecycleNode, args, logger_name=NODE_NAME)


if __name__ == '__main__':
    raise SystemExit(main())
