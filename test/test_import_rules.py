"""Import rules of the package, read from the source (ast), so a new import that breaks the
layering fails here: the core imports no layer above it, ``bench`` is a leaf that only the
``mmtok bench`` command imports, and no two modules import each other (directly or round a
longer circle), counting imports inside functions too."""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / 'mmtok_ros'

# Layers, bottom up (docs/architecture.md): a package may import its own layer and those below.
CORE = ('constants', 'errors', 'devices', 'timing', 'resources', 'ros_env', 'model', 'data',
        'runtime', 'sim')
LAYERS = [CORE, ('train', 'beam'), ('reports',), ('ros',), ('bench',), ('commands', 'cli')]


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob('*.py'):
        parts = list(path.relative_to(PKG.parent).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts = parts[:-1]
        out['.'.join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every mmtok_ros module ``name`` imports, at any depth of its code."""
    package = name.split('.') if path.name == '__init__.py' else name.split('.')[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            for alias in node.names:   # ``from pkg import module`` imports the module
                sub = f'{target}.{alias.name}'
                found.add(sub if sub in MODULES else target)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> int | None:
    top = module.split('.')[1] if module.count('.') else None
    for i, members in enumerate(LAYERS):
        if top in members:
            return i
    return None


def test_every_subpackage_has_a_layer():
    tops = {m.split('.')[1] for m in MODULES if m.count('.')}
    assert not sorted(t for t in tops if _layer(f'mmtok_ros.{t}') is None), \
        'add the new package to LAYERS here and to docs/architecture.md'


def test_no_module_imports_a_layer_above_its_own():
    wrong = [f'{m} imports {t}' for m, targets in GRAPH.items() for t in targets
             if _layer(m) is not None and _layer(t) is not None and _layer(t) > _layer(m)]
    assert not wrong, '\n'.join(sorted(wrong))


def test_only_bench_and_its_command_import_bench():
    importers = sorted(m for m, targets in GRAPH.items()
                       if any(t.startswith('mmtok_ros.bench') for t in targets)
                       and not m.startswith('mmtok_ros.bench')
                       and m != 'mmtok_ros.commands.bench')
    assert not importers, f'bench is a leaf (mmtok bench only); imported by {importers}'


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    assert _cycles() == []


@pytest.mark.parametrize('source, expected', [
    ('from ..bench.latency import format_table', {'mmtok_ros.bench.latency'}),
    ('def f():\n    from mmtok_ros import bench', {'mmtok_ros.bench'}),
])
def test_the_rules_see_imports_inside_functions_too(tmp_path, source, expected):
    path = tmp_path / 'probe.py'
    path.write_text(source)
    assert _imports('mmtok_ros.train.probe', path) == expected
