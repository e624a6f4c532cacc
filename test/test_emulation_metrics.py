"""The proactive metrics of ``mmtok emulate``: blockages handed over in time,
spurious proactive handovers per hour of clear link, the outage saved against reactive and
oracle, and the acceptance lines, on small timelines built here."""
from __future__ import annotations

import numpy as np
import pytest

from mmtok_ros.reports import emulation as report
from mmtok_ros.runtime import emulation as emu
from mmtok_ros.runtime.handover import HandoverDecision, HysteresisConfig

P = 300_000_000                      # the testbed's frame period [ns]
MS = 1_000_000
T0 = 1_000 * 1_000_000_000
TESTBED = emu.EmulationOptions.testbed()


def timeline(n=30, blocked=range(12, 18), name='s') -> emu.Timeline:
    """rsu1 serves at -40 dBm, blocked (-60 dBm) at frames ``blocked``; rsu2 at -44 dBm."""
    t = T0 + P * np.arange(n, dtype=np.int64)
    home = np.full(n, -40.0)
    home[list(blocked)] = -60.0
    true = {'rsu1': home, 'rsu2': np.full(n, -44.0)}
    intervals = {'rsu1': [(int(t[min(blocked)]), int(t[max(blocked)]))] if len(blocked) else [],
                 'rsu2': []}
    return emu.Timeline(t, true, {r: v.copy() for r, v in true.items()}, intervals, 'rsu1',
                        name=name)


def windows(tl, high_frames) -> emu.FramePredictions:
    """rsu1 has a window at every frame, p_blocked 0.9 at ``high_frames`` and 0 elsewhere."""
    p = np.array([0.9 if k in high_frames else 0.0 for k in range(len(tl.t_ns))])
    return emu.FramePredictions.from_windows(tl, {'rsu1': list(zip(tl.t_ns.tolist(), p))})


def test_a_lead_of_at_least_the_latency_is_in_time():
    tl = timeline()
    onset = tl.blockage_intervals_ns[0][0]
    m = {lead: emu.evaluate_policy('proactive', tl, [emu.Switch(onset - lead * MS, 'rsu2')],
                                   lookback_ns=None, in_time_ms=300.0).metrics
         for lead in (400, 200)}
    assert (m[400]['handed_over_in_time'], m[400]['handed_over_before_blockage']) == (1, 1)
    assert (m[200]['handed_over_in_time'], m[200]['handed_over_before_blockage']) == (0, 1)
    assert m[400]['in_time_lead_ms'] == 300.0
    assert emu.in_time(300.0, 300.0) and not emu.in_time(299.9, 300.0)
    assert not emu.in_time(0.0, 0.0) and not emu.in_time(None, 0.0)
    assert emu.in_time(1.0, 0.0)


def test_the_node_decision_is_in_time_with_a_window_one_latency_earlier():
    """300 ms latency: a prediction at frame 10 executes at frame 11's time (lead 300 ms, in
    time); one at frame 11 executes at the onset (lead 0, neither before nor in time)."""
    tl = timeline()
    opts = TESTBED.with_latency(300.0)
    early = emu.emulate(tl, opts, preds=windows(tl, range(10, 18))).metrics['proactive']
    late = emu.emulate(tl, opts, preds=windows(tl, range(11, 18))).metrics['proactive']
    assert early['blockages'][0]['lead_ms'] == pytest.approx(300.0)
    assert (early['handed_over_in_time'], early['handed_over_before_blockage']) == (1, 1)
    assert late['blockages'][0]['lead_ms'] == pytest.approx(0.0)
    assert (late['handed_over_in_time'], late['handed_over_before_blockage']) == (0, 0)


