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


# rosdep keys of Python packages -> the module the code imports
PYTHON_KEYS = {'python3-numpy': 'numpy', 'python3-torch': 'torch', 'python3-tqdm': 'tqdm',
               'python3-matplotlib': 'matplotlib', 'python3-pil': 'PIL',
               'python3-rosbags-pip': 'rosbags'}
# imported only inside functions, installed with pip (requirements.txt): mmtok export and the
# onnxruntime backend; not needed to run the nodes
OPTIONAL = {'onnx', 'onnxruntime'}


def imported_modules() -> dict[str, set[str]]:
    """Top-level non-stdlib modules imported by mmtok_ros/ and launch/ -> {file: top-level?}."""
    import sys
    found: dict[str, set[str]] = {}
    files = sorted((ROOT / 'mmtok_ros').rglob('*.py')) + sorted((ROOT / 'launch').glob('*.py'))
    for path in files:
        tree = ast.parse(path.read_text())
        top_level = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split('.')[0]
                if top in sys.stdlib_module_names or top == 'mmtok_ros':
                    continue
                where = 'module' if id(node) in top_level else 'function'
                found.setdefault(top, set()).add(f'{path.relative_to(ROOT)}:{where}')
    return found


def test_package_xml_lists_exactly_what_the_code_imports():
    pkg = ET.parse(ROOT / 'package.xml').getroot()
    keys = {e.text for e in pkg.findall('exec_depend')}
    unknown = {k for k in keys if k.startswith('python3-') and k not in PYTHON_KEYS}
    assert not unknown, f'add the module name of {unknown} to PYTHON_KEYS'
    declared = {PYTHON_KEYS.get(k, k) for k in keys}
    imported = imported_modules()
    missing = set(imported) - declared - OPTIONAL
    assert not missing, f'imported but not in package.xml: {sorted(missing)}'
    unused = declared - set(imported)
    assert not unused, f'in package.xml but imported nowhere: {sorted(unused)}'
    for name in OPTIONAL & set(imported):
        at_module_level = [w for w in imported[name] if w.endswith(':module')]
        assert not at_module_level, f'optional {name} imported at module level: {at_module_level}'
    # the launch packages are for the launch files only, and the one helper they call
    # (ros/launch_signals.py), which imports launch inside its function
    for where in imported['launch_ros'] | imported['launch']:
        assert (where.startswith('launch/')
                or where == 'mmtok_ros/ros/launch_signals.py:function'), where
