"""The settings of one RSU's inference (the node's run-time parameters) and the deadline
streak it warns on; ROS-free, read by the node's parameter table and by ``RsuRuntime``."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, fields

from ..constants import FRAME_PERIOD_MS
from .predictor import DeadlineController

# the deadline controller's own defaults (min_scale, max_scale, step, patience, headroom)
CONTROLLER_DEFAULTS = {name: param.default for name, param in
                       inspect.signature(DeadlineController).parameters.items()
                       if param.default is not inspect.Parameter.empty}


@dataclass(frozen=True)
class RuntimeConfig:
    """The settings of one RSU's inference; field names are the node's parameter names."""

    # p_blocked at or above which the next frame is reported blocked; < 0: the model file's
    blocked_threshold: float = -1.0
    # latency budget [ms] from the newest frame's arrival to the status publish
    deadline_ms: float = FRAME_PERIOD_MS
    deadline_warn_after: int = 3        # warn after this many consecutive deadline misses
    # lowest keep-ratio scale the controller may choose
    deadline_min_scale: float = CONTROLLER_DEFAULTS['min_scale']
    # consecutive windows over (or under headroom x) the deadline before the scale changes
    deadline_patience: int = CONTROLLER_DEFAULTS['patience']
    # every routed layer keeps scale * r_l of its tokens; the controller never goes above it
    # (0: the learned r_l, scale 1)
    keep_ratio_scale: float = 0.0


RUNTIME_FIELDS = frozenset(f.name for f in fields(RuntimeConfig))


class MissStreak:
    """Consecutive deadline misses; warn once when the streak reaches ``warn_after``."""

    def __init__(self) -> None:
        self.streak = 0
        self._warned = False

    def update(self, met: bool, warn_after: int) -> bool:
        """Record one window; True exactly when a WARN is due."""
        if met:
            self.streak, self._warned = 0, False
            return False
        self.streak += 1
        if self.streak >= warn_after and not self._warned:
            self._warned = True
            return True
        return False


__all__ = ['CONTROLLER_DEFAULTS', 'MissStreak', 'RUNTIME_FIELDS', 'RuntimeConfig']