def test_a_switch_without_a_blockage_after_it_is_spurious():
    tl = timeline(n=60, blocked=range(40, 46))
    onset = tl.blockage_intervals_ns[0][0]
    window_ns = emu.SPURIOUS_WINDOW_FRAMES * P
    assert window_ns == 1_200_000_000
    cases = {'no blockage after': int(tl.t_ns[5]), 'just too early': onset - window_ns - 1,
             'within the window': onset - window_ns, 'during the blockage': onset + 2 * P}
    for case, t in cases.items():
        switches = [emu.Switch(t, 'rsu2'), emu.Switch(t + 4 * P, 'rsu1')]
        got = emu.spurious_handovers(tl, switches, switches[:1], 18.0)
        assert got['proactive_handovers'] == 1, case
        expected = 1 if case in ('no blockage after', 'just too early') else 0
        assert got['spurious_proactive_handovers'] == expected, case
        assert got['spurious_window_s'] == pytest.approx(1.2)
    # the hand-back (not marked proactive) and a switch to the serving RSU are not counted
    again = [emu.Switch(int(tl.t_ns[5]), 'rsu1'), emu.Switch(int(tl.t_ns[6]), 'rsu2')]
    got = emu.spurious_handovers(tl, again, again, 18.0)
    assert (got['proactive_handovers'], got['spurious_proactive_handovers']) == (1, 1)
    assert emu.spurious_handovers(tl, again, None, 18.0)['spurious_per_hour'] is None


def test_spurious_rate_is_the_count_per_hour_of_clear_link():
    """A false alarm at frame 5 (spurious), a hand-back (not proactive) and a correct
    prediction 600 ms before the onset (not spurious); every frame served clear."""
    tl = timeline(n=60, blocked=range(40, 46))
    result = emu.emulate(tl, TESTBED.with_latency(100.0),
                         preds=windows(tl, {5} | set(range(38, 46))))
    m = result.metrics['proactive']
    assert [(r.frame, r.cause) for r in result.records] == [
        (5, emu.PREDICTION), (15, emu.HAND_BACK), (38, emu.PREDICTION), (50, emu.HAND_BACK)]
    assert m['clear_link_s'] == pytest.approx(60 * 0.3)
    assert (m['proactive_handovers'], m['spurious_proactive_handovers']) == (2, 1)
    assert m['spurious_at_s'] == [pytest.approx(5 * 0.3 + 0.1)]
    assert m['spurious_per_hour'] == pytest.approx(1 / (18.0 / 3600)) == pytest.approx(200.0)
    assert emu.per_hour(3, 1800.0) == 6.0 and emu.per_hour(0, 0.0) is None
    # the baselines' switches are not the node's decisions: no proactive counts for them
    assert 'spurious_per_hour' not in result.metrics['reactive']


def test_reactive_floor_switches_are_neither_proactive_nor_spurious():
    tl = timeline()
    result = emu.emulate(tl, TESTBED.with_latency(40.0),
                         preds=emu.FramePredictions.constant(tl, 0.0, rsus=('rsu1',)))
    assert [r.cause for r in result.records] == [emu.FLOOR, emu.HAND_BACK]
    assert not any(r.proactive for r in result.records)
    m = result.metrics['proactive']
    assert m['handovers'] == 2
    assert (m['proactive_handovers'], m['spurious_proactive_handovers']) == (0, 0)
    assert m['spurious_per_hour'] == 0.0
    # a live run's switches carry no cause: unknown, not zero
    live = emu.emulate(tl, TESTBED, proactive=emu.proactive_switches(result.records))
    assert live.metrics['proactive']['spurious_proactive_handovers'] is None


def test_target_blocked_is_the_floor_on_a_measurement_and_proactive_on_a_prediction():
    causes = {}
    for case, (p2, rssi2) in {'measured': (0.1, -60.0), 'predicted': (0.9, -40.0)}.items():
        d = HandoverDecision('rsu1', None, HysteresisConfig(min_dwell_ns=0))
        d.observe_neighbour('rsu2', T0, 0.1, -40.0)
        d.observe_neighbour('rsu3', T0, 0.1, -42.0)
        first = d.update(T0, 0.9, serving_rssi_dbm=-40.0)
        assert (first.reason, first.target_rsu) == ('predicted_blockage', 'rsu2')
        assert emu.cause_of(first, d) == emu.PREDICTION
        d.observe_neighbour('rsu2', T0 + P, p2, rssi2)
        d.observe_neighbour('rsu3', T0 + P, 0.1, -42.0)
        event = d.update(T0 + P, 0.9, serving_rssi_dbm=-40.0)
        assert event.reason == 'target_blocked', case
        causes[case] = emu.cause_of(event, d)
    assert causes == {'measured': emu.FLOOR, 'predicted': emu.PREDICTION}


