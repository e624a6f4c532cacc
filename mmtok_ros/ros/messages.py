"""Typed outputs (``mmtok_msgs``) built from the core's values: the node only publishes them.

Field meanings and units are in ``mmtok_msgs/msg/*.msg``.
"""
from __future__ import annotations

from typing import Any

from .diagnostics import set_stamp, set_time

from mmtok_msgs.msg import HandoverTrigger, LinkStatus

NAN = float('nan')


def link_status(pred: Any, *, rsu_id: str, serving_rsu: str, threshold: float,
                own_rssi_dbm: float, latency_ms: float, deadline_ms: float,
                keep_scale: float, period_ns: int, method: str) -> LinkStatus:
    """One prediction (``runtime.predictor.Prediction``) as a ``LinkStatus``."""
    msg = LinkStatus()
    set_stamp(msg.header, pred.newest_stamp_ns)       # the window's newest frame
    msg.header.frame_id = rsu_id
    msg.rsu_id, msg.serving_rsu = rsu_id, serving_rsu
    msg.status = LinkStatus.STATUS_BLOCKED if pred.blocked else LinkStatus.STATUS_CLEAR
    msg.p_blocked, msg.blocked_threshold = pred.p_blocked, threshold
    msg.rssi_dbm = own_rssi_dbm
    msg.inference_ms, msg.latency_ms = pred.inference_ms, latency_ms
    msg.deadline_ms, msg.deadline_met = deadline_ms, latency_ms <= deadline_ms
    msg.keep_scale = keep_scale
    msg.tokens_per_layer = [int(k) for k in pred.tokens_per_layer]
    msg.frames_tokenized = pred.frames_tokenized
    set_time(msg.predicted_for, pred.newest_stamp_ns + period_ns)
    msg.method = method
    return msg


def handover_trigger(event: Any, *, rsu_id: str, latency_ms: float) -> HandoverTrigger:
    """One decision (``runtime.handover.HandoverEvent``) as a ``HandoverTrigger``."""
    msg = HandoverTrigger()
    set_stamp(msg.header, event.stamp_ns)
    msg.header.frame_id = rsu_id
    msg.source_rsu, msg.target_rsu = event.source_rsu, event.target_rsu
    msg.reason, msg.reason_text = event.reason_code, event.reason
    msg.p_blocked, msg.serving_rssi_dbm = event.p_blocked, event.serving_rssi_dbm
    msg.target_rssi_dbm, msg.target_p_blocked = event.target_rssi_dbm, event.target_p_blocked
    msg.time_to_blockage_s = NAN      # the model predicts the next frame, not a time
    msg.latency_ms = latency_ms
    return msg


__all__ = ['handover_trigger', 'link_status']
