"""Facts of the testbed and the paper that more than one module needs: one definition each."""
from __future__ import annotations

S_TH_DBM = -47.0          # S_th of the paper's Eq. 8: serving RSSI below it means blocked
FRAME_PERIOD_MS = 300.0   # sensor frame period of the handover testbed (Section IV)
FRAME_PERIOD_NS = int(FRAME_PERIOD_MS * 1_000_000)

__all__ = ['FRAME_PERIOD_MS', 'FRAME_PERIOD_NS', 'S_TH_DBM']
