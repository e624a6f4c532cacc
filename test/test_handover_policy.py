"""Handover decision with N neighbours and the reactive floor (mmtok_ros.runtime.handover)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mmtok_ros.constants import S_TH_DBM
from mmtok_ros.runtime import emulation as emu
from mmtok_ros.runtime.handover import (REASON_CODES, HandoverDecision, HysteresisConfig)

P = 300_000_000
T0 = 1_000 * 1_000_000_000
CLEAR_DBM = -40.0
LOW_DBM = -70.0          # well below S_th


def decision(target='rsu2', **cfg) -> HandoverDecision:
    return HandoverDecision('rsu1', target, HysteresisConfig(**cfg))


def _floor_timeline(n=40, blocked=range(12, 18)):
    t = T0 + P * np.arange(n, dtype=np.int64)
    home = np.full(n, CLEAR_DBM)
    home[list(blocked)] = LOW_DBM
    true = {'rsu1': home, 'rsu2': np.full(n, -44.0)}
    return t, home, emu.Timeline(t, true, true, {'rsu1': [(int(t[min(blocked)]),
                                                          int(t[max(blocked)]))]},
                                 'rsu1', name='floor')


def see(d: HandoverDecision, k: int, states: dict) -> None:
    """Neighbour link statuses stamped at frame k: {rsu: (p_blocked, rssi_dbm)}."""
    for rsu, (p, rssi) in states.items():
        d.observe_neighbour(rsu, T0 + k * P, p, rssi)


def test_target_is_the_clear_neighbour_with_the_best_rssi():
    d = decision()
    see(d, 0, {'rsu2': (0.1, -45.0), 'rsu3': (0.2, -41.0), 'rsu4': (0.9, -35.0)})
    e = d.update(T0, 0.95, serving_rssi_dbm=-44.0)
    # rsu4 is strongest but predicted blocked; rsu3 beats rsu2 on RSSI
    assert (e.target_rsu, e.reason, e.reason_code) == ('rsu3', 'predicted_blockage', 0)
    assert (e.target_rssi_dbm, e.target_p_blocked, e.serving_rssi_dbm) == \
        (-41.0, pytest.approx(0.2), -44.0)
    assert d.serving_rsu == 'rsu3'


def test_a_neighbour_measured_below_s_th_or_without_rssi_ranks_lower():
    d = decision()
    see(d, 0, {'rsu2': (0.1, float('nan')), 'rsu3': (0.1, S_TH_DBM - 1.0),
               'rsu4': (0.1, -46.0)})
    assert d.update(T0, 0.9).target_rsu == 'rsu4'
    d = decision()
    see(d, 0, {'rsu2': (0.1, float('nan')), 'rsu3': (0.1, S_TH_DBM - 1.0)})
    assert d.update(T0, 0.9).target_rsu == 'rsu2'       # unknown RSSI beats a measured block


def test_stale_neighbour_is_ignored():
    d = decision(neighbour_stale_ns=2 * P)
    see(d, 0, {'rsu3': (0.0, -38.0)})                    # best, but 3 frames old at k = 3
    see(d, 3, {'rsu2': (0.1, -45.0)})
    see(d, 9, {'rsu4': (0.0, -30.0)})                    # from the future (looped bag): stale
    e = d.update(T0 + 3 * P, 0.9)
    assert e.target_rsu == 'rsu2'
    assert set(d.neighbours) == {'rsu2', 'rsu3', 'rsu4'}


def test_without_fresh_neighbour_states_the_configured_target_is_taken():
    d = decision(neighbour_stale_ns=P)
    see(d, 0, {'rsu3': (0.0, -38.0)})
    assert d.update(T0 + 5 * P, 0.9).target_rsu == 'rsu2'   # rsu3 stale: the 2-RSU default
    assert HandoverDecision('rsu1', None).update(T0, 0.9) is None


def test_all_neighbours_blocked_means_no_handover_until_one_clears():
    d = decision()
    see(d, 0, {'rsu2': (0.8, -42.0), 'rsu3': (0.1, -60.0)})
    assert d.update(T0, 0.9) is None
    assert d.no_target == 1 and d.serving_rsu == 'rsu1'
    see(d, 1, {'rsu2': (0.2, -42.0)})
    e = d.update(T0 + P, 0.9)
    assert e.target_rsu == 'rsu2' and d.no_target == 1


def test_reactive_floor_hands_over_with_the_model_held_at_clear():
    d = decision()
    see(d, 0, {'rsu2': (0.1, -45.0), 'rsu3': (0.0, -42.0)})
    assert d.update(T0, 0.0, serving_rssi_dbm=CLEAR_DBM) is None
    see(d, 1, {'rsu2': (0.1, -45.0), 'rsu3': (0.0, -42.0)})
    e = d.update(T0 + P, 0.0, serving_rssi_dbm=LOW_DBM)
    assert (e.target_rsu, e.reason, e.reason_code) == ('rsu3', 'measured_below_threshold', 1)
    assert e.p_blocked == 0.0 and e.serving_rssi_dbm == LOW_DBM


def test_floor_windows_counts_consecutive_measurements():
    d = decision(floor_windows=2)
    assert d.update(T0, 0.0, serving_rssi_dbm=LOW_DBM) is None
    assert d.update(T0 + P, 0.0, serving_rssi_dbm=-46.0) is None   # back above S_th: reset
    assert d.update(T0 + 2 * P, 0.0, serving_rssi_dbm=LOW_DBM) is None
    assert d.update(T0 + 3 * P, 0.0, serving_rssi_dbm=float('nan')) is None  # no report
    e = d.update(T0 + 4 * P, 0.0, serving_rssi_dbm=LOW_DBM)
    assert e is not None and e.reason == 'measured_below_threshold'


def test_no_hand_back_while_the_home_link_is_measured_below_s_th():
    d = decision(off_windows=2, min_dwell_ns=0)
    assert d.update(T0, 0.0, serving_rssi_dbm=LOW_DBM).target_rsu == 'rsu2'
    # the model keeps saying clear, but the home link is still measured down: stay
    for k in range(1, 6):
        assert d.update(T0 + k * P, 0.0, serving_rssi_dbm=LOW_DBM) is None
    assert d.update(T0 + 6 * P, 0.0, serving_rssi_dbm=CLEAR_DBM) is None
    e = d.update(T0 + 7 * P, 0.0, serving_rssi_dbm=CLEAR_DBM)
    assert (e.target_rsu, e.reason, e.reason_code) == ('rsu1', 'predicted_clear', 2)


def test_serving_neighbour_blocked_moves_to_another_or_home():
    d = decision()
    see(d, 0, {'rsu2': (0.1, -45.0), 'rsu3': (0.1, -42.0)})
    assert d.update(T0, 0.9, serving_rssi_dbm=-44.0).target_rsu == 'rsu3'
    see(d, 1, {'rsu2': (0.1, -45.0), 'rsu3': (0.9, -42.0)})        # rsu3 predicts its block
    e = d.update(T0 + P, 0.9, serving_rssi_dbm=-44.0)
    assert (e.source_rsu, e.target_rsu, e.reason, e.reason_code) == \
        ('rsu3', 'rsu2', 'target_blocked', 3)
    see(d, 2, {'rsu2': (0.1, -60.0), 'rsu3': (0.9, -42.0)})        # rsu2 measured down now:
    e = d.update(T0 + 2 * P, 0.9)                                  # the measured-best link
    assert (e.source_rsu, e.target_rsu, e.reason) == ('rsu2', 'rsu3', 'target_blocked')
    see(d, 3, {'rsu2': (0.1, -60.0), 'rsu3': (0.9, -42.0)})        # rsu3 still predicts its
    e = d.update(T0 + 3 * P, 0.5, serving_rssi_dbm=-44.0)          # block; home is clear
    assert (e.target_rsu, e.reason) == ('rsu1', 'target_blocked')


def test_testbed_target_measured_down_by_this_node_sends_the_car_home_despite_the_model():
    # the testbed: no neighbour node reports rsu2's link, this node reads it (second RSSI).
    # The model still says rsu1 blocked (a late all-clear) while rsu1 measures clear again
    # and rsu2 goes down: the floor for the serving link hands the car back home, as the
    # reactive policy would, instead of leaving it on a blocked link
    d = decision(min_dwell_ns=0)
    assert d.update(T0, 0.9, serving_rssi_dbm=CLEAR_DBM, target_rssi_dbm=-41.0).target_rsu == \
        'rsu2'
    assert d.update(T0 + P, 0.9, serving_rssi_dbm=CLEAR_DBM, target_rssi_dbm=-42.0) is None
    assert d.serving_state.rssi_dbm == -42.0 and math.isnan(d.serving_state.p_blocked)
    e = d.update(T0 + 2 * P, 0.9, serving_rssi_dbm=CLEAR_DBM, target_rssi_dbm=LOW_DBM)
    assert (e.source_rsu, e.target_rsu, e.reason) == ('rsu2', 'rsu1', 'target_blocked')
    # home measured down as well: nobody measures better, stay (and count it)
    d = decision(min_dwell_ns=0)
    d.update(T0, 0.9, serving_rssi_dbm=CLEAR_DBM)
    assert d.update(T0 + P, 0.9, serving_rssi_dbm=LOW_DBM, target_rssi_dbm=LOW_DBM) is None
    assert d.no_target == 1
    # without the node's own measurement of rsu2 nothing changes (the rules before)
    d = decision(min_dwell_ns=0)
    d.update(T0, 0.9, serving_rssi_dbm=CLEAR_DBM)
    assert d.update(T0 + P, 0.9, serving_rssi_dbm=CLEAR_DBM) is None


def test_a_serving_neighbour_measured_down_goes_to_the_best_measured_link_like_reactive():
    d = decision()
    see(d, 0, {'rsu2': (0.1, -45.0), 'rsu3': (0.1, -43.0)})
    assert d.update(T0, 0.9, serving_rssi_dbm=-44.0).target_rsu == 'rsu3'
    # rsu3's link is measured below S_th; rsu2's model says blocked but its link measures
    # well, better than home's: the floor follows the measurements, as reactive does
    see(d, 1, {'rsu2': (0.9, -41.0), 'rsu3': (0.1, -60.0)})
    e = d.update(T0 + P, 0.9, serving_rssi_dbm=-44.0)
    assert (e.source_rsu, e.target_rsu, e.reason) == ('rsu3', 'rsu2', 'target_blocked')
    see(d, 2, {'rsu2': (0.1, -58.0), 'rsu3': (0.1, -60.0)})        # now rsu2 is down too
    e = d.update(T0 + 2 * P, 0.9, serving_rssi_dbm=-44.0)          # home measures best
    assert (e.target_rsu, e.reason) == ('rsu1', 'target_blocked')


def test_the_floor_takes_the_best_measured_neighbour_even_if_its_model_says_blocked():
    d = decision()
    see(d, 0, {'rsu2': (0.95, -41.0), 'rsu3': (0.9, -44.0)})        # every model: blocked
    e = d.update(T0, 0.0, serving_rssi_dbm=-55.0)                   # own link measured down
    assert (e.target_rsu, e.reason) == ('rsu2', 'measured_below_threshold')
    assert e.target_rssi_dbm == -41.0


@pytest.mark.parametrize('rssi', [None, CLEAR_DBM])
def test_two_rsu_hysteresis_is_unchanged(rssi):
    """The sequence of test_emulation's hysteresis test, with rsu2 reporting clear."""
    d = decision(p_on=0.5, p_off=0.3, on_windows=1, off_windows=3, min_dwell_ns=2 * P)
    ps = [0.1, 0.6, 0.9, 0.4, 0.2, 0.6, 0.2, 0.1, 0.1, 0.1, 0.9]
    fired = []
    for k, p in enumerate(ps):
        see(d, k, {'rsu2': (0.05, -44.0)})
        e = d.update(T0 + k * P, p, serving_rssi_dbm=rssi)
        if e is not None:
            fired.append((k, e.target_rsu, e.reason))
    assert fired == [(1, 'rsu2', 'predicted_blockage'), (8, 'rsu1', 'predicted_clear'),
                     (10, 'rsu2', 'predicted_blockage')]


