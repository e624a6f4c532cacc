"""Held-out windows that travel with the device check (``bench/device_check/``).

A GPU machine lent for a few minutes has no ROS, no rosbags and no time to simulate, so the
accuracy columns of the device check read preprocessed windows from a small file committed
beside this package: ``data/heldout_windows_rsu_cpu.npz`` and its sidecar ``.json`` (how it
was made, what it holds, and what the uint8 storage of the camera costs).

The windows are those of the shipped ``rsu-cpu`` models' held-out scenarios (``mmtok simulate
--seed 0``, scenarios 40-49: one unseen instance of every testbed kind; models/*.md), made
with the same decode, synchronizer and window code as the node (``train.build``), a run of
``per_scenario`` consecutive windows from each (around its first blockage onset, or the
middle of a clear scenario), so consecutive windows share frames and each frame is stored
once. Labels: the next-frame label (Eq. 8, the model cards' accuracy) and the 3-frame one
the shipped files were trained on, both computed on the whole scenario before the cut.

``windows.py``: the file and ``load`` (numpy alone: the device path); ``make.py``: making it
(the simulator and rosbags: ``python -m mmtok_ros.bench.heldout``, on a machine with the
project installed).
"""
from .make import build, main
from .windows import DATA_DIR, DEFAULT_PATH, FORMAT, HeldoutWindows, load, save, sidecar_path

__all__ = ['DATA_DIR', 'DEFAULT_PATH', 'FORMAT', 'HeldoutWindows', 'build', 'load', 'main',
           'save', 'sidecar_path']
