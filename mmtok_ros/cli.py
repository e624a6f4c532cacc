"""The ``mmtok`` command: one subcommand per module in ``mmtok_ros.commands``.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``; adding a module adds a subcommand, nothing here changes. A command
reports bad input by raising one of the project's error types (:mod:`mmtok_ros.errors`).
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands
from .errors import MmtokError


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if not info.name.startswith('_'):
            yield info.name, importlib.import_module(f'{commands.__name__}.{info.name}')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='mmtok', description='Token-routed multi-modal transformer for mmWave handover.')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for name, module in _command_modules():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Bad input (a :class:`~mmtok_ros.errors.MmtokError`) is one line on
    stderr and status 2; any other exception is a bug and propagates with its traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except MmtokError as err:
        print(f'mmtok {args.command}: error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
