"""Handover emulation for N >= 2 RSUs (ROS-free): who serves the car, frame by frame, under
the node's own decision (proactive), a reactive baseline and an oracle.

``timeline`` (frames, RSSI, blockages; the one frame-matching rule) -> ``predictions`` (each
RSU's p_blocked per frame; the models run on a bag) -> ``decide`` (the node's
``HandoverDecision``) and ``policies`` (reactive, oracle) -> ``metrics`` (one definition each,
the never-worse check) -> ``scenario`` (the options, the testbed and road presets, one call)
-> ``acceptance`` (the proactive metrics over many scenarios, checked against the targets).
Reports: ``mmtok_ros.reports.emulation``.
"""
from .acceptance import (IN_TIME_TARGET_SHARE, OUTAGE_SAVING_TARGET_SHARE,
                         SPURIOUS_TARGET_PER_HOUR, acceptance, proactive_totals)
from .decide import (FLOOR, HAND_BACK, PREDICTION, DecisionOptions, DecisionRecord, cause_of,
                     decide, proactive_switches)
from .metrics import (NEVER_WORSE_RSSI_TOL_DB, NEVER_WORSE_TIME_TOL_S, SPURIOUS_WINDOW_FRAMES,
                      PolicyResult, blockage_leads, effective_switches, evaluate_policy,
                      first_blockage_before, in_time, never_worse_check, per_hour,
                      saving_fraction, serve, spurious_handovers)
from .policies import (Switch, oracle_ahead_switches, oracle_best_switches,
                       reactive_switches, switches_from_triggers)
from .predictions import FramePredictions, predict_bag, prediction_scores, topic_maps_of
from .scenario import (LEAD_LOOKBACK_PERIODS, POLICIES, EmulationOptions, ScenarioResult,
                       baseline_switches, emulate, evaluate)
from .timeline import (Timeline, bags_and_truths, blocked_intervals, frame_index,
                       is_road_truth, load_truth, timeline_from_samples, timeline_from_truth,
                       values_on_frames, with_measured)

__all__ = ['DecisionOptions', 'DecisionRecord', 'EmulationOptions', 'FLOOR', 'FramePredictions',
           'HAND_BACK', 'IN_TIME_TARGET_SHARE', 'LEAD_LOOKBACK_PERIODS',
           'NEVER_WORSE_RSSI_TOL_DB', 'NEVER_WORSE_TIME_TOL_S', 'OUTAGE_SAVING_TARGET_SHARE',
           'POLICIES', 'PREDICTION', 'PolicyResult', 'SPURIOUS_TARGET_PER_HOUR',
           'SPURIOUS_WINDOW_FRAMES', 'ScenarioResult', 'Switch', 'Timeline', 'acceptance',
           'bags_and_truths', 'baseline_switches', 'blockage_leads', 'blocked_intervals',
           'cause_of', 'decide', 'effective_switches', 'emulate', 'evaluate', 'evaluate_policy',
           'first_blockage_before', 'frame_index', 'in_time', 'is_road_truth', 'load_truth',
           'never_worse_check', 'oracle_ahead_switches', 'oracle_best_switches', 'per_hour',
           'predict_bag', 'prediction_scores', 'proactive_switches', 'proactive_totals',
           'reactive_switches', 'saving_fraction', 'serve', 'spurious_handovers',
           'switches_from_triggers', 'timeline_from_samples', 'timeline_from_truth',
           'topic_maps_of', 'values_on_frames', 'with_measured']
