"""handover_emulator refuses an out_dir it cannot write at start-up (one FATAL line, exit 1),
instead of finding out after the whole replay."""
from __future__ import annotations

import os

import pytest

from ros_helpers import NodeProcess


def fatal_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if '[FATAL]' in line]


@pytest.mark.parametrize('case', ['parent is a file', 'out_dir is a file'])
def test_an_out_dir_that_cannot_be_written_is_one_fatal_line_at_start_up(case, tmp_path):
    blocker = tmp_path / 'results.txt'
    blocker.write_text('not a directory\n')
    out_dir = blocker / 'emulation' if case == 'parent is a file' else blocker
    rc, out = NodeProcess('handover_emulator', f'out_dir:={out_dir}',
                          ros_args=('-r', f'__node:=emulator_out_dir_{len(case)}')).finish(60)
    assert rc == 1 and 'Traceback' not in out, out
    [fatal] = fatal_lines(out)
    assert 'cannot start: out_dir' in fatal and str(out_dir) in fatal, out
    assert 'cannot be written' in fatal and 'emulating' not in out, out
    assert blocker.read_text() == 'not a directory\n'


def test_a_missing_out_dir_is_created_at_start_up_and_no_probe_is_left(tmp_path):
    from mmtok_ros.ros.handover_emulator import check_writable
    out_dir = tmp_path / 'a' / 'b'
    check_writable(out_dir)
    assert out_dir.is_dir() and list(out_dir.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into a read-only directory')
def test_a_read_only_out_dir_is_refused(tmp_path):
    from mmtok_ros.ros.handover_emulator import check_writable
    from mmtok_ros.ros.node_lifetime import StartupError
    tmp_path.joinpath('ro').mkdir(mode=0o555)
    with pytest.raises(StartupError, match='cannot be written'):
        check_writable(tmp_path / 'ro' / 'out')
