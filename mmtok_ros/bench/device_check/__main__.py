"""``python -m mmtok_ros.bench.device_check``: the command line of ``cli.py``."""
from .cli import main

if __name__ == '__main__':
    raise SystemExit(main())
