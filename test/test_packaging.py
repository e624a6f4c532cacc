"""The ament_python package: package.xml and setup.py agree; set-up commands exist."""
import ast
import re
import xml.etree.ElementTree as ET
from glob import glob
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_kwargs():
    tree = ast.parse((ROOT / 'setup.py').read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, 'id', '') == 'setup')
    consts = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
              for t in n.targets if isinstance(n.value, ast.Constant)}
    out = {}
    for kw in call.keywords:
        try:
            out[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            out[kw.arg] = consts.get(getattr(kw.value, 'id', None), kw.value)
    return out


def test_package_xml_and_setup_py_agree():
    pkg = ET.parse(ROOT / 'package.xml').getroot()
    assert pkg.get('format') == '3'
    kwargs = setup_kwargs()
    assert pkg.findtext('name') == kwargs['name'] == 'mmtok_ros'
    assert pkg.findtext('version') == kwargs['version']
    assert pkg.find('export/build_type').text == 'ament_python'
    deps = {e.text for e in pkg.findall('exec_depend')}
    for needed in ('rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs', 'message_filters',
                   'launch', 'launch_ros', 'sensor_msgs_py', 'cv_bridge', 'python3-numpy',
                   'python3-torch'):
        assert needed in deps, needed
    assert 'python3-pytest' in {e.text for e in pkg.findall('test_depend')}
    assert (ROOT / 'resource' / 'mmtok_ros').is_file()


def test_every_data_files_source_exists_and_dirs_are_installed():
    source = (ROOT / 'setup.py').read_text()
    for folder in ('launch', 'config', 'models'):
        assert f"'{folder}'" in source, f'{folder}/ is not installed through data_files'
        assert (ROOT / folder).is_dir()
    for pattern in re.findall(r"glob\('([^']+)'\)", source):
        for path in glob(str(ROOT / pattern)):
            assert Path(path).is_file()
    for literal in re.findall(r"\['(resource/[^']+|package.xml)'", source):
        assert (ROOT / literal).is_file()


def test_console_scripts_point_at_real_functions():
    import importlib
    scripts = setup_kwargs()['entry_points']['console_scripts']
    assert any(s.startswith('mmtok =') for s in scripts)
    for spec in scripts:
        name, target = (part.strip() for part in spec.split('='))
        module, func = target.split(':')
        assert callable(getattr(importlib.import_module(module), func)), spec


def test_ci_runs_the_readme_test_command():
    assert 'make test' in (ROOT / '.ci' / 'run').read_text()
    readme = (ROOT / 'README.md').read_text()
    assert 'make test' in readme and 'make demo' in readme
    assert 'torch==2.13.0' in (ROOT / 'requirements.txt').read_text()