def test_floor_hands_over_when_the_reactive_baseline_does():
    """Never worse than reactive: with the model held at clear, the floor (1 window) hands
    over at the same frame as the emulator's reactive policy."""
    t, home, tl = _floor_timeline(n=30)
    reactive = emu.baseline_switches(tl, emu.EmulationOptions.testbed())['reactive']
    d = decision(off_windows=5, min_dwell_ns=0)
    ours = [(int(tk), e.target_rsu) for tk, r in zip(t.tolist(), home.tolist())
            if (e := d.update(int(tk), 0.0, serving_rssi_dbm=r)) is not None]
    assert [(s.time_ns - 1, s.rsu) for s in reactive] == ours    # reactive adds 1 ns
    assert ours[0] == (int(t[12]), 'rsu2')


def test_a_late_all_clear_hands_back_when_the_reactive_policy_does():
    """The hand-back floor: a model that keeps p between p_off and p_on after the blockage
    (a late all-clear) no longer holds the car on rsu2 for the dwell; home measured clear for
    the reactive hand-back time is enough, so the switches equal the reactive policy's."""
    t, home, tl = _floor_timeline()
    reactive = emu.baseline_switches(tl, emu.EmulationOptions.testbed())['reactive']
    d = decision()                                   # defaults: dwell 3 s = 10 frames
    events = [(int(tk), e) for tk, r in zip(t.tolist(), home.tolist())
              if (e := d.update(int(tk), 0.5, serving_rssi_dbm=r)) is not None]
    assert [(s.time_ns - 1, s.rsu) for s in reactive] == [(tk, e.target_rsu)
                                                         for tk, e in events]
    assert [(e.reason, e.reason_code) for _, e in events] == \
        [('measured_below_threshold', 1), ('measured_clear', 2)]
    assert events[1][0] == int(t[17 + 5])           # 5 frames measured clear after the block
    # off: the old hand-back waits for the dwell and for p < p_off, here never
    d = decision(clear_windows=0)
    assert [e.reason for r, tk in zip(home.tolist(), t.tolist())
            if (e := d.update(int(tk), 0.5, serving_rssi_dbm=r))] == ['measured_below_threshold']


