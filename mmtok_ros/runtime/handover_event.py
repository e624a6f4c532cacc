"""What the handover decision (``handover.py``) takes in and gives out: a neighbour's link
state and a handover event with its reason code."""
from __future__ import annotations

from dataclasses import dataclass

NAN = float('nan')

# Reason text -> the uint8 constant of mmtok_msgs/HandoverTrigger (REASON_*).
REASON_CODES = {
    'predicted_blockage': 0,         # REASON_PREDICTED_BLOCKAGE
    'measured_below_threshold': 1,   # REASON_MEASURED_BELOW_THRESHOLD
    'predicted_clear': 2,            # REASON_LINK_RECOVERED
    'measured_clear': 2,             # REASON_LINK_RECOVERED (the hand-back floor)
    'target_blocked': 3,             # REASON_TARGET_BLOCKED
}


@dataclass(frozen=True)
class HandoverEvent:
    """A decision to attach the vehicle to ``target_rsu``."""

    stamp_ns: int           # newest frame stamp of the window that triggered it
    source_rsu: str
    target_rsu: str
    p_blocked: float        # the home link's predicted p_blocked in that window
    reason: str             # a key of REASON_CODES: the rule that fired
    serving_rssi_dbm: float = NAN   # measured home-link RSSI in that window; NaN if unknown
    target_rssi_dbm: float = NAN    # target's latest measured RSSI; NaN if unknown
    target_p_blocked: float = NAN   # target's latest p_blocked; NaN if unknown

    @property
    def reason_code(self) -> int:
        return REASON_CODES[self.reason]


@dataclass(frozen=True)
class NeighbourState:
    """A neighbour RSU's latest own-link state, as its typed link status reports it."""

    rsu_id: str
    stamp_ns: int           # newest frame stamp of the neighbour's window
    p_blocked: float        # NaN: no prediction (never eligible)
    rssi_dbm: float         # measured RSSI of the neighbour's link; NaN if unknown


__all__ = ['NAN', 'REASON_CODES', 'HandoverEvent', 'NeighbourState']
