"""The ``mmtok`` command line: bad input (the project's error types) is one line on stderr and
status 2; any other exception is a bug and keeps its traceback."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mmtok_ros import cli
from mmtok_ros.beam.errors import BeamDataError, BeamDataNotFoundError
from mmtok_ros.commands import flops
from mmtok_ros.data.errors import DataError
from mmtok_ros.errors import InputFileNotFoundError, MmtokError, UserInputError
from mmtok_ros.ros_env import DdsNotLocalError


def _mmtok() -> str:
    """The installed console script (``setup.py``: ``mmtok = mmtok_ros.cli:main``)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get('PATH', '')])
    found = shutil.which('mmtok', path=path)
    assert found, 'the mmtok console script is not installed (make venv)'
    return found


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)


def test_every_error_module_derives_from_the_project_base():
    for error in (UserInputError, InputFileNotFoundError, DataError, BeamDataError,
                  BeamDataNotFoundError, DdsNotLocalError):
        assert issubclass(error, MmtokError), error
    # callers that catch the standard types keep working
    assert issubclass(DataError, ValueError) and issubclass(BeamDataError, ValueError)
    assert issubclass(BeamDataNotFoundError, FileNotFoundError)


def test_a_user_error_through_the_console_script_is_one_line(tmp_path):
    proc = subprocess.run([_mmtok(), 'bench', '--methods', 'nope', '--out',
                           str(tmp_path / 'x.json')], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mmtok bench: error: unknown methods ['nope']; choose from")
    assert not (tmp_path / 'x.json').exists()


@pytest.mark.parametrize('error', [UserInputError('--gamma must be in (0, 1]'),
                                   InputFileNotFoundError('no such bag: /nowhere')])
def test_a_project_error_in_process_is_one_line_and_status_2(monkeypatch, capsys, error):
    def run(args):
        raise error
    monkeypatch.setattr(flops, 'run', run)
    assert cli.main(['flops']) == 2
    err = capsys.readouterr().err
    assert err == f'mmtok flops: error: {error}\n'


def test_an_unexpected_exception_in_process_propagates(monkeypatch):
    def run(args):
        raise RuntimeError('a bug')
    monkeypatch.setattr(flops, 'run', run)
    with pytest.raises(RuntimeError, match='a bug'):
        cli.main(['flops'])


@pytest.mark.parametrize('error', ['RuntimeError', 'KeyError', 'ValueError'])
def test_a_bug_in_a_command_prints_its_traceback_and_fails(error):
    proc = _run_python(f'''
        import sys
        from mmtok_ros import cli
        from mmtok_ros.commands import flops

        def bug_in_the_command(args):
            raise {error}('not a user error')

        flops.run = bug_in_the_command
        sys.exit(cli.main(['flops']))
    ''')
    assert proc.returncode != 0
    assert 'Traceback (most recent call last)' in proc.stderr, proc.stderr
    assert 'bug_in_the_command' in proc.stderr and 'not a user error' in proc.stderr