def test_the_hand_back_floor_neither_undoes_a_proactive_handover_nor_overrides_a_warning():
    # a proactive handover while home is still measured clear: home measured clear afterwards
    # is what was predicted to end, not a recovery; no hand-back before the dwell
    d = decision(p_off=0.3)
    assert d.update(T0, 0.9, serving_rssi_dbm=CLEAR_DBM).reason == 'predicted_blockage'
    for k in range(1, 9):
        assert d.update(T0 + k * P, 0.4, serving_rssi_dbm=CLEAR_DBM) is None
    # after a blockage, home measured clear but the model warns of the next one (p >= p_on)
    d = decision()
    assert d.update(T0, 0.9, serving_rssi_dbm=LOW_DBM).reason == 'measured_below_threshold'
    for k in range(1, 8):
        assert d.update(T0 + k * P, 0.7, serving_rssi_dbm=CLEAR_DBM) is None
    # a window without a measurement neither extends nor breaks the clear streak
    d = decision()
    d.update(T0, 0.9, serving_rssi_dbm=LOW_DBM)
    rssi = [CLEAR_DBM, CLEAR_DBM, float('nan'), CLEAR_DBM, CLEAR_DBM]
    assert [d.update(T0 + (k + 1) * P, 0.5, serving_rssi_dbm=r) for k, r in
            enumerate(rssi)] == [None] * 5
    assert d.update(T0 + 6 * P, 0.5, serving_rssi_dbm=CLEAR_DBM).reason == 'measured_clear'


