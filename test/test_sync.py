"""ApproximateTimeSynchronizer: matching, drops by reason, time jumps, partial frames."""
from __future__ import annotations

import logging

import pytest

from mmtok_ros.constants import NS_PER_MS as MS
from mmtok_ros.data import ApproximateTimeSynchronizer, SyncedFrame

TOPICS = ('cam', 'lidar', 'rssi')


def make(**kw) -> ApproximateTimeSynchronizer:
    kw.setdefault('slop_ns', 20 * MS)
    return ApproximateTimeSynchronizer(TOPICS, **kw)


def feed(sync, messages) -> list[SyncedFrame]:
    out = []
    for topic, stamp in messages:
        out += sync.add(topic, stamp, f'{topic}@{stamp}')
    return out


def stamps(frame: SyncedFrame) -> tuple:
    return tuple(frame.stamps_ns[t] for t in TOPICS)


def test_exact_match_emits_once_per_set():
    sync = make()
    out = feed(sync, [(t, k * 100 * MS) for k in range(1, 4) for t in TOPICS])
    assert [stamps(f) for f in out] == [(k * 100 * MS,) * 3 for k in range(1, 4)]
    assert out[0].items == {'cam': f'cam@{100 * MS}', 'lidar': f'lidar@{100 * MS}',
                            'rssi': f'rssi@{100 * MS}'}
    assert out[0].stamp_ns == 100 * MS and out[0].missing == ()
    assert sync.stats()['emitted'] == 3
    assert sync.pending() == {t: 0 for t in TOPICS}


def test_jitter_within_slop_and_stamp_is_newest():
    sync = make()
    out = feed(sync, [('cam', 100 * MS), ('lidar', 112 * MS), ('rssi', 95 * MS)])
    assert len(out) == 1 and stamps(out[0]) == (100 * MS, 112 * MS, 95 * MS)
    assert out[0].stamp_ns == 112 * MS


def test_best_spread_candidate_wins():
    sync = make()
    # two rssi candidates for the cam/lidar pair at 100 ms: 92 (spread 8) and 99 (spread 1)
    out = feed(sync, [('rssi', 92 * MS), ('rssi', 99 * MS), ('cam', 100 * MS),
                      ('lidar', 100 * MS)])
    assert [stamps(f) for f in out] == [(100 * MS, 100 * MS, 99 * MS)]
    assert sync.stats()['no_partner'] == 1  # rssi@92 is older than the emitted set


def test_no_partner_is_counted():
    sync = make()
    out = feed(sync, [('cam', 100 * MS), ('lidar', 100 * MS),   # rssi@100 never comes
                      ('rssi', 200 * MS), ('cam', 200 * MS), ('lidar', 200 * MS)])
    assert [stamps(f) for f in out] == [(200 * MS,) * 3]
    assert sync.stats()['no_partner'] == 2


def test_out_of_order_within_slop_still_matches():
    sync = make()
    out = feed(sync, [('cam', 100 * MS), ('cam', 200 * MS), ('lidar', 100 * MS),
                      ('rssi', 200 * MS), ('lidar', 200 * MS),
                      ('rssi', 105 * MS)])  # arrives late, older than rssi's newest
    # the 100 ms set could not form before rssi@105 came; the 200 ms set did
    assert stamps(out[0]) == (200 * MS,) * 3
    stats = sync.stats()
    assert stats['time_jump'] == 0
    # a late message whose partners are still queued matches
    sync = make()
    out = feed(sync, [('cam', 100 * MS), ('lidar', 101 * MS), ('rssi', 130 * MS),
                      ('rssi', 102 * MS)])
    assert [stamps(f) for f in out] == [(100 * MS, 101 * MS, 102 * MS)]
    assert sync.stats()['time_jump'] == 0


def test_too_old_after_emission():
    sync = make()
    feed(sync, [(t, 100 * MS) for t in TOPICS])
    assert feed(sync, [('cam', 90 * MS)]) == []
    assert sync.stats()['too_old'] == 1


def test_duplicate_stamp_dropped():
    sync = make()
    out = feed(sync, [('cam', 100 * MS), ('cam', 100 * MS), ('lidar', 100 * MS),
                      ('rssi', 100 * MS)])
    assert len(out) == 1 and out[0].items['cam'] == f'cam@{100 * MS}'
    assert sync.stats()['duplicate'] == 1


def test_time_jump_back_clears_counts_and_warns_once(caplog):
    sync = make()
    feed(sync, [(t, 10_000 * MS) for t in TOPICS] + [('cam', 10_100 * MS),
                                                    ('lidar', 10_100 * MS)])
    with caplog.at_level(logging.WARNING, logger='mmtok_ros.data.sync'):
        out = feed(sync, [('cam', 50 * MS), ('lidar', 50 * MS), ('rssi', 50 * MS)])
    # the jump cleared the queued 10.1 s messages; the new epoch synchronizes normally
    assert [stamps(f) for f in out] == [(50 * MS,) * 3]
    stats = sync.stats()
    assert stats['time_jump'] == 1 and stats['too_old'] == 0
    assert sum('time jumped back' in r.message for r in caplog.records) == 1


