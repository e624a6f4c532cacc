"""Bad input into a running rsu_node (real rclpy publishers): each case is one clear log
line and a counter in /diagnostics, the node keeps running, and no status is published from
a malformed window. Bad model files: the node exits 1 with one line and no traceback."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from ros_helpers import (P_NS, Harness, cloud_msg, image_msg, rssi_msg, tiny_model, values,
                         wait_until)


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp('models') / 'tiny.pt')


@pytest.fixture
def h(model_path):
    harness = Harness(model_path, silent_after_periods=3)
    yield harness
    harness.close()


def rejected(h, kind: str, reason: str) -> int:
    return h.node.stream.rejected[f'{h.topics[kind]}:{reason}']


def diag(h, key: str, expect) -> bool:
    """True once a /diagnostics report from the node says ``key`` = ``expect``."""
    return wait_until(lambda: any(values(m).get(key) == str(expect) for m in h.diagnostics),
                      5.0)


def still_works(h, start: int) -> None:
    n = len(h.statuses)
    h.frames(range(start, start + 6))
    assert h.wait_statuses(n + 1), 'node stopped publishing after bad input'


BAD_IMAGES = {
    'encoding': (lambda s: image_msg(s, encoding='yuv422', bpp=2), 'ImageDecodeError'),
    'size': (lambda s: image_msg(s, width=32, height=32), 'ImageSizeError'),
    'truncated': (lambda s: _truncated(image_msg(s)), 'ImageDecodeError'),
}


def _truncated(msg):
    msg.data = bytes(msg.data)[:100]
    return msg


@pytest.mark.parametrize('case', sorted(BAD_IMAGES))
def test_bad_image_is_rejected_and_counted(h, case, capfd):
    make, reason = BAD_IMAGES[case]
    h.frames(range(6), image=None)
    n = len(h.statuses)
    for k in range(6, 9):
        s = h.base_ns + k * P_NS
        h.frame(k, image=make(s))
    assert rejected(h, 'image', reason) == 3
    assert diag(h, f'rejected/{h.topics["image"]}:{reason}', 3)
    # frames went on without the camera: statuses come from windows marked image-absent
    h.wait_idle()
    err = capfd.readouterr().err
    assert err.count('rejected input') == 1 and h.topics['image'] in err
    assert len(h.statuses) >= n
    still_works(h, 9)


def test_padded_rows_are_decoded(h):
    h.frames(range(6), pace=True)
    for k in range(6, 12):
        h.frame(k, image=image_msg(h.base_ns + k * P_NS + 3_000_000, pad=13))
        h.wait_idle()
    assert sum(h.node.stream.rejected.values()) == 0
    assert h.wait_statuses(6)


def test_all_inputs_malformed_never_publish(h):
    for k in range(8):
        s = h.base_ns + k * P_NS
        h.frame(k, image=image_msg(s, encoding='bogus'), lidar=cloud_msg(s, fields=('x', 'y')),
                rsu1=rssi_msg(s, float('nan')), rsu2=rssi_msg(s, float('inf')))
    assert wait_until(lambda: sum(h.node.stream.rejected.values()) == 32)
    assert h.node.stats()['windows_built'] == 0 and h.statuses == []
    assert rejected(h, 'lidar', 'PointCloudDecodeError') == 8
    assert rejected(h, 'rsu1', 'RssiDecodeError') == 8
    assert rejected(h, 'rsu2', 'RssiDecodeError') == 8
    assert diag(h, 'rejected_total', 32)


def test_lidar_empty_missing_fields_and_nonfinite_points(h, capfd):
    h.frames(range(6))
    s = h.base_ns
    pts = np.column_stack([np.linspace(1, 30, 50), np.zeros(50), np.zeros(50), np.ones(50),
                           np.zeros(50)])
    pts[::5, 0] = np.nan
    pts[1::5, 2] = np.inf
    h.frame(6, lidar=cloud_msg(s + 6 * P_NS, pts))
    h.frame(7, lidar=cloud_msg(s + 7 * P_NS, np.zeros((0, 5))))
    h.frame(8, lidar=cloud_msg(s + 8 * P_NS, fields=('x', 'y')))
    h.frame(9, lidar=cloud_msg(s + 9 * P_NS, fields=('x', 'y', 'z')))   # optional ones absent
    h.wait_idle()
    assert h.node.stream.inputs[f'{h.topics["lidar"]}:nonfinite_points_dropped'] == 20
    assert rejected(h, 'lidar', 'EmptyCloudError') == 1
    assert rejected(h, 'lidar', 'PointCloudDecodeError') == 1
    assert h.node.stream.inputs[f'{h.topics["lidar"]}:missing_optional_fields'] == 1
    assert diag(h, f'input/{h.topics["lidar"]}:nonfinite_points_dropped', 20)
    err = capfd.readouterr().err
    assert err.count('NaN/inf points') == 1 and err.count('rejected input') == 2
    assert err.count("lacks ['intensity', 'ring']") == 1
    still_works(h, 10)


def test_nonfinite_rssi(h):
    h.frames(range(6))
    h.frame(6, rsu1=rssi_msg(h.base_ns + 6 * P_NS, float('nan')))
    h.frame(7, rsu2=rssi_msg(h.base_ns + 7 * P_NS, float('-inf')))
    assert rejected(h, 'rsu1', 'RssiDecodeError') == 1
    assert rejected(h, 'rsu2', 'RssiDecodeError') == 1
    h.wait_idle()
    still_works(h, 8)
    # a published window never carries a non-finite value: the held RSSI was used instead
    assert h.node.stream.hold.substituted >= 2


def test_out_of_order_and_duplicate_stamps(h):
    h.frames(range(6))
    stamp = h.frame(6)
    h.frame(6, stamp_ns=stamp)                     # the same frame again: stuck stamps
    h.frame(0, stamp_ns=stamp - P_NS // 2)         # 150 ms out of order: too old
    h.wait_idle()
    s = h.node.stats()
    for kind in ('image', 'lidar', 'rsu1', 'rsu2'):
        assert s[f'rejected/{h.topics[kind]}:stuck_stamp'] == 1, kind
    assert s['sync/too_old'] == 4
    assert s['sync/time_jump'] == 0                # out of order is not a time jump
    assert diag(h, f'rejected/{h.topics["image"]}:stuck_stamp', 1)
    still_works(h, 7)


def test_silent_modality_warns_once_and_frames_go_on(h, capfd):
    h.frames(range(6))
    n = len(h.statuses)
    h.frames(range(6, 14), skip=('lidar',))
    assert wait_until(lambda: h.node.stream.inputs[f'{h.topics["lidar"]}:silent_warnings'] == 1)
    assert h.wait_statuses(n + 3)                  # partial frames keep windows coming
    assert h.node.stats()['sync/partial'] >= 3
    assert wait_until(lambda: any(h.topics['lidar'] in values(m).get('silent_topics', '')
                                  for m in h.diagnostics))
    err = capfd.readouterr().err
    assert err.count(f'no message on {h.topics["lidar"]}') == 1


def test_burst_faster_than_real_time_skips_stale_windows(h):
    h.frames(range(6))
    h.frames(range(6, 40), pace=False)             # 10 s of data as fast as possible
    assert h.wait_idle(20.0)
    s = h.node.stats()
    assert s['windows_published'] + s['windows_skipped'] == s['windows_built']
    assert s['windows_published'] >= 2
    assert diag(h, 'windows_skipped', s['windows_skipped'])


# ------------------------------------------------------------------ bad model files
def _bad_models(tmp_path):
    corrupt = tmp_path / 'corrupt.pt'
    corrupt.write_bytes(b'not a torch file at all')
    arch = tmp_path / 'arch.pt'
    tiny_model(arch)
    payload = torch.load(arch, weights_only=True)
    payload['config']['d_model'] = 32                    # weights stay 64 wide
    torch.save(payload, arch)
    return {'missing': (tmp_path / 'nothere.pt', 'model file not found'),
            'corrupt': (corrupt, 'corrupt or not a torch file'),
            'architecture': (arch, 'weights do not match')}


def test_bad_model_file_exits_with_one_line(tmp_path):
    cases = _bad_models(tmp_path)
    env = dict(os.environ)
    procs = {name: subprocess.Popen(
        [sys.executable, '-m', 'mmtok_ros.ros.rsu_node', '--ros-args', '-p',
         f'model_path:={path}', '-p', 'device:=cpu'], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True) for name, (path, _) in cases.items()}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 1, (name, out)
        assert 'Traceback' not in out, out
        lines = [line for line in out.splitlines() if line.strip()]
        assert len(lines) == 1 and '[FATAL]' in lines[0] and 'cannot start' in lines[0], out
        assert cases[name][1] in lines[0] and str(cases[name][0]) in lines[0]


# ------------------------------------------------------------------ broken clocks, absurd values
@pytest.mark.parametrize('clock', ['zero', 'stuck'])
def test_camera_with_a_broken_clock_costs_the_camera_only(h, clock, capfd):
    h.frames(range(6))
    n = len(h.statuses)
    stuck_ns = h.base_ns + 6 * P_NS + 3_000_000
    for k in range(6, 16):
        stamp = 0 if clock == 'zero' else stuck_ns
        h.frame(k, image=image_msg(stamp))
    # link statuses keep coming from LiDAR and RSSI, the camera marked absent
    assert h.wait_statuses(n + 5), 'a broken camera clock stopped the output'
    assert h.wait_idle()
    reason = 'zero_stamp' if clock == 'zero' else 'stuck_stamp'
    expected = 10 if clock == 'zero' else 9        # a stuck clock's first stamp is taken
    assert rejected(h, 'image', reason) == expected
    assert h.node.stats()['sync/time_jump'] == 0   # one bad stamp never clears the windows
    assert diag(h, f'rejected/{h.topics["image"]}:{reason}', expected)
    assert capfd.readouterr().err.count(f'{h.topics["image"]}: header stamp') == 1


def test_impossible_rssi_is_rejected_like_nan(h):
    h.frames(range(6))
    h.frame(6, rsu1=rssi_msg(h.base_ns + 6 * P_NS, 1e9))
    h.frame(7, rsu2=rssi_msg(h.base_ns + 7 * P_NS, -1e9))
    bad_variance = rssi_msg(h.base_ns + 8 * P_NS, -40.0)
    bad_variance.variance = -1.0
    h.frame(8, rsu1=bad_variance)
    assert rejected(h, 'rsu1', 'RssiDecodeError') == 2
    assert rejected(h, 'rsu2', 'RssiDecodeError') == 1
    h.wait_idle()
    still_works(h, 9)
    assert h.node.stream.hold.substituted >= 3


def test_no_input_ever_is_a_warning_naming_the_topics(model_path, capfd):
    h = Harness(model_path, silent_after_periods=1)          # 300 ms
    try:
        assert wait_until(lambda: any(m.status[0].level == m.status[0].WARN
                                      for m in h.diagnostics), 5.0)
        last = values(h.diagnostics[-1])
        for kind in ('image', 'lidar', 'rsu1', 'rsu2'):
            assert h.topics[kind] in last['silent_topics'], kind
        err = capfd.readouterr().err
        assert err.count(f'no message on {h.topics["image"]}') == 1
        assert 'QoS' in err
    finally:
        h.close()