def test_bad_input_is_refused():
    d = decision()
    with pytest.raises(ValueError, match='other than the home'):
        d.observe_neighbour('rsu1', T0, 0.1, -40.0)
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        d.observe_neighbour('rsu2', T0, 1.5, -40.0)
    with pytest.raises(ValueError, match='floor_windows'):
        HysteresisConfig(floor_windows=0)
    d.observe_neighbour('rsu3', T0, float('nan'), -30.0)      # no prediction: never a target
    assert math.isnan(d.neighbours['rsu3'].p_blocked)
    d.observe_neighbour('rsu2', T0, 0.1, -45.0)
    assert d.update(T0, 0.9).target_rsu == 'rsu2'
    assert set(REASON_CODES) == {'predicted_blockage', 'measured_below_threshold',
                                 'predicted_clear', 'measured_clear', 'target_blocked'}
    with pytest.raises(ValueError, match='clear_windows'):
        HysteresisConfig(clear_windows=-1)


def test_no_proactive_handover_within_the_dwell_of_an_arrival_but_the_floor_acts():
    cfg = HysteresisConfig(min_dwell_ns=3 * P)
    d = HandoverDecision('rsu3', None, cfg, arrived_ns=T0)          # just handed to rsu3
    see(d, 0, {'rsu1': (0.1, -41.0)})
    assert d.update(T0 + P, 0.95, serving_rssi_dbm=-40.0) is None   # a prediction alone waits
    see(d, 2, {'rsu1': (0.1, -41.0)})
    e = d.update(T0 + 2 * P, 0.2, serving_rssi_dbm=-52.0)           # measured down: at once
    assert (e.target_rsu, e.reason) == ('rsu1', 'measured_below_threshold')
    later = HandoverDecision('rsu3', None, cfg, arrived_ns=T0)
    see(later, 3, {'rsu1': (0.1, -41.0)})
    e = later.update(T0 + 3 * P, 0.95, serving_rssi_dbm=-40.0)      # after the dwell: proactive
    assert (e.target_rsu, e.reason) == ('rsu1', 'predicted_blockage')


# ---------------------------------------------------------------- dead neighbours
def configured(neighbours=('rsu2', 'rsu3'), target='rsu2', **cfg) -> HandoverDecision:
    return HandoverDecision('rsu1', target, HysteresisConfig(**cfg), neighbours=neighbours)