def test_a_stalled_topic_arriving_late_is_not_a_time_jump():
    sync = make()
    # rssi stalls after 0 ms while cam and lidar go on for 2.1 s, then rssi's backlog
    # arrives: more than the 1 s jump threshold older than the newest cam/lidar stamp, but
    # newer than rssi's own last stamp
    feed(sync, [(t, 0) for t in TOPICS])
    feed(sync, [(t, k * 300 * MS) for k in range(1, 8) for t in ('cam', 'lidar')])
    out = feed(sync, [('rssi', 300 * MS), ('rssi', 2100 * MS), ('cam', 2400 * MS),
                      ('lidar', 2400 * MS), ('rssi', 2400 * MS)])
    # no jump: the queued frames are kept and the late messages still complete their sets
    assert sync.stats()['time_jump'] == 0
    assert [stamps(f) for f in out] == [(300 * MS,) * 3, (2100 * MS,) * 3, (2400 * MS,) * 3]


def test_queue_full_drops_oldest():
    sync = make(queue_size=3)
    feed(sync, [('cam', k * 100 * MS) for k in range(1, 6)])  # nobody else publishes
    assert sync.stats()['queue_full'] == 2
    assert sync.pending()['cam'] == 3


def test_partial_frame_for_silent_topic():
    sync = make(emit_partial=True)
    msgs = [(t, k * 100 * MS) for k in range(1, 5) for t in ('cam', 'lidar')]
    out = feed(sync, msgs)
    # each set is given up once cam and lidar have moved past it; rssi never spoke
    assert [stamps(f) for f in out] == [(k * 100 * MS, k * 100 * MS, None) for k in (1, 2, 3)]
    assert out[0].items['rssi'] is None and out[0].missing == ('rssi',)
    assert sync.stats()['partial'] == 3 and sync.stats()['emitted'] == 0


def test_partial_frame_for_a_dropped_message_not_for_a_slower_rate():
    sync = make(emit_partial=True)
    msgs = []
    for k in range(2, 17):  # rssi before any cam/lidar would make a partial frame
        msgs += [('rssi', k * 50 * MS)]                    # rssi at 20 Hz
        if k % 2 == 0:
            msgs += [('lidar', k * 50 * MS)]               # lidar at 10 Hz
            if k != 10:
                msgs += [('cam', k * 50 * MS)]             # cam at 10 Hz, drops 500 ms
    out = feed(sync, msgs)
    expected = [(k * 100 * MS,) * 3 for k in range(1, 9)]
    expected[4] = (None, 500 * MS, 500 * MS)
    assert [stamps(f) for f in out] == expected
    stats = sync.stats()
    assert stats['partial'] == 1 and stats['emitted'] == 7
    assert stats['no_partner'] == 7  # rssi at 150, 250, ... 750: slower rate, not partial


@pytest.mark.parametrize('wait_ms', [0, 200])
def test_partial_wait_covers_a_late_arriving_topic(wait_ms):
    # lidar is processed for 150 ms: its messages arrive after newer cam/rssi messages
    arrivals = []
    for k in range(1, 21):
        arrivals += [(k * 100, 'cam', k * 100), (k * 100, 'rssi', k * 100),
                     (k * 100 + 150, 'lidar', k * 100)]
    sync = make(emit_partial=True, partial_wait_ns=wait_ms * MS)
    out = feed(sync, [(t, s * MS) for _, t, s in sorted(arrivals)])
    stats = sync.stats()
    if wait_ms:  # waiting longer than the lag: every set is complete
        assert stats['partial'] == 0 and stats['emitted'] == 20
        assert all(f.missing == () for f in out)
    else:  # no wait: lidar looks dropped, frames go out without it
        assert stats['partial'] >= 5


def test_without_partial_a_silent_topic_yields_nothing():
    sync = make()
    out = feed(sync, [(t, k * 100 * MS) for k in range(1, 5) for t in ('cam', 'lidar')])
    assert out == []


def test_silent_topics():
    sync = make()
    feed(sync, [('cam', 100 * MS), ('lidar', 100 * MS), ('cam', 900 * MS)])
    assert sync.silent_topics(1000 * MS, 500 * MS) == ['lidar', 'rssi']
    assert sync.silent_topics(1000 * MS, 950 * MS) == []


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='unknown topic'):
        make().add('radar', 0, None)
    with pytest.raises(ValueError, match='unique'):
        ApproximateTimeSynchronizer(['a', 'a'], slop_ns=1)


def test_a_present_topic_with_a_stuck_clock_does_not_hold_up_the_others():
    # frames 0-3 complete; the camera's frame 4 comes alone (LiDAR and RSSI lost it), then the
    # camera's clock sticks (its repeats are rejected upstream, so it sends nothing new)
    sync = make(emit_partial=True, partial_wait_ns=150 * MS)
    msgs = [(t, k * 100 * MS) for k in range(4) for t in TOPICS] + [('cam', 400 * MS)]
    msgs += [(t, k * 100 * MS) for k in range(5, 12) for t in ('lidar', 'rssi')]
    out = feed(sync, msgs)
    assert [f.stamp_ns // MS for f in out[:5]] == [0, 100, 200, 300, 400]
    assert out[4].missing == ('lidar', 'rssi')
    assert len(out) >= 9                      # lidar + rssi frames keep coming after it
    assert all(f.stamps_ns['cam'] is None for f in out[5:])
