"""Quick checks of the launch files (read with ast) and the parameter files.

The launch files run for real in test_launch_real.py."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from mmtok_ros.data.topics import DEFAULT_TOPICS
from mmtok_ros.ros import params

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = {'rsu.launch.py': {'rsu_node'},
                'multi_rsu.launch.py': {'rsu_node'},
                'replay.launch.py': {'rsu_node', 'bag_replay', 'handover_emulator'}}
SPECS = {'rsu_node': params.RSU_NODE_PARAMS, 'bag_replay': params.BAG_REPLAY_PARAMS,
         'handover_emulator': params.HANDOVER_EMULATOR_PARAMS}


def console_scripts() -> set[str]:
    tree = ast.parse((ROOT / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == 'console_scripts':
                    return {ast.literal_eval(e).split('=')[0].strip() for e in value.elts}
    raise AssertionError('setup.py has no console_scripts')


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, 'id', getattr(n.func, 'attr', None)) == name]


def keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def config_files(tree: ast.AST) -> set[str]:
    """Files named as os.path.join(..., 'config', NAME)."""
    out = set()
    for call in calls(tree, 'join'):
        consts = [a.value for a in call.args if isinstance(a, ast.Constant)]
        if 'config' in consts:
            out.add(consts[consts.index('config') + 1])
    return out


@pytest.mark.parametrize('name', sorted(LAUNCH_FILES))
def test_launch_file(name):
    source = (ROOT / 'launch' / name).read_text()
    tree = ast.parse(source)
    assert 'def generate_launch_description()' in source
    declared = {ast.literal_eval(c.args[0]) for c in calls(tree, 'DeclareLaunchArgument')}
    used = {c.args[0].value for c in calls(tree, 'LaunchConfiguration')
            if isinstance(c.args[0], ast.Constant)}
    assert used <= declared, f'undeclared launch arguments {used - declared}'
    for c in calls(tree, 'DeclareLaunchArgument'):
        assert keyword(c, 'description') is not None
    nodes = calls(tree, 'Node')
    executables = {ast.literal_eval(keyword(n, 'executable')) for n in nodes}
    assert executables == LAUNCH_FILES[name]
    assert executables <= console_scripts()
    for n in nodes:
        assert ast.literal_eval(keyword(n, 'package')) == 'mmtok_ros'
        assert keyword(n, 'parameters') is not None
    files = config_files(tree)
    assert files and all((ROOT / 'config' / f).is_file() for f in files), files
    for n in nodes:
        remaps = keyword(n, 'remappings')
        if remaps is None:
            continue
        sources = {ast.literal_eval(t.elts[0]) for t in remaps.elts}
        assert sources <= set(DEFAULT_TOPICS.values()), sources
    for n in nodes:   # every parameter a launch file sets is one the node declares
        names = {s.name for s in SPECS[ast.literal_eval(keyword(n, 'executable'))]}
        for d in keyword(n, 'parameters').elts:
            if isinstance(d, ast.Dict):
                keys = {ast.literal_eval(k) for k in d.keys}
                assert keys <= names | {'use_sim_time'}, keys - names
    if name == 'rsu.launch.py':
        assert 'bag' not in declared and {'model_path', 'device', 'use_sim_time'} <= declared
        assert {'namespace', 'rsu_id', 'neighbours'} <= declared
        assert keyword(nodes[0], 'namespace') is not None
    elif name == 'multi_rsu.launch.py':
        assert 'rsus' in declared and calls(tree, 'OpaqueFunction')
        assert keyword(nodes[0], 'namespace') is not None
    else:
        assert {'bag', 'truth', 'rate', 'loop', 'model_path'} <= declared


def _flatten(d: dict, prefix: str = '') -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out


@pytest.mark.parametrize('path,node,specs', [
    ('rsu.yaml', '/**', params.RSU_NODE_PARAMS),
    ('replay.yaml', 'bag_replay', params.BAG_REPLAY_PARAMS),
    ('replay.yaml', 'handover_emulator', params.HANDOVER_EMULATOR_PARAMS),
])
def test_parameter_files_match_the_declarations(path, node, specs):
    text = (ROOT / 'config' / path).read_text()
    values = _flatten(yaml.safe_load(text)[node]['ros__parameters'])
    assert values == params.defaults(specs)
    for s in specs:
        assert s.description and f'{s.name.split(".")[-1]}:' in text


def test_sync_defaults_match_offline_training():
    """The node's sync and window parameters default to the dataset builder's StreamConfig."""
    from mmtok_ros.train.build import STREAM_CONFIG
    defaults = params.defaults(params.RSU_NODE_PARAMS)
    assert defaults['sync_slop_ms'] == STREAM_CONFIG.slop_ms
    assert defaults['sync_partial_wait_ms'] == STREAM_CONFIG.partial_wait_ms
    assert defaults['sync_queue_size'] == STREAM_CONFIG.queue_size
    assert defaults['sync_time_jump_ms'] == STREAM_CONFIG.time_jump_ms
    assert defaults['frame_period_ms'] == STREAM_CONFIG.period_ms
    assert defaults['s_th_dbm'] == STREAM_CONFIG.s_th_dbm
    assert STREAM_CONFIG.emit_partial   # the node always emits partial frames