def test_with_neighbours_configured_a_stale_one_is_never_a_target():
    d = configured(neighbour_stale_ns=2 * P)
    see(d, 0, {'rsu3': (0.0, -38.0)})                   # the best link, but it died after k=0
    see(d, 3, {'rsu2': (0.1, -45.0)})
    e = d.update(T0 + 3 * P, 0.0, serving_rssi_dbm=LOW_DBM)
    assert (e.target_rsu, e.reason) == ('rsu2', 'measured_below_threshold')
    assert d.live_neighbours() == ['rsu2'] and d.no_live_target is None


def test_with_neighbours_configured_and_none_live_no_trigger_at_all():
    d = configured(neighbour_stale_ns=2 * P)
    see(d, 0, {'rsu2': (0.1, -45.0), 'rsu3': (0.1, -42.0)})
    assert d.update(T0, 0.0, serving_rssi_dbm=CLEAR_DBM) is None
    assert d.live_neighbours() == ['rsu2', 'rsu3']
    # both neighbours' nodes die: their states go stale; the floor wants to hand over
    for k in range(3, 8):
        assert d.update(T0 + k * P, 0.0, serving_rssi_dbm=LOW_DBM) is None
        assert d.no_live_target == 'measured_below_threshold'
    assert d.live_neighbours() == [] and d.serving_rsu == 'rsu1' and d.handovers == 0
    assert d.no_live_windows == 5 and d.no_target == 5
    # a prediction wants it too (no dwell since it never left): still nobody
    assert d.update(T0 + 8 * P, 0.9, serving_rssi_dbm=CLEAR_DBM) is None
    assert d.no_live_target == 'predicted_blockage' and d.no_live_windows == 6
    # nothing wanted: no flag (the runtime's WARN is about windows that want a handover)
    assert d.update(T0 + 9 * P, 0.0, serving_rssi_dbm=CLEAR_DBM) is None
    assert d.no_live_target is None and d.no_live_windows == 6


def test_a_restarted_neighbour_is_eligible_at_its_first_fresh_status():
    d = configured(neighbour_stale_ns=2 * P)
    see(d, 0, {'rsu2': (0.1, -45.0)})
    for k in range(4, 7):
        assert d.update(T0 + k * P, 0.0, serving_rssi_dbm=LOW_DBM) is None
    see(d, 7, {'rsu2': (0.9, -44.0)})             # back: its first status after the restart
    assert d.live_neighbours() == ['rsu2']
    e = d.update(T0 + 7 * P, 0.0, serving_rssi_dbm=LOW_DBM)
    assert (e.target_rsu, e.reason) == ('rsu2', 'measured_below_threshold')
    assert d.no_live_target is None and d.no_live_windows == 3


def test_never_heard_neighbours_are_not_live_and_target_rsu_is_not_taken_blindly():
    d = configured(neighbours=('rsu2',), target='rsu2')
    assert d.update(T0, 0.9, serving_rssi_dbm=LOW_DBM) is None
    assert d.no_live_target == 'measured_below_threshold' and d.live_neighbours() == []
    # without neighbours (the testbed): target_rsu blindly, as before, and never the flag
    d = decision(target='rsu2')
    assert d.update(T0, 0.9, serving_rssi_dbm=LOW_DBM).target_rsu == 'rsu2'
    assert d.no_live_target is None and d.configured == ()


def test_neighbours_must_not_list_the_home_rsu():
    with pytest.raises(ValueError, match=r"lists this RSU \(rsu1\) itself"):
        configured(neighbours=('rsu2', 'rsu1'))


def test_testbed_never_hands_over_to_a_target_it_measures_below_s_th():
    # no neighbour node reports rsu2, but this node's second RSSI stream does: a predicted
    # blockage (and the floor) wait while rsu2 is measured down, as the reactive policy waits
    d = decision()
    assert d.update(T0, 0.9, serving_rssi_dbm=CLEAR_DBM, target_rssi_dbm=LOW_DBM) is None
    assert d.update(T0 + P, 0.9, serving_rssi_dbm=LOW_DBM, target_rssi_dbm=LOW_DBM) is None
    assert d.no_target == 2 and d.serving_rsu == 'rsu1'
    e = d.update(T0 + 2 * P, 0.9, serving_rssi_dbm=LOW_DBM, target_rssi_dbm=-44.0)
    assert (e.target_rsu, e.reason, e.target_rssi_dbm) == \
        ('rsu2', 'measured_below_threshold', -44.0)
    # unmeasured: the configured target, blindly, as before
    d = decision()
    assert d.update(T0, 0.9, serving_rssi_dbm=CLEAR_DBM).target_rsu == 'rsu2'
