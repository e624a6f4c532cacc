"""Point the ROS wheels' exported CMake files at this interpreter's include directories.

The PyPI ROS 2 wheels (ros-std-msgs, ros-builtin-interfaces, ...) are built in a manylinux
container, and their ``export_<pkg>__rosidl_generator_pyExport.cmake`` files name that
container's Python and NumPy include directories
(``/opt/python/cp311-cp311/include/python3.11`` and ``.../numpy/_core/include``). A message
package that depends on them (``mmtok_msgs`` depends on std_msgs and builtin_interfaces)
fails at CMake's generate step because those directories do not exist here. This script
rewrites both strings, in every such file under the prefix, to the running interpreter's
``sysconfig.get_paths()["include"]`` and ``numpy.get_include()``.

Idempotent: a file that already names this interpreter's directories is left alone; running
it twice changes nothing. Usage: ``python tools/fix_ros_wheel_cmake.py [PREFIX]`` (default:
``sys.prefix``, the venv). Run it with the venv's python.
"""
from __future__ import annotations

import argparse
import re
import sys
import sysconfig
from pathlib import Path

# The build container's directories, as the wheels name them (any CPython version tag).
_PYTHON_INCLUDE = re.compile(r'/opt/python/cp3\d+-cp3\d+t?/include/python3\.\d+t?')
_NUMPY_INCLUDE = re.compile(
    r'/opt/python/cp3\d+-cp3\d+t?/lib/python3\.\d+t?/site-packages/numpy/(?:_core|core)/include')


def fix_file(path: Path, python_include: str, numpy_include: str) -> bool:
    """Rewrite one exported CMake file; True if it changed."""
    text = path.read_text()
    # NumPy first: its pattern is longer and must not be cut by the Python one.
    new = _NUMPY_INCLUDE.sub(numpy_include, text)
    new = _PYTHON_INCLUDE.sub(python_include, new)
    if new == text:
        return False
    path.write_text(new)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('prefix', nargs='?', default=sys.prefix,
                        help='ament prefix holding share/<pkg>/cmake (default: this venv)')
    args = parser.parse_args(argv)
    try:
        import numpy
    except ImportError:
        print('fix_ros_wheel_cmake: numpy is not installed in this interpreter', file=sys.stderr)
        return 1
    python_include = sysconfig.get_paths()['include']
    numpy_include = numpy.get_include()
    for needed in (python_include, numpy_include):
        if not Path(needed, 'Python.h' if needed == python_include else 'numpy').exists():
            print(f'fix_ros_wheel_cmake: {needed} lacks the headers a message package needs',
                  file=sys.stderr)
            return 1
    share = Path(args.prefix, 'share')
    files = sorted(share.glob('*/cmake/*Export*.cmake'))
    changed = [f for f in files if fix_file(f, python_include, numpy_include)]
    print(f'fix_ros_wheel_cmake: {len(changed)} of {len(files)} exported CMake files under '
          f'{share} rewritten to {python_include} and {numpy_include}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
