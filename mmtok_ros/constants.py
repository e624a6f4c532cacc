"""Facts of the testbed and the paper that more than one module needs: one definition each.

Defaults that belong to one object (the handover hysteresis, the training recipe) live on that
object's config dataclass; everything else that two modules share is here.
"""
from __future__ import annotations

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000

S_TH_DBM = -47.0          # S_th of the paper's Eq. 8: serving RSSI below it means blocked
FRAME_PERIOD_MS = 300.0   # sensor frame period of the handover testbed (Section IV)
FRAME_PERIOD_NS = int(FRAME_PERIOD_MS * NS_PER_MS)

# p_blocked at or above which a window is called blocked, for a model file that carries none
DEFAULT_DECISION_THRESHOLD = 0.5
# how many frames ahead onset recall is scored (0.3, 0.6, 0.9, 1.5 s at the testbed's period)
ONSET_FRAMES_AHEAD = (1, 2, 3, 5)
# the routed model's target keep ratios gamma' swept in the paper's Tables II and VI
GAMMA_SWEEP = (0.3, 0.4, 0.5, 0.7)
# reactive baseline: frames at or above S_th before handing back to the home RSU
REACTIVE_OFF_FRAMES = 5

__all__ = ['DEFAULT_DECISION_THRESHOLD', 'FRAME_PERIOD_MS', 'FRAME_PERIOD_NS', 'GAMMA_SWEEP',
           'NS_PER_MS', 'NS_PER_S', 'ONSET_FRAMES_AHEAD', 'REACTIVE_OFF_FRAMES', 'S_TH_DBM']