def test_saving_fraction_totals_and_acceptance_lines():
    assert emu.saving_fraction(3.0, 1.5, 0.0) == 0.5
    assert emu.saving_fraction(3.0, 3.6, 0.0) == pytest.approx(-0.2)
    assert emu.saving_fraction(2.0, 1.0, 2.0) is None        # the oracle saves nothing
    opts = TESTBED.with_latency(300.0)
    results = {'good': emu.emulate(timeline(name='good'), opts,
                                   preds=windows(timeline(), range(10, 18))),
               'missed': emu.emulate(timeline(name='missed'), opts,
                                     preds=emu.FramePredictions.constant(timeline(), 0.0))}
    docs = {n: report.summary(r) for n, r in results.items()}
    assert docs['good']['proactive_events'][0]['cause'] == emu.PREDICTION
    t = emu.proactive_totals(docs, 300.0)
    assert (t['blockages'], t['in_time'], t['before_onset']) == (2, 1, 1)
    assert t['in_time_share'] == 0.5
    assert t['outage_s'] == {'proactive': pytest.approx(0.3), 'reactive': pytest.approx(0.6),
                             'oracle': 0.0}
    assert t['outage_saved_s'] == pytest.approx(0.3)
    assert t['oracle_outage_saved_s'] == pytest.approx(0.6)
    assert t['outage_saving_fraction'] == pytest.approx(0.5)
    assert (t['proactive_handovers'], t['spurious_proactive_handovers']) == (1, 0)
    assert t['clear_link_s'] == pytest.approx((30 + 29) * 0.3)
    assert t['spurious_per_hour'] == 0.0 and t['outage_longer_than_reactive_in'] == []
    verdicts = {a['target']: a['passed'] for a in t['acceptance']}
    assert verdicts == {'blockages_in_time': False, 'spurious_per_hour': True,
                        'outage_never_longer': True, 'outage_saving_fraction': True}
    assert t['accepted'] is False
    lines = [a['line'] for a in t['acceptance']]
    assert lines[0].startswith('FAIL blockages handed over in time (lead >= latency 300.0 ms): '
                               '1/2 = 50.0 %')
    assert lines[3].startswith("PASS outage saved over reactive: 0.3 s of the oracle's 0.6 s "
                               '= 50.0 %')
    rows = [report.proactive_row(n, r.metrics, r.check) for n, r in results.items()]
    md = report.proactive_markdown(rows, t)
    assert '| good | 1/1 | 1/1 | 1 | 0 | 9.0 | 0.0 | 0.0 / 0.3 / 0.0 | yes |' in md
    assert '| **total** | 1/2 | 1/2 | 1 | 0 | 17.7 | 0.0 | 0.3 / 0.6 / 0.0 | 2/2 |' in md
    assert md.rstrip().endswith(lines[3]) and 'NOT ACCEPTED' in md


def test_acceptance_without_blockages_is_not_applicable():
    tl = timeline(blocked=range(0))
    doc = report.summary(emu.emulate(tl, TESTBED, preds=emu.FramePredictions.constant(tl, 0.0)))
    t = emu.proactive_totals({'clear': doc}, 0.0)
    verdicts = {a['target']: a['passed'] for a in t['acceptance']}
    assert verdicts == {'blockages_in_time': None, 'spurious_per_hour': True,
                        'outage_never_longer': True, 'outage_saving_fraction': None}
    assert t['accepted'] is None and t['acceptance'][0]['line'].startswith('N/A')
