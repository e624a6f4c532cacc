"""DDS stays on this machine: our rclpy entry points refuse to start otherwise."""
import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmtok_ros.ros_env import DdsNotLocalError, local_dds_env, require_local_dds

START = 'from mmtok_ros.ros.node_lifetime import init_rclpy; r = init_rclpy([]); print("started"); r.shutdown()'


def run_entry(env_changes):
    env = {k: v for k, v in os.environ.items()
           if k not in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'PYTEST_CURRENT_TEST')}
    env.update(env_changes)
    return subprocess.run([sys.executable, '-c', START], env=env, capture_output=True,
                          text=True, timeout=60)


ROOT = Path(__file__).resolve().parents[1]
OUR_EXECUTABLES = ('rsu_node', 'bag_replay', 'handover_emulator')


def _calls(tree: ast.AST, names: tuple[str, ...]):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, 'id', '')
            if name in names:
                yield node


def test_local_dds_env_overrides_discovery_and_picks_a_domain():
    env = local_dds_env({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET'})
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert 1 <= int(env['ROS_DOMAIN_ID']) <= 101
    assert local_dds_env({'ROS_DOMAIN_ID': '42'})['ROS_DOMAIN_ID'] == '42'
    require_local_dds({'CI': 'true', **local_dds_env({})})   # what the guard accepts


def test_every_place_that_starts_rclpy_processes_keeps_dds_local():
    """Makefile (make test, make demo; .ci/run runs make test), conftest (pytest and the node
    processes tests start), and the tools that start node processes (mmtok bench --e2e and
    mmtok demo through ros.pipeline, mmtok soak through ros.soak): each sets LOCALHOST and a
    domain id."""
    makefile = (ROOT / 'Makefile').read_text()
    assert re.search(r'^export ROS_AUTOMATIC_DISCOVERY_RANGE\s*:?=\s*LOCALHOST\s*$', makefile,
                     re.M), 'Makefile must export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST'
    assert 'make test' in (ROOT / '.ci' / 'run').read_text()
    # conftest: both set before anything is imported that could start rclpy
    conftest = ast.parse((ROOT / 'test' / 'conftest.py').read_text())
    first_import = min(n.lineno for n in conftest.body if isinstance(n, ast.ImportFrom)
                       or (isinstance(n, ast.Import) and n.names[0].name not in ('os',
                                                                                 'random')))
    set_keys = {c.args[0].value: c.lineno for c in _calls(conftest, ('setdefault',))
                if c.args and isinstance(c.args[0], ast.Constant)}
    set_keys.update({t.slice.value: n.lineno for n in conftest.body
                     if isinstance(n, ast.Assign) for t in n.targets
                     if isinstance(t, ast.Subscript) and isinstance(t.slice, ast.Constant)})
    for key in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID'):
        assert set_keys.get(key, 10**9) < first_import, f'conftest must set {key} first'
    # tools: a module that starts one of our node processes takes its env from local_dds_env
    starters = []
    for path in sorted((ROOT / 'mmtok_ros').rglob('*.py')):
        tree = ast.parse(path.read_text())
        starts = [c for c in _calls(tree, ('NodeProcess',))
                  if c.args and isinstance(c.args[0], ast.Constant)
                  and c.args[0].value in OUR_EXECUTABLES]
        if starts:
            starters.append(path.name)
            assert any(True for _ in _calls(tree, ('local_dds_env',))), \
                f'{path} starts {OUR_EXECUTABLES} without ros_env.local_dds_env'
            assert all(any(k.arg == 'env' for k in c.keywords) or len(c.args) >= 4
                       for c in starts), f'{path}: every NodeProcess needs the env'
    assert starters == ['pipeline.py', 'soak.py'], starters
    demo = ast.parse((ROOT / 'mmtok_ros' / 'commands' / 'demo.py').read_text())
    assert any(True for _ in _calls(demo, ('local_dds_env',)))
    # tests: a subprocess gets this session's environment (set by conftest), never a new one
    shared = {n.name: ast.unparse(n) for helper in ('launch_helpers.py', 'ros_helpers.py')
              for n in ast.walk(ast.parse((ROOT / 'test' / helper).read_text()))
              if isinstance(n, ast.FunctionDef)}
    for path in sorted((ROOT / 'test').glob('test_*.py')):
        if path.name == Path(__file__).name:
            continue            # strips the settings on purpose, to see the guard refuse
        tree = ast.parse(path.read_text())
        assigned = {t.id: n.value for n in ast.walk(tree)
                    if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        helpers = dict(shared)   # env=ws.env(): the test helpers' functions and methods
        helpers.update({n.name: ast.unparse(n) for n in ast.walk(tree)
                        if isinstance(n, ast.FunctionDef)})
        for call in _calls(tree, ('Popen', 'run')):
            env = next((k.value for k in call.keywords if k.arg == 'env'), None)
            if env is None:
                continue                       # inherits this session's environment
            if isinstance(env, ast.Name):      # env = ... earlier in the file
                env = assigned.get(env.id, env)
            text = ast.unparse(env)
            name = (getattr(env.func, 'id', None) or getattr(env.func, 'attr', None)
                    if isinstance(env, ast.Call) else None)
            if name in helpers:
                text = helpers[name]           # env = _child_env(): read the helper
            assert 'os.environ' in text, \
                f'{path.name}:{call.lineno}: subprocess env must start from os.environ'


def test_guard_raises_under_ci_without_localhost():
    with pytest.raises(DdsNotLocalError, match='ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST'):
        require_local_dds({'CI': 'true', 'ROS_DOMAIN_ID': '7'})
    require_local_dds({'CI': 'true', 'ROS_DOMAIN_ID': '7', 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'})
    require_local_dds({})  # on an RSU without CI, the operator decides


def test_entry_point_refuses_to_start_rclpy_without_the_setting():
    out = run_entry({'CI': 'true'})
    assert out.returncode == 2
    assert 'ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST' in out.stderr
    assert 'started' not in out.stdout


def test_entry_point_starts_rclpy_with_the_setting():
    out = run_entry({'CI': 'true', 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'})
    assert out.returncode == 0, out.stderr
    assert 'started' in out.stdout
