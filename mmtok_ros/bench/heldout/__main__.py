"""``python -m mmtok_ros.bench.heldout``: make the held-out windows file (``make.py``)."""
from .make import main

if __name__ == '__main__':
    raise SystemExit(main())
